package txn

import (
	"cmp"
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// router is the optional side of a store that routes namespaces to the
// stores holding them (multistorage): a batch goes to the store itself.
type router interface {
	StoreName(namespace string) (string, error)
	ForNamespace(ctx context.Context, namespace string) (storage.Store, error)
}

// storeBatch is the mutations of one transaction step (or of several
// transactions' commit records) that go to one store.
type storeBatch struct {
	store storage.EachMutator
	ms    []storage.Mutation
}

// byStore splits mutations by the store that holds them, or says (false)
// that some store cannot take them in one MutateEach.
func (m *Manager) byStore(ctx context.Context, ms []storage.Mutation) ([]storeBatch, bool) {
	r, ok := m.store.(router)
	if !ok {
		em, ok := m.store.(storage.EachMutator)
		return []storeBatch{{store: em, ms: ms}}, ok
	}
	index := map[string]int{}
	var out []storeBatch
	for _, mu := range ms {
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
	}
	return out, true
}

// mutate applies mutations each on its own condition: one MutateEach per
// store (one round trip on PostgreSQL), stores in parallel; where a store
// cannot, one Mutate per partition. Every mutation is attempted; the first
// error is returned (a NoMutationError when a condition failed). Whether
// the others were applied does not matter to the protocol: a prepare that
// fails aborts the transaction, whose rollback undoes the records it did
// prepare (docs/performance-transactions.md).
func (m *Manager) mutate(ctx context.Context, ms []storage.Mutation) error {
	batches, ok := m.byStore(ctx, ms)
	if !ok {
		return m.mutateGrouped(ctx, ms)
	}
	errs := make([]error, len(batches))
	var g errgroup.Group // no shared context: every store is attempted
	for i, b := range batches {
		g.Go(func() error {
			each, err := b.store.MutateEach(ctx, b.ms)
			errs[i] = cmp.Or(append([]error{err}, each...)...)
			return nil
		})
	}
	_ = g.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
