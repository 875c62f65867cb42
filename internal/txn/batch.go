package txn

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// router is the optional side of a store that routes namespaces to the
// stores holding them (multistorage): a batch goes to the store itself.
type router interface {
	StoreName(namespace string) (string, error)
	ForNamespace(ctx context.Context, namespace string) (storage.Store, error)
}

// storeBatch is the mutations that go to one store, and where each came
// from in the caller's list.
type storeBatch struct {
	store storage.EachMutator
	ms    []storage.Mutation
	at    []int
}

// byStore splits mutations by the store that holds them, or says (false)
// that some store cannot take them in one MutateEach.
func (m *Manager) byStore(ctx context.Context, ms []storage.Mutation) ([]storeBatch, bool) {
	r, ok := m.store.(router)
	if !ok {
		em, ok := m.store.(storage.EachMutator)
		at := make([]int, len(ms))
		for i := range at {
			at[i] = i
		}
		return []storeBatch{{store: em, ms: ms, at: at}}, ok
	}
	index := map[string]int{}
	var out []storeBatch
	for j, mu := range ms {
		ns, _ := storage.Target(mu)
		name, err := r.StoreName(ns)
		if err != nil {
			return nil, false
		}
		i, seen := index[name]
		if !seen {
			st, err := r.ForNamespace(ctx, ns)
			if err != nil {
				return nil, false
			}
			em, ok := st.(storage.EachMutator)
			if !ok {
				return nil, false
			}
			i = len(out)
			index[name] = i
			out = append(out, storeBatch{store: em})
		}
		out[i].ms = append(out[i].ms, mu)
		out[i].at = append(out[i].at, j)
	}
	return out, true
}

// mutateEach applies mutations each on its own condition and returns each
// one's error (a NoMutationError when its condition failed): one
// MutateEach per store (one round trip on PostgreSQL), stores in
// parallel; where a store has no MutateEach, one Mutate per mutation, in
// parallel. Every mutation is attempted.
func (m *Manager) mutateEach(ctx context.Context, ms []storage.Mutation) []error {
	errs := make([]error, len(ms))
	var g errgroup.Group // no shared context: every store is attempted
	g.SetLimit(16)
	batches, ok := m.byStore(ctx, ms)
	if !ok {
		for i, mu := range ms {
			g.Go(func() error { errs[i] = m.store.Mutate(ctx, []storage.Mutation{mu}); return nil })
		}
		_ = g.Wait()
		return errs
	}
	for _, b := range batches {
		g.Go(func() error {
			each, err := b.store.MutateEach(ctx, b.ms)
			for k, i := range b.at {
				if err != nil {
					errs[i] = err
				} else {
					errs[i] = each[k]
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	return errs
}

// mutate is mutateEach that returns the first error. Whether the other
// mutations were applied does not matter to the protocol: a prepare that
// fails aborts the transaction, whose rollback undoes the records it did
// prepare (docs/performance-transactions.md).
func (m *Manager) mutate(ctx context.Context, ms []storage.Mutation) error {
	for _, err := range m.mutateEach(ctx, ms) {
		if err != nil {
			return err
		}
	}
	return nil
}

// batcher hands what is queued to one writer at a time; what queues while
// it writes goes in its next batch, so batches grow with the load and need
// no timer.
type batcher[T any] struct {
	write func([]T)

	mu      sync.Mutex
	queue   []T
	writing bool
}

func (b *batcher[T]) add(item T) {
	b.mu.Lock()
	b.queue = append(b.queue, item)
	start := !b.writing
	b.writing = true
	b.mu.Unlock()
	if start {
		go b.run()
	}
}

// run writes batches until the queue is empty.
func (b *batcher[T]) run() {
	for {
		b.mu.Lock()
		batch := b.queue
		b.queue = nil
		if len(batch) == 0 {
			b.writing = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.write(batch)
	}
}

// decisions writes the coordinator inserts of concurrent transactions
// together (Options.GroupDecisions): one MutateEach, so one round trip and
// one local transaction on PostgreSQL, for all that queued while the last
// batch was written. Each transaction still has its own row, as in every
// ScalarDB release, and learns whether its own insert was applied.
type decisions struct {
	m *Manager
	batcher[decision]
}

// decision is one coordinator insert and where its outcome goes.
type decision struct {
	put  storage.Put
	done chan error
}

func newDecisions(m *Manager) *decisions {
	d := &decisions{m: m}
	d.batcher.write = d.write
	return d
}

func (d *decisions) write(batch []decision) {
	ms := make([]storage.Mutation, len(batch))
	for i, x := range batch {
		ms[i] = x.put
	}
	for i, err := range d.m.mutateEach(context.Background(), ms) {
		batch[i].done <- err
	}
}

// decide applies a coordinator insert, in a group when the manager groups
// them. A context that ends first leaves the insert's fate unknown, as a
// lost connection would.
func (m *Manager) decide(ctx context.Context, put storage.Put) error {
	if m.decisions == nil {
		return m.store.Put(ctx, put)
	}
	done := make(chan error, 1)
	m.decisions.add(decision{put: put, done: done})
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
