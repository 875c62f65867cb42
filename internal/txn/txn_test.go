package txn

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// engine is a set of stores the transaction tests run on.
type engine struct {
	name string
	cfg  func(t *testing.T, namespaces ...string) *config.Config
}

var engines = []engine{
	{"sqlite", func(t *testing.T, _ ...string) *config.Config { return testenv.Embedded(t) }},
	{"postgres+mariadb", func(t *testing.T, ns ...string) *config.Config { return testenv.Mixed(t, ns...) }},
	{"dynamodb", func(t *testing.T, ns ...string) *config.Config { return testenv.Dynamo(t, ns...) }},
	{"dynamodb+postgres", func(t *testing.T, ns ...string) *config.Config { return testenv.DynamoPostgres(t, ns...) }},
	// Both namespaces in one PostgreSQL: a transaction's writes to it go
	// in one pipeline.
	{"postgres", func(t *testing.T, ns ...string) *config.Config {
		cfg := &config.Config{DataDir: t.TempDir(), Source: "test", Coordinator: "pg",
			Stores: map[string]config.Store{"pg": {Engine: "postgres", DSN: testenv.PostgresDSN(t)}}, Namespaces: map[string]string{}}
		for _, n := range ns {
			cfg.Namespaces[n] = "pg"
		}
		return cfg
	}},
}

// fixture is two account tables in two stores and a manager with a clock
// the test moves.
type fixture struct {
	st      *multistorage.Storage
	m       *Manager
	nsA     string
	nsB     string
	clock   atomic.Int64 // milliseconds
	lifetim time.Duration
}

func newFixture(t *testing.T, e engine) *fixture {
	t.Helper()
	f := &fixture{nsA: testenv.UniqueName("a"), nsB: testenv.UniqueName("b"), lifetim: 15 * time.Second}
	f.clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	f.st = multistorage.New(e.cfg(t, f.nsA, f.nsB))
	t.Cleanup(func() { f.st.Close() })
	var tables []schema.Table
	for _, ns := range []string{f.nsA, f.nsB} {
		tables = append(tables, schema.Table{Transactional: true, User: &storage.TableMetadata{
			Namespace: ns, Table: "accounts",
			Columns:      []storage.Column{{Name: "id", Type: storage.Int}, {Name: "balance", Type: storage.BigInt}},
			PartitionKey: []string{"id"},
		}})
	}
	if _, err := schema.Create(context.Background(), f.st, tables); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	f.manager(Options{})
	return f
}

// manager replaces the fixture's manager by one with options o, on the
// fixture's clock and lifetime.
func (f *fixture) manager(o Options) {
	o.Lifetime, o.Now = f.lifetim, func() time.Time { return time.UnixMilli(f.clock.Load()) }
	f.m = NewManager(f.st, o)
}

// newAccounts is a fixture with account 1 in A and account 2 in B, both
// holding 100.
func newAccounts(t *testing.T, e engine) *fixture {
	t.Helper()
	f := newFixture(t, e)
	f.put(t, f.nsA, 1, 100)
	f.put(t, f.nsB, 2, 100)
	return f
}

func (f *fixture) advance(d time.Duration) { f.clock.Add(d.Milliseconds()) }

func (f *fixture) put(t *testing.T, ns string, id int, balance int64) {
	t.Helper()
	err := f.m.Run(context.Background(), 1, func(ctx context.Context, tx *Transaction) error {
		return tx.Put(ctx, storage.Put{Namespace: ns, Table: "accounts", Values: storage.Record{"id": id, "balance": balance}})
	})
	if err != nil {
		t.Fatalf("put %s/%d: %v", ns, id, err)
	}
}

// raw reads a record as stored, transaction columns included.
func (f *fixture) raw(t *testing.T, ns string, id int) storage.Record {
	t.Helper()
	r, err := f.st.Get(context.Background(), storage.Get{Namespace: ns, Table: "accounts", Key: storage.Key{"id": id}})
	if err != nil {
		t.Fatalf("raw get: %v", err)
	}
	return r
}

// read reads a record in a fresh transaction: what a reader sees.
func (f *fixture) read(ns string, id int) (storage.Record, error) {
	tx := f.m.Begin()
	defer tx.Abort()
	return tx.Get(context.Background(), storage.Get{Namespace: ns, Table: "accounts", Key: storage.Key{"id": id}})
}

func TestCommitAndRead(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			f := newAccounts(t, e)
			ctx := context.Background()
			tx := f.m.Begin()
			a, err := tx.Get(ctx, storage.Get{Namespace: f.nsA, Table: "accounts", Key: storage.Key{"id": 1}})
			if err != nil || a["balance"] != int64(100) {
				t.Fatalf("get = %v, %v", a, err)
			}
			if _, ok := a[schema.TxID]; ok {
				t.Errorf("transactional reads must not expose %s", schema.TxID)
			}
			tx.Put(ctx, storage.Put{Namespace: f.nsA, Table: "accounts", Values: storage.Record{"id": 1, "balance": int64(70)}})
			tx.Put(ctx, storage.Put{Namespace: f.nsB, Table: "accounts", Values: storage.Record{"id": 2, "balance": int64(130)}})
			if own, _ := tx.Get(ctx, storage.Get{Namespace: f.nsA, Table: "accounts", Key: storage.Key{"id": 1}}); own["balance"] != int64(70) {
				t.Errorf("a transaction must read its own write, got %v", own)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatalf("commit: %v", err)
			}
			for ns, want := range map[string]int64{f.nsA: 70, f.nsB: 130} {
				id := map[string]int{f.nsA: 1, f.nsB: 2}[ns]
				r := f.raw(t, ns, id)
				m := consensus.MetaOf(r)
				if r["balance"] != want || m.State != consensus.Committed || m.TxID != tx.ID() || m.Version != 2 {
					t.Errorf("%s/%d after commit = %v", ns, id, r)
				}
			}
			if tx.Commit(ctx) != ErrFinished {
				t.Error("a second commit must fail with ErrFinished")
			}
		})
	}
}

func TestWriteWriteConflict(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			f := newFixture(t, e)
			ctx := context.Background()
			f.put(t, f.nsA, 1, 100)
			t1, t2 := f.m.Begin(), f.m.Begin()
			for _, tx := range []*Transaction{t1, t2} {
				if _, err := tx.Get(ctx, storage.Get{Namespace: f.nsA, Table: "accounts", Key: storage.Key{"id": 1}}); err != nil {
					t.Fatal(err)
				}
			}
			t1.Put(ctx, storage.Put{Namespace: f.nsA, Table: "accounts", Values: storage.Record{"id": 1, "balance": int64(1)}})
			t2.Put(ctx, storage.Put{Namespace: f.nsA, Table: "accounts", Values: storage.Record{"id": 1, "balance": int64(2)}})
			if err := t1.Commit(ctx); err != nil {
				t.Fatalf("first commit: %v", err)
			}
			err := t2.Commit(ctx)
			if !errors.Is(err, ErrConflict) || !Retriable(err) {
				t.Fatalf("second commit = %v, want a retriable conflict", err)
			}
			if r := f.raw(t, f.nsA, 1); r["balance"] != int64(1) || consensus.MetaOf(r).State != consensus.Committed {
				t.Errorf("after conflict: %v", r)
			}
		})
	}
}
