package pitr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
)

// MarkOptions say how a cut mark is taken.
type MarkOptions struct {
	Name         string
	FenceTimeout time.Duration
	// MaxHold bounds the fence: marks not recorded by then fail the cut.
	MaxHold time.Duration
	// AllowLogicalOnly records a cut over stores with no PITR (SQLite),
	// naming them; without it such a configuration is refused.
	AllowLogicalOnly bool
}

// storeEngines returns every configured store with its storage engine.
func storeEngines(st *multistorage.Storage) (map[string]config.Store, error) {
	names, err := st.StoreNames()
	if err != nil {
		return nil, err
	}
	cfg := st.Config()
	out := map[string]config.Store{}
	for _, n := range names {
		if cfg.Embedded {
			out[n] = config.Store{Engine: "sqlite", Path: cfg.EmbeddedPath(n)}
		} else {
			out[n] = cfg.Stores[n]
		}
	}
	return out, nil
}

// CreateCut takes a cut mark: the coordinator fence, and while it holds
// every PITR store's log position (Engine.Mark, in parallel); then it
// records the cut in r. It takes no repository lock (a cut only adds a
// small object), so cuts go on while a backup runs. A name is reserved
// first, exclusively (reserveName), and released if the cut fails.
func CreateCut(ctx context.Context, r *repo.Repository, st *multistorage.Storage, opts MarkOptions) (_ *Cut, err error) {
	c := &Cut{Name: opts.Name, Positions: map[string]Position{}, ID: newID(time.Now())}
	if opts.Name != "" {
		if err := reserveName(ctx, r, opts.Name, c.ID); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				releaseName(r, opts.Name)
			}
		}()
	}
	configs, err := storeEngines(st)
	if err != nil {
		return nil, err
	}
	if c.Coordinator, err = st.StoreName(schema.CoordinatorNamespace); err != nil {
		return nil, err
	}
	marks := map[string]Engine{}
	stores := map[string]storage.Store{}
	for name, sc := range configs {
		e, err := EngineFor(sc.Engine)
		if err != nil {
			c.LogicalOnly = append(c.LogicalOnly, name)
			continue
		}
		if stores[name], err = st.Store(ctx, name); err != nil {
			return nil, err
		}
		marks[name] = e
	}
	slices.Sort(c.LogicalOnly)
	if slices.Contains(c.LogicalOnly, c.Coordinator) {
		return nil, fmt.Errorf("the coordinator store %s has no point-in-time recovery (SQLite): no cut could decide the other stores' transactions; move the coordinator to PostgreSQL or MariaDB, or take logical backups", c.Coordinator)
	}
	if len(c.LogicalOnly) > 0 && !opts.AllowLogicalOnly {
		return nil, fmt.Errorf("stores without point-in-time recovery (SQLite): %s; a cut cannot restore them: pass --allow-logical-only to record the cut for the other stores (restore these from logical backups), or move them to PostgreSQL or MariaDB",
			strings.Join(c.LogicalOnly, ", "))
	}
	if len(marks) == 0 {
		return nil, errors.New("no store has point-in-time recovery (PostgreSQL or MariaDB): a cut would record nothing; take logical backups (stillpoint backup create)")
	}
	coord, err := st.Store(ctx, c.Coordinator)
	if err != nil {
		return nil, err
	}
	fence, err := cut.EngineOf(coord)
	if err != nil {
		return nil, err
	}
	c.Taken = time.Now().UTC()
	mark := c.Name
	if mark == "" {
		mark = "stillpoint-" + c.ID
	}
	c.FenceWait, c.FenceHold, err = cut.Fenced(ctx, c.Coordinator, fence, opts.FenceTimeout, func() error {
		return markAll(ctx, marks, stores, mark, opts.MaxHold, c.Positions)
	})
	if err != nil {
		return nil, err
	}
	if err := save(ctx, r, nil, repo.KindCut, c.ID, c); err != nil {
		return nil, err
	}
	slog.Info("cut: marked", "id", c.ID, "name", c.Name, "fence_wait", c.FenceWait, "fence_hold", c.FenceHold, "stores", len(c.Positions))
	return c, nil
}

// nameReservation is a cut name's reservation (cutnames/NAME): the cut
// that took the name, and when.
type nameReservation struct {
	Cut      string    `json:"cut"`
	Reserved time.Time `json:"reserved"`
}

// reserveName takes name for cut id, create-exclusive in the repository:
// of two cut creates with one name exactly one gets it, where a check by
// listing let both pass (docs/pitr-bank.md). Cuts recorded before names
// were reserved are still found by listing; a name that would match one
// (its name, id or a unique prefix of its id) is refused and released.
func reserveName(ctx context.Context, r *repo.Repository, name, id string) error {
	if err := validName(name); err != nil {
		return err
	}
	err := save(ctx, r, nil, repo.KindCutName, name, nameReservation{Cut: id, Reserved: time.Now().UTC()})
	if errors.Is(err, repo.ErrExists) {
		return nameTaken(ctx, r, name)
	}
	if err != nil {
		return err
	}
	cuts, _, err := Cuts(ctx, r)
	if err == nil {
		if old, ferr := FindCut(cuts, name); ferr == nil && old.Name == name {
			err = fmt.Errorf("a cut named %q exists already (cut %s): choose another name", name, old.ID)
		} else if ferr == nil {
			err = fmt.Errorf("the name %q would also name cut %s (its id or a prefix of it): choose another name", name, old.ID)
		}
	}
	if err != nil {
		releaseName(r, name)
	}
	return err
}

// nameTaken says which cut holds a reserved name.
func nameTaken(ctx context.Context, r *repo.Repository, name string) error {
	var res nameReservation
	data, err := r.LoadRecord(ctx, repo.KindCutName, name)
	if err == nil {
		err = json.Unmarshal(data, &res)
	}
	if err != nil {
		return fmt.Errorf("the cut name %q is reserved, and its reservation cannot be read (%v): choose another name", name, err)
	}
	// A cut that cannot be read (damaged) still holds its name.
	if _, err := r.LoadRecord(ctx, repo.KindCut, res.Cut); !errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("a cut named %q exists already (cut %s): choose another name", name, res.Cut)
	}
	return fmt.Errorf("the cut name %q is taken by cut %s, begun at %s and not recorded: it is being marked now, was forgotten, or its cut create died; choose another name",
		name, res.Cut, res.Reserved.Format(time.RFC3339))
}

// releaseName gives back a name whose cut failed, so the operator may
// retry with it. Its own context: the failure may be a cancellation. A
// name it cannot release stays taken (nameTaken says by what).
func releaseName(r *repo.Repository, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.DeleteRecord(ctx, nil, repo.KindCutName, name); err != nil {
		slog.Warn("cut: the failed cut's name stays reserved", "name", name, "error", err)
	}
}

// markAll records every store's position in parallel, giving up after
// maxHold (0: no bound).
func markAll(ctx context.Context, marks map[string]Engine, stores map[string]storage.Store, name string, maxHold time.Duration, into map[string]Position) error {
	if maxHold > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxHold)
		defer cancel()
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, store := range slices.Sorted(maps.Keys(marks)) {
		wg.Go(func() {
			p, err := marks[store].Mark(ctx, stores[store], name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("cut: mark store %s: %w", store, err))
				return
			}
			into[store] = p
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() != nil && maxHold > 0 {
			return fmt.Errorf("%w (the fence may hold for at most %v: check the store, or raise --fence-max-hold)", err, maxHold)
		}
		return err
	}
	return nil
}

// validName checks a cut's name: it also names the restore point in the
// servers' logs, so it is kept plain.
func validName(n string) error {
	if len(n) > 60 {
		return fmt.Errorf("cut name %q is longer than 60 characters", n)
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("invalid cut name %q: only letters, digits, '-', '_' and '.'", n)
		}
	}
	return nil
}
