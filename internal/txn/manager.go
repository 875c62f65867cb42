// Package txn runs Consensus Commit transactions over stores: it carries
// out the reads and writes that the pure protocol in package consensus asks
// for, and recovers records that other transactions left pending.
package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// DefaultLifetime is how long a pending write is presumed to belong to a
// live transaction; ScalarDB's default.
const DefaultLifetime = 15 * time.Second

// Options configure a Manager.
type Options struct {
	// Lifetime after which a reader may abort a transaction that left a
	// record prepared without a decision. Default 15 s. Negative: every
	// undecided write counts as expired, as after a restore, where no
	// writer is alive.
	Lifetime time.Duration
	// Isolation of transactions begun with Begin. Default SNAPSHOT.
	Isolation consensus.Isolation
	// Now is the clock (tests replace it).
	Now func() time.Time
	// Logger receives recovery and rollback failures.
	Logger *slog.Logger
	// AsyncCommit: Commit returns once the decision is recorded and the
	// commit records are written afterwards, batched across transactions
	// (ScalarDB's scalar.db.consensus_commit.async_commit.enabled). This
	// manager's transactions wait for them before reading such a record;
	// other clients meet it PREPARED and settle it by lazy recovery. Call
	// Flush before reading the stores directly. Default off
	// (docs/performance-transactions.md says why).
	AsyncCommit bool
	// GroupDecisions: the coordinator inserts of concurrent transactions
	// are written together, one round trip for all that queued while the
	// last group was written; each keeps its own row. Default off
	// (docs/performance-transactions.md).
	GroupDecisions bool
	// SeparateDecision: the coordinator insert is a local transaction of
	// its own, as in ScalarDB, even where records share the coordinator's
	// store; by default their writes join it (docs/performance-transactions.md).
	// GroupDecisions implies it.
	SeparateDecision bool
}

// Manager begins transactions over a store that routes every namespace,
// the coordinator's included.
type Manager struct {
	store    storage.Store
	lifetime time.Duration
	iso      consensus.Isolation
	now      func() time.Time
	log      *slog.Logger

	mu     sync.Mutex
	tables map[string]*storage.TableMetadata

	async *asyncCommits // nil: commit records are written before Commit returns
	// decisions groups coordinator inserts (nil: one Put each).
	decisions *decisions
	// separate: no writes join the decision's local transaction.
	separate bool

	hooks hooks
}

// hooks let tests stop a commit as a crash would.
type hooks struct {
	// crashAt, when it says crash, stops the commit at step after applying
	// only the first n of the step's writes (the decision insert counts as one).
	crashAt func(step consensus.Step) (n int, crash bool)
	// asyncBatch runs before each batch of asynchronous commit records is
	// written; false drops the batch, as a crash would.
	asyncBatch func() bool
	// awaitCommit runs when a reader starts waiting for the asynchronous
	// commit records of transaction id.
	awaitCommit func(id string)
}

// errCrashed is what a commit stopped by hooks.crashAt returns.
var errCrashed = errors.New("simulated crash")

// NewManager returns a manager over store.
func NewManager(store storage.Store, opts Options) *Manager {
	switch {
	case opts.Lifetime == 0:
		opts.Lifetime = DefaultLifetime
	case opts.Lifetime < 0:
		opts.Lifetime = consensus.NoLifetime * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Manager{store: store, lifetime: opts.Lifetime, iso: opts.Isolation, now: opts.Now, log: opts.Logger, tables: map[string]*storage.TableMetadata{},
		separate: opts.SeparateDecision || opts.GroupDecisions}
	if opts.AsyncCommit {
		m.async = newAsyncCommits(m)
	}
	if opts.GroupDecisions {
		m.decisions = newDecisions(m)
	}
	return m
}

// Flush waits until the commit records of every transaction committed so
// far are written (or left to lazy recovery, if writing them failed). It
// returns at once without AsyncCommit.
func (m *Manager) Flush(ctx context.Context) error {
	if m.async == nil {
		return nil
	}
	return m.async.flush(ctx)
}

// Store is the storage the manager runs on.
func (m *Manager) Store() storage.Store { return m.store }

func (m *Manager) millis() int64 { return m.now().UnixMilli() }

// Table returns a transactional table's metadata.
func (m *Manager) Table(ctx context.Context, namespace, table string) (*storage.TableMetadata, error) {
	full := namespace + "." + table
	m.mu.Lock()
	t, ok := m.tables[full]
	m.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := m.store.TableMetadata(ctx, namespace, table)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, fmt.Errorf("%s: %w", full, storage.ErrTableNotFound)
	}
	if !schema.IsTransactional(t) {
		return nil, fmt.Errorf("%s: %w (load it with \"transaction\": true)", full, ErrNotTransactional)
	}
	m.mu.Lock()
	m.tables[full] = t
	m.mu.Unlock()
	return t, nil
}

// Begin starts a transaction at the manager's default isolation.
func (m *Manager) Begin() *Transaction { return m.BeginWith(m.iso, "") }

// BeginWith starts a transaction at an isolation, with an id prefix (so
// that its coordinator row can be told apart, as the bank workload does).
func (m *Manager) BeginWith(iso consensus.Isolation, idPrefix string) *Transaction {
	return &Transaction{m: m, tx: consensus.NewTx(idPrefix+uuid.NewString(), iso)}
}

// Run runs fn in a transaction and commits it, retrying conflicts up to
// attempts times with a short randomised back-off. An unknown status is
// never retried: the first attempt may have committed.
func (m *Manager) Run(ctx context.Context, attempts int, fn func(ctx context.Context, tx *Transaction) error) error {
	var err error
	for i := range max(attempts, 1) {
		tx := m.Begin()
		if err = fn(ctx, tx); err == nil {
			err = tx.Commit(ctx)
		} else {
			tx.Abort()
		}
		if err == nil || !Retriable(err) {
			return err
		}
		if werr := backoff(ctx, i); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}

func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(1<<min(attempt, 6)) * time.Millisecond
	d += time.Duration(uuid.New().ID()%1000) * d / 1000
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
