// Package cut takes a transactionally consistent cut of several stores
// with no application pause (DESIGN.md section 5): block new commit
// decisions at the coordinator (the write fence), fix one snapshot in every
// store while the fence holds, release it. Transactions keep reading,
// writing and preparing throughout; only commit decisions wait, for as
// long as the snapshots take to open.
package cut

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Snapshot is one store's state, fixed at the cut.
type Snapshot interface {
	// Point says where the store was cut: a snapshot id, a log position.
	Point() string
	// ReadTable streams a table's records in primary-key order.
	ReadTable(ctx context.Context, m *storage.TableMetadata, fn func(storage.Record) error) error
	Close() error
}

// RowSnapshot is a Snapshot that also streams a table as rows: values in
// the order of m.Columns, in a slice fn must not keep. Backups use it when
// a snapshot has it (no map per record), ReadTable otherwise.
type RowSnapshot interface {
	ReadRows(ctx context.Context, m *storage.TableMetadata, fn func(row []any) error) error
}

// Fence blocks commit decisions while held.
type Fence interface{ Release() error }

// Engine is what the cut needs of a store.
type Engine interface {
	// AcquireFence blocks new writes to the coordinator table and waits
	// for those in flight, giving up after timeout.
	AcquireFence(ctx context.Context, timeout time.Duration) (Fence, error)
	OpenSnapshot(ctx context.Context) (Snapshot, error)
}

// Cut is a set of snapshots, one per store, that no transaction straddles
// once lazy recovery has run on them.
type Cut struct {
	Snapshots map[string]Snapshot
	// FenceWait is how long the fence took to be granted; FenceHold how
	// long commit decisions were blocked.
	FenceWait, FenceHold time.Duration
	// At is when the fence was released.
	At time.Time

	cancel context.CancelFunc       // ends the context the snapshots were opened in
	took   map[string]time.Duration // how long each snapshot took to open
}

// Close ends every snapshot.
func (c *Cut) Close() error {
	var errs []error
	for _, s := range c.Snapshots {
		errs = append(errs, s.Close())
	}
	c.cancel()
	return errors.Join(errs...)
}

// SlowSnapshotError is the error of Take (or a bounded Open) when a
// store's snapshot did not open while the fence, or the pause, could be
// held: everything was released, and nothing kept.
type SlowSnapshotError struct {
	Stores  []string      // the stores whose snapshot had not opened
	MaxHold time.Duration // the bound
	Held    time.Duration // how long Take held the fence (0: no fence)
	// Advice says, for a store read whole (ScanEngine), how far its read
	// went and the bound it needs.
	Advice []string
}

// slowAdviser is an engine that can say why its snapshot was slow.
type slowAdviser interface {
	slowAdvice() string
}

func (e *SlowSnapshotError) Error() string {
	msg := fmt.Sprintf("cut: the snapshot of store %s did not open within the max hold of %v", strings.Join(e.Stores, ", "), e.MaxHold)
	if e.Held > 0 {
		msg += fmt.Sprintf(" (the fence was released after %v, so commits no longer wait)", e.Held.Round(time.Millisecond))
	}
	for _, a := range e.Advice {
		msg += "; " + a
	}
	return msg + "; nothing was kept: check that store (overloaded, locked or unreachable?), or raise --fence-max-hold if it is merely slow"
}

// DefaultMaxHold bounds the fence when the caller has no bound of its own:
// every commit decision in the system waits while the fence holds, and
// opening a snapshot takes milliseconds (under 20 ms measured under load),
// so a store that needs a second is in trouble and the cut gives way.
const DefaultMaxHold = time.Second

// Take cuts the stores. The coordinator store is fenced; every store
// (the coordinator's too) gets a snapshot while the fence holds. If the
// fence is not granted within timeout, or any snapshot fails, everything
// opened is closed, the fence released, and nothing is left behind.
//
// Commit decisions wait for as long as the fence holds, so it holds for
// at most maxHold (0: no bound): a snapshot that has not opened by then is
// abandoned (its opening is cancelled, and it is closed if it opens
// anyway), the fence is released at once, and the error is a
// *SlowSnapshotError naming the slow stores.
func Take(ctx context.Context, coordinator string, stores map[string]Engine, timeout, maxHold time.Duration) (*Cut, error) {
	ce, ok := stores[coordinator]
	if !ok {
		return nil, fmt.Errorf("the coordinator store %q is not among the stores to cut", coordinator)
	}
	var c *Cut
	wait, hold, err := Fenced(ctx, coordinator, ce, timeout, func() error {
		var err error
		c, err = open(ctx, stores, maxHold)
		return err
	})
	var slow *SlowSnapshotError
	if errors.As(err, &slow) {
		slow.Held = hold
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	c.FenceWait, c.FenceHold, c.At = wait, hold, time.Now()
	slog.Info("cut: taken; the fence is released", "coordinator_store", coordinator, "fence_wait", c.FenceWait, "fence_hold", c.FenceHold, "stores", len(stores))
	c.logSnapshots()
	return c, nil
}

// Fenced holds the coordinator store's fence while during runs: no
// commit decision is taken meanwhile, so whatever during records in each
// store (a snapshot, a log position) is one cut. It says how long the
// fence took to be granted and how long it held. during should be quick
// and bounded: every commit in the system waits for it.
func Fenced(ctx context.Context, coordinator string, e Engine, timeout time.Duration, during func() error) (wait, hold time.Duration, err error) {
	start := time.Now()
	slog.Debug("cut: waiting for the coordinator fence", "store", coordinator, "timeout", timeout)
	fence, err := e.AcquireFence(ctx, timeout)
	if err != nil {
		return 0, 0, fmt.Errorf("cut: %w", err)
	}
	granted := time.Now()
	err = during()
	released := time.Now()
	if rerr := fence.Release(); rerr != nil && err == nil {
		err = fmt.Errorf("cut: release the fence: %w", rerr)
	}
	return granted.Sub(start), released.Sub(granted), err
}

// opened is one store's OpenSnapshot outcome.
type opened struct {
	store string
	snap  Snapshot
	took  time.Duration
	err   error
}

// Open opens a snapshot of every store in parallel, with no fence of its
// own: a cut only when the applications are paused (the classic mode), or
// under Take's fence. It gives up on snapshots not open within limit (0: no
// limit) with a *SlowSnapshotError: their opening is cancelled, and any
// that opens later is closed.
func Open(ctx context.Context, stores map[string]Engine, limit time.Duration) (*Cut, error) {
	c, err := open(ctx, stores, limit)
	if err == nil {
		c.logSnapshots()
	}
	return c, err
}

// logSnapshots logs how long each snapshot took to open and where it cut
// its store: after the fence is released, so logging never lengthens it.
func (c *Cut) logSnapshots() {
	for _, name := range slices.Sorted(maps.Keys(c.Snapshots)) {
		slog.Info("cut: snapshot", "store", name, "took", c.took[name], "point", c.Snapshots[name].Point())
	}
}

func open(ctx context.Context, stores map[string]Engine, limit time.Duration) (*Cut, error) {
	// The snapshots live in this context (a transaction ends with its
	// context): Close cancels it, as does giving up.
	sctx, cancel := context.WithCancel(ctx)
	c := &Cut{Snapshots: map[string]Snapshot{}, took: map[string]time.Duration{}, At: time.Now(), cancel: cancel}
	results := make(chan opened, len(stores))
	pending := map[string]bool{}
	for name, e := range stores {
		pending[name] = true
		go func() {
			began := time.Now()
			s, err := e.OpenSnapshot(sctx)
			results <- opened{name, s, time.Since(began), err}
		}()
	}
	var expired <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	var errs []error
	for len(pending) > 0 {
		select {
		case r := <-results:
			delete(pending, r.store)
			if r.err != nil {
				errs = append(errs, fmt.Errorf("cut: snapshot of store %s: %w", r.store, r.err))
			} else {
				c.Snapshots[r.store] = r.snap
				c.took[r.store] = r.took
			}
		case <-expired:
			slow := &SlowSnapshotError{Stores: slices.Sorted(maps.Keys(pending)), MaxHold: limit}
			for _, name := range slow.Stores {
				if a, ok := stores[name].(slowAdviser); ok {
					slow.Advice = append(slow.Advice, "store "+name+": "+a.slowAdvice())
				}
			}
			c.Close()
			// Whatever still opens is closed as soon as it does.
			go func(n int) {
				for range n {
					if r := <-results; r.err == nil {
						r.snap.Close()
					}
				}
			}(len(pending))
			return nil, slow
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
