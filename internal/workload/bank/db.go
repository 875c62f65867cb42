package bank

import (
	"context"
	"sync/atomic"

	"github.com/stillpoint/stillpoint/internal/client"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// DB begins transactions: in this process, or on servers.
type DB interface {
	Begin(ctx context.Context, iso consensus.Isolation, idPrefix string) (Tx, error)
}

// Tx is what a transfer needs of a transaction.
type Tx interface {
	Get(ctx context.Context, g storage.Get) (storage.Record, error)
	Put(ctx context.Context, p storage.Put) error
	Commit(ctx context.Context) error
	Abort(ctx context.Context) error
}

// Local runs transactions in this process.
func Local(m *txn.Manager) DB { return local{m} }

type local struct{ m *txn.Manager }

func (l local) Begin(_ context.Context, iso consensus.Isolation, prefix string) (Tx, error) {
	return localTx{l.m.BeginWith(iso, prefix)}, nil
}

type localTx struct{ *txn.Transaction }

func (t localTx) Abort(context.Context) error { t.Transaction.Abort(); return nil }

// Remote runs transactions on servers, spreading them round-robin.
func Remote(clients []*client.Client) DB { return &remote{clients: clients} }

type remote struct {
	clients []*client.Client
	next    atomic.Uint64
}

func (r *remote) Begin(ctx context.Context, iso consensus.Isolation, prefix string) (Tx, error) {
	c := r.clients[r.next.Add(1)%uint64(len(r.clients))]
	return c.Begin(ctx, iso, prefix)
}
