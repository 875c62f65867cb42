package pitr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/hint"
	"github.com/stillpoint/stillpoint/internal/repo"
)

// StorePlan is how one store is brought back to a cut: from which base,
// replaying its log from the base's start to the cut's position.
type StorePlan struct {
	Store string   `json:"store"`
	Base  *Base    `json:"base"`
	To    Position `json:"to"`
}

// Plan is a restore to a cut, checked whole before anything is touched.
type Plan struct {
	Cut    *Cut        `json:"cut"`
	Stores []StorePlan `json:"stores"`
}

// BaseFor picks store's newest base backup that is consistent before to
// (its End is at or before the position), or nil.
func BaseFor(bases []*Base, store string, to Position) (*Base, error) {
	var best *Base
	for _, b := range bases {
		if b.Store != store {
			continue
		}
		c, err := Compare(b.Info.End, to)
		if err != nil {
			return nil, fmt.Errorf("store %s: base %s: %w", store, b.ID, err)
		}
		if c <= 0 && (best == nil || b.Taken.After(best.Taken)) {
			best = b
		}
	}
	return best, nil
}

// PlanRestore picks each store's base for cut c and checks that its log
// archive holds every file from the base's start on (Engine.Gaps): a
// missing base or a gap is an error here, before any target is touched.
func PlanRestore(ctx context.Context, r *repo.Repository, c *Cut) (*Plan, error) {
	if slices.Contains(c.LogicalOnly, c.Coordinator) {
		return nil, fmt.Errorf("cut %s: its coordinator store %s has no point-in-time recovery, so the cut cannot decide the other stores' transactions: restore a logical backup", c.ID, c.Coordinator)
	}
	bases, _, err := Bases(ctx, r)
	if err != nil {
		return nil, err
	}
	p := &Plan{Cut: c}
	var errs []error
	for _, store := range slices.Sorted(maps.Keys(c.Positions)) {
		to := c.Positions[store]
		b, err := BaseFor(bases, store, to)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if b == nil {
			errs = append(errs, fmt.Errorf("store %s: no base backup is consistent before cut %s (%s): a base serves only the cuts taken after it; take one with stillpoint base create, then cuts after it restore", store, c.ID, to))
			continue
		}
		e, err := EngineFor(b.Engine)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := replayGaps(ctx, e, store, NewLogs(r, store), b.Info.Start, to); err != nil {
			errs = append(errs, fmt.Errorf("cut %s cannot be restored: %w", c.ID, err))
			continue
		}
		archived, err := archivedNames(ctx, r, store)
		if err != nil {
			return nil, err
		}
		if err := reached(store, to, archived); err != nil {
			errs = append(errs, fmt.Errorf("cut %s cannot be restored yet: %w", c.ID, err))
			continue
		}
		p.Stores = append(p.Stores, StorePlan{Store: store, Base: b, To: to})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// reached checks that the archive holds the log file of a position that
// names one (a binlog): replay must reach the mark, and a file still being
// written is not archived. An LSN names no file; PostgreSQL's recovery
// itself fails when the archive ends before the restore point.
func reached(store string, to Position, archived func(name string) bool) error {
	if to.File == "" || archived(to.File) {
		return nil
	}
	return fmt.Errorf("store %s: the cut's log file %s is not archived yet (it is archived once the server closes it: rotate the log, e.g. FLUSH BINARY LOGS, or wait for the archiver)", store, to.File)
}

// archivedNames returns a lookup of store's archived file names, listed
// once.
func archivedNames(ctx context.Context, r *repo.Repository, store string) (func(string) bool, error) {
	names, err := r.ListLogs(ctx, store)
	return func(n string) bool { _, ok := slices.BinarySearch(names, n); return ok }, err
}

// Result is what a restore to a cut did.
type Result struct {
	Cut    string        `json:"cut"`
	Stores []StorePlan   `json:"stores"`
	Took   time.Duration `json:"took_ns"`
	// LogicalOnly are the cut's stores it did not restore (no PITR).
	LogicalOnly []string `json:"logical_only,omitempty"`
}

// Restore rebuilds every store of the plan into its target (all in
// parallel): base, then replay exactly to the cut, server started. Each
// target directory must be empty or absent: a restore never writes over
// a server's files. Then finish settles what was in flight at the cut;
// only when it returns is the restore done.
func Restore(ctx context.Context, r *repo.Repository, p *Plan, targets map[string]Target, finish func(ctx context.Context) error) (*Result, error) {
	began := time.Now()
	for _, s := range p.Stores {
		t, ok := targets[s.Store]
		if !ok {
			return nil, fmt.Errorf("no target for store %s: name its data directory and port (--target %s=DIR:PORT)", s.Store, s.Store)
		}
		if err := emptyDir(t.DataDir); err != nil {
			return nil, fmt.Errorf("store %s: %w", s.Store, err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range p.Stores {
		g.Go(func() error {
			e, err := EngineFor(s.Base.Engine)
			if err != nil {
				return err
			}
			t := targets[s.Store]
			t.Start = true
			slog.Info("restore: store", "store", s.Store, "base", s.Base.ID, "to", s.To.String(), "data_dir", t.DataDir)
			base := r.OpenStream(gctx, s.Base.Chunks)
			defer base.Close()
			if err := e.Restore(gctx, base, s.Base.Info, NewLogs(r, s.Store), s.To, t); err != nil {
				return fmt.Errorf("store %s: %w (the restore is not finished: empty %s before running it again)", s.Store, err, t.DataDir)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := finish(ctx); err != nil {
		// The servers run, replayed to the mark; lazy recovery with no
		// lifetime to wait for is what finishes the cut.
		return nil, hint.Run(fmt.Errorf("restore to cut %s: the stores are replayed and running, but the cut is not finished (%w): do not use them until it is", p.Cut.ID, err), "verify", "--repair", "--lifetime", "0")
	}
	return &Result{Cut: p.Cut.ID, Stores: p.Stores, Took: time.Since(began), LogicalOnly: p.Cut.LogicalOnly}, nil
}

// emptyDir accepts a missing or empty directory.
func emptyDir(dir string) error {
	if dir == "" {
		return errors.New("no target data directory")
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("target data directory %s is not empty (it holds %s): a restore never writes over a server's files; give an empty or new directory", dir, entries[0].Name())
	}
	return nil
}

// Reach is the cuts one store can be restored to.
type Reach struct {
	Store string `json:"store"`
	// From and To are the oldest and newest restorable cuts ("" if none);
	// Cuts counts the restorable ones, Unrestorable the others, the
	// newest reason in Problem.
	From         string `json:"from,omitempty"`
	To           string `json:"to,omitempty"`
	Cuts         int    `json:"cuts"`
	Unrestorable int    `json:"unrestorable"`
	Problem      string `json:"problem,omitempty"`
	// Gap is a hole in the store's log archive that a cut needs.
	Gap string `json:"gap,omitempty"`
}

// Reaches says, per store, which cuts it can be restored to: those with a
// base consistent before them and no gap in the archive from that base's
// start (each base checked once).
func Reaches(ctx context.Context, r *repo.Repository, cuts []*Cut, bases []*Base) ([]Reach, error) {
	gaps := map[string]error{} // by base id
	byStore := map[string]*Reach{}
	archived := map[string]func(string) bool{}
	for _, c := range cuts {
		for store, to := range c.Positions {
			rc := byStore[store]
			if rc == nil {
				rc = &Reach{Store: store}
				byStore[store] = rc
				var err error
				if archived[store], err = archivedNames(ctx, r, store); err != nil {
					return nil, err
				}
			}
			b, err := BaseFor(bases, store, to)
			if err == nil && b == nil {
				err = errors.New("no base backup before it")
			}
			if err == nil {
				if _, done := gaps[b.ID]; !done {
					e, err := EngineFor(b.Engine)
					if err == nil {
						err = e.Gaps(ctx, store, NewLogs(r, store), b.Info.Start)
					}
					gaps[b.ID] = err
				}
				err = gaps[b.ID]
				if ge := (*GapError)(nil); errors.As(err, &ge) {
					// A hole after the base's start: the cuts whose replay
					// ends before it still restore.
					e, _ := EngineFor(b.Engine)
					err = replayGaps(ctx, e, store, NewLogs(r, store), b.Info.Start, to)
				}
			}
			if err == nil {
				err = reached(store, to, archived[store])
			}
			if err != nil {
				rc.Unrestorable++
				rc.Problem = fmt.Sprintf("cut %s: %v", c.ID, err)
				if ge := (*GapError)(nil); errors.As(err, &ge) {
					rc.Gap = err.Error()
				}
				continue
			}
			if rc.From == "" {
				rc.From = c.ID
			}
			rc.To = c.ID
			rc.Cuts++
		}
	}
	out := make([]Reach, 0, len(byStore))
	for _, s := range slices.Sorted(maps.Keys(byStore)) {
		out = append(out, *byStore[s])
	}
	return out, nil
}
