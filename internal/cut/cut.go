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
	"sync"
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
}

// Close ends every snapshot.
func (c *Cut) Close() error {
	var errs []error
	for _, s := range c.Snapshots {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// Take cuts the stores. The coordinator store is fenced; every store
// (the coordinator's too) gets a snapshot while the fence holds. If the
// fence is not granted within timeout, or any snapshot fails, everything
// opened is closed, the fence released, and nothing is left behind.
func Take(ctx context.Context, coordinator string, stores map[string]Engine, timeout time.Duration) (*Cut, error) {
	ce, ok := stores[coordinator]
	if !ok {
		return nil, fmt.Errorf("the coordinator store %q is not among the stores to cut", coordinator)
	}
	start := time.Now()
	fence, err := ce.AcquireFence(ctx, timeout)
	if err != nil {
		return nil, fmt.Errorf("cut: %w", err)
	}
	granted := time.Now()
	c, err := Open(ctx, stores)
	released := time.Now()
	if rerr := fence.Release(); rerr != nil && err == nil {
		c.Close()
		return nil, fmt.Errorf("cut: release the fence: %w", rerr)
	}
	if err != nil {
		return nil, err
	}
	c.FenceWait, c.FenceHold, c.At = granted.Sub(start), released.Sub(granted), released
	return c, nil
}

// Open opens a snapshot of every store, in parallel (the fence is held
// for as long as the slowest takes), with no fence of its own: a cut only
// when the applications are paused (the classic mode).
func Open(ctx context.Context, stores map[string]Engine) (*Cut, error) {
	c := &Cut{Snapshots: map[string]Snapshot{}, At: time.Now()}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for name, e := range stores {
		wg.Go(func() {
			s, err := e.OpenSnapshot(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("cut: snapshot of store %s: %w", name, err))
				return
			}
			c.Snapshots[name] = s
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
