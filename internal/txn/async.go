package txn

import (
	"context"
	"errors"
	"sync"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// asyncCommits writes the commit records of decided transactions after
// Commit has returned (Options.AsyncCommit). One writer drains the queue:
// what queues while it writes goes in its next batch, so batches grow with
// the load and need no timer. docs/performance-transactions.md.
type asyncCommits struct {
	m *Manager
	batcher[queuedCommit]

	mu sync.Mutex
	// pending maps a transaction id to a channel closed once its commit
	// records were written, or given up to lazy recovery.
	pending map[string]chan struct{}
}

// queuedCommit is the commit records of one transaction.
type queuedCommit struct {
	id string
	ms []storage.Mutation
}

func newAsyncCommits(m *Manager) *asyncCommits {
	a := &asyncCommits{m: m, pending: map[string]chan struct{}{}}
	a.batcher.write = a.write
	return a
}

// add queues the commit records of transaction id.
func (a *asyncCommits) add(id string, ms []storage.Mutation) {
	a.mu.Lock()
	a.pending[id] = make(chan struct{})
	a.mu.Unlock()
	a.batcher.add(queuedCommit{id: id, ms: ms})
}

// write writes a batch of commit records in one MutateEach per store.
func (a *asyncCommits) write(batch []queuedCommit) {
	var ms []storage.Mutation
	for _, q := range batch {
		ms = append(ms, q.ms...)
	}
	if h := a.m.hooks.asyncBatch; h == nil || h() {
		// A record already rolled forward by a reader fails its
		// condition; any other failure is lazy recovery's.
		if err := a.m.mutate(context.Background(), ms); err != nil && !errors.Is(err, storage.ErrNoMutation) {
			a.m.log.Info("commit records left for lazy recovery", "records", len(ms), "err", err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, q := range batch {
		close(a.pending[q.id])
		delete(a.pending, q.id)
	}
}

// await waits until the commit records of transaction id are written, if
// they are queued, and reports whether it waited.
func (a *asyncCommits) await(ctx context.Context, id string) (bool, error) {
	a.mu.Lock()
	ch, ok := a.pending[id]
	a.mu.Unlock()
	if !ok {
		return false, nil
	}
	if h := a.m.hooks.awaitCommit; h != nil {
		h(id)
	}
	select {
	case <-ch:
		return true, nil
	case <-ctx.Done():
		return true, ctx.Err()
	}
}

// flush waits until every commit record queued so far is written.
func (a *asyncCommits) flush(ctx context.Context) error {
	a.mu.Lock()
	chs := make([]chan struct{}, 0, len(a.pending))
	for _, ch := range a.pending {
		chs = append(chs, ch)
	}
	a.mu.Unlock()
	for _, ch := range chs {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
