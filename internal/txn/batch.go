package txn

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// router is the optional side of a store that routes namespaces to the
// stores holding them (multistorage): a batch goes to the store itself.
type router interface {
	StoreName(namespace string) (string, error)
	ForNamespace(ctx context.Context, namespace string) (storage.Store, error)
}

// local returns the coordinator's store, when it applies writes
// atomically and the manager lets writes join the decision, and which
// records it holds (nil, nil: the decision is an insert of its own). An
// error finding it is left to the decision insert to report.
func (m *Manager) local(ctx context.Context) (storage.AtomicMutator, func(consensus.Ref) bool) {
	if m.separate {
		return nil, nil
	}
	r, ok := m.store.(router)
	if !ok {
		am, ok := m.store.(storage.AtomicMutator)
		if !ok {
			return nil, nil
		}
		return am, func(consensus.Ref) bool { return true }
	}
	name, err := r.StoreName(schema.CoordinatorNamespace)
	if err != nil {
		return nil, nil
	}
	st, err := r.ForNamespace(ctx, schema.CoordinatorNamespace)
	am, ok := st.(storage.AtomicMutator)
	if err != nil || !ok {
		return nil, nil
	}
	return am, func(ref consensus.Ref) bool {
		n, err := r.StoreName(ref.Table.Namespace)
		return err == nil && n == name
	}
}

// storeGroup is the items of a list that go to one store: their indexes.
type storeGroup struct {
	store storage.Store
	at    []int
}

// byStore groups namespaces by the store that holds them.
func (m *Manager) byStore(ctx context.Context, namespaces []string) ([]storeGroup, error) {
	r, ok := m.store.(router)
	if !ok {
		g := storeGroup{store: m.store, at: make([]int, len(namespaces))}
		for i := range g.at {
			g.at[i] = i
		}
		return []storeGroup{g}, nil
	}
	index := map[string]int{}
	var out []storeGroup
	for j, ns := range namespaces {
		name, err := r.StoreName(ns)
		if err != nil {
			return nil, err
		}
		i, seen := index[name]
		if !seen {
			st, err := r.ForNamespace(ctx, ns)
			if err != nil {
				return nil, err
			}
			i = len(out)
			index[name] = i
			out = append(out, storeGroup{store: st})
		}
		out[i].at = append(out[i].at, j)
	}
	return out, nil
}

// mutateEach applies mutations each on its own condition and returns each
// one's error (a NoMutationError when its condition failed): one
// MutateEach per store (one round trip on PostgreSQL), stores in
// parallel; where a store has no MutateEach, one Mutate per mutation, in
// parallel. Every mutation is attempted.
func (m *Manager) mutateEach(ctx context.Context, ms []storage.Mutation) []error {
	errs := make([]error, len(ms))
	namespaces := make([]string, len(ms))
	for i, mu := range ms {
		namespaces[i], _ = storage.Target(mu)
	}
	groups, err := m.byStore(ctx, namespaces)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	var tasks []func(context.Context) error // none fails: every mutation is attempted
	for _, gr := range groups {
		em, ok := gr.store.(storage.EachMutator)
		if !ok {
			for _, i := range gr.at {
				tasks = append(tasks, func(ctx context.Context) error { errs[i] = gr.store.Mutate(ctx, []storage.Mutation{ms[i]}); return nil })
			}
			continue
		}
		tasks = append(tasks, func(ctx context.Context) error {
			batch := make([]storage.Mutation, len(gr.at))
			for k, i := range gr.at {
				batch[k] = ms[i]
			}
			each, err := em.MutateEach(ctx, batch)
			for k, i := range gr.at {
				if err != nil {
					errs[i] = err
				} else {
					errs[i] = each[k]
				}
			}
			return nil
		})
	}
	_ = parallel(ctx, tasks)
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

// getEach reads records as stored: one GetEach per store (one round trip
// on PostgreSQL), stores in parallel; where a store has no GetEach, one Get
// each, in parallel.
func (m *Manager) getEach(ctx context.Context, refs []consensus.Ref) ([]storage.Record, error) {
	out := make([]storage.Record, len(refs))
	namespaces := make([]string, len(refs))
	for i, r := range refs {
		namespaces[i] = r.Table.Namespace
	}
	groups, err := m.byStore(ctx, namespaces)
	if err != nil {
		return nil, err
	}
	var tasks []func(context.Context) error
	for _, gr := range groups {
		eg, ok := gr.store.(storage.EachGetter)
		if !ok || len(gr.at) == 1 {
			for _, i := range gr.at {
				tasks = append(tasks, func(ctx context.Context) (err error) { out[i], err = gr.store.Get(ctx, refs[i].Get()); return err })
			}
			continue
		}
		tasks = append(tasks, func(ctx context.Context) error {
			gets := make([]storage.Get, len(gr.at))
			for k, i := range gr.at {
				gets[k] = refs[i].Get()
			}
			recs, err := eg.GetEach(ctx, gets)
			if err != nil {
				return err
			}
			for k, i := range gr.at {
				out[i] = recs[k]
			}
			return nil
		})
	}
	return out, parallel(ctx, tasks)
}

// parallel runs the tasks, at most 16 at a time, the last one in this
// goroutine: a transaction's steps mostly have one task per store, one or
// two, and each goroutine started and waited for costs scheduler CPU per
// transaction (docs/performance-transactions.md). The first error cancels
// the others' context and is returned.
func parallel(ctx context.Context, tasks []func(context.Context) error) error {
	switch len(tasks) {
	case 0:
		return nil
	case 1:
		return tasks[0](ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once  sync.Once
		first error
	)
	run := func(task func(context.Context) error) {
		if err := task(ctx); err != nil {
			once.Do(func() { first = err; cancel() })
		}
	}
	var g errgroup.Group
	g.SetLimit(16)
	for _, task := range tasks[:len(tasks)-1] {
		g.Go(func() error { run(task); return nil })
	}
	run(tasks[len(tasks)-1])
	_ = g.Wait()
	return first
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
