package pitr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

// Cut is a cut mark (repository object cuts/ID): each PITR store's log
// position recorded while the coordinator fence held.
type Cut struct {
	ID          string              `json:"id"`
	Name        string              `json:"name,omitempty"`
	Taken       time.Time           `json:"taken"`
	FenceWait   time.Duration       `json:"fence_wait_ns"`
	FenceHold   time.Duration       `json:"fence_hold_ns"`
	Coordinator string              `json:"coordinator_store"`
	Positions   map[string]Position `json:"positions"`
	// LogicalOnly names the stores with no PITR (SQLite): the cut cannot
	// restore them, their logical backups do (docs/pitr.md).
	LogicalOnly []string `json:"logical_only,omitempty"`
}

// Base is a physical base backup (repository object bases/ID), recorded
// once every chunk of its stream is stored.
type Base struct {
	ID     string        `json:"id"`
	Store  string        `json:"store"`
	Engine string        `json:"engine"`
	Taken  time.Time     `json:"taken"`
	Took   time.Duration `json:"took_ns"`
	Info   BaseInfo      `json:"info"`
	// LogsBefore is the newest log file archived when the base began: it
	// and every file before it end before the base's start, so a prune
	// may drop them once no kept cut needs an older base ("" if none).
	LogsBefore string   `json:"logs_before,omitempty"`
	Chunks     []string `json:"chunks"`
	Bytes      int64    `json:"bytes"`
	NewBytes   int64    `json:"new_bytes"`
}

// newID names an object by its time, sortable, plus a random suffix (as
// backups are named).
func newID(t time.Time) string {
	b := make([]byte, 4)
	rand.Read(b)
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

func save(ctx context.Context, r *repo.Repository, lk *repo.Lock, kind, id string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return r.SaveRecord(ctx, lk, kind, id, data)
}

// Damaged is a record that cannot be read.
type Damaged struct {
	Kind, ID string
	Err      error
}

// loadAll reads every record of kind into T, oldest first by id.
func loadAll[T any](ctx context.Context, r *repo.Repository, kind string) (all []*T, damaged []Damaged, err error) {
	ids, err := r.ListRecords(ctx, kind)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		data, err := r.LoadRecord(ctx, kind, id)
		if errors.Is(err, backend.ErrNotFound) {
			continue // removed since the listing
		}
		var ce *repo.CorruptError
		if errors.As(err, &ce) {
			damaged = append(damaged, Damaged{kind, id, err})
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		v := new(T)
		if err := json.Unmarshal(data, v); err != nil {
			damaged = append(damaged, Damaged{kind, id, fmt.Errorf("%s %s: not a %s record: %w", kind, id, kind, err)})
			continue
		}
		all = append(all, v)
	}
	return all, damaged, nil
}

// Cuts returns the cut marks, oldest first.
func Cuts(ctx context.Context, r *repo.Repository) ([]*Cut, []Damaged, error) {
	cuts, damaged, err := loadAll[Cut](ctx, r, repo.KindCut)
	slices.SortStableFunc(cuts, func(a, b *Cut) int { return a.Taken.Compare(b.Taken) })
	return cuts, damaged, err
}

// Bases returns the base backups, oldest first.
func Bases(ctx context.Context, r *repo.Repository) ([]*Base, []Damaged, error) {
	bases, damaged, err := loadAll[Base](ctx, r, repo.KindBase)
	slices.SortStableFunc(bases, func(a, b *Base) int { return a.Taken.Compare(b.Taken) })
	return bases, damaged, err
}

// FindCut resolves a cut by name, id, or a unique prefix of its id.
func FindCut(cuts []*Cut, ref string) (*Cut, error) {
	var matches []*Cut
	for _, c := range cuts {
		if c.ID == ref || c.Name == ref {
			return c, nil
		}
		if ref != "" && strings.HasPrefix(c.ID, ref) {
			matches = append(matches, c)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return nil, fmt.Errorf("no cut named %q (a name, an id or a unique prefix of one; stillpoint cut list shows them)", ref)
	}
	return nil, fmt.Errorf("cut %q is ambiguous: it matches %d cuts (%s, ...); give more characters", ref, len(matches), matches[0].ID)
}

// CutAt is the latest cut taken at or before t.
func CutAt(cuts []*Cut, t time.Time) (*Cut, error) {
	var best *Cut
	for _, c := range cuts {
		if !c.Taken.After(t) {
			best = c
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no cut was taken at or before %s (stillpoint cut list shows them)", t.UTC().Format(time.RFC3339))
	}
	return best, nil
}

// archive is a store's log archive in the repository.
type archive struct {
	r     *repo.Repository
	store string
}

// NewLogs returns store's log archive in r. Archiving takes no lock (it
// must never wait for a backup): log files are add-only, with chunks of
// their own, and only a prune under the lock removes them (docs/pitr.md).
func NewLogs(r *repo.Repository, store string) Logs { return archive{r, store} }

func (a archive) Put(ctx context.Context, name string, rd io.Reader) error {
	_, err := a.r.PutLog(ctx, a.store, name, rd)
	return err
}

func (a archive) Get(ctx context.Context, name string, w io.Writer) error {
	err := a.r.GetLog(ctx, a.store, name, w)
	if errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("store %s: log file %s: %w", a.store, name, ErrMissing)
	}
	return err
}

func (a archive) Names(ctx context.Context) ([]string, error) { return a.r.ListLogs(ctx, a.store) }
