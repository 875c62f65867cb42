package bank_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestConcurrentTransfers runs the workload in-process, so that go test
// -race watches the transaction paths under contention: at both
// isolations, and with grouped decisions and asynchronous commit records,
// on SQLite and on one PostgreSQL (where a transaction's writes are
// pipelined).
func TestConcurrentTransfers(t *testing.T) {
	onePG := func(t testing.TB) *config.Config {
		return &config.Config{DataDir: t.TempDir(), Source: "test", Coordinator: "pg",
			Stores:     map[string]config.Store{"pg": {Engine: "postgres", DSN: testenv.PostgresDSN(t)}},
			Namespaces: map[string]string{bank.DefaultNamespaces[0]: "pg", bank.DefaultNamespaces[1]: "pg"}}
	}
	for _, tt := range []struct {
		name string
		cfg  func(t testing.TB) *config.Config
		iso  consensus.Isolation
		opts txn.Options
	}{
		{"sqlite/SNAPSHOT", testenv.Embedded, consensus.Snapshot, txn.Options{}},
		{"sqlite/SERIALIZABLE", testenv.Embedded, consensus.Serializable, txn.Options{}},
		{"postgres/SNAPSHOT", onePG, consensus.Snapshot, txn.Options{}},
		{"postgres/SNAPSHOT grouped async", onePG, consensus.Snapshot, txn.Options{GroupDecisions: true, AsyncCommit: true}},
		{"postgres/SERIALIZABLE grouped async", onePG, consensus.Serializable, txn.Options{GroupDecisions: true, AsyncCommit: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := multistorage.New(tt.cfg(t))
			defer st.Close()
			m := txn.NewManager(st, tt.opts)
			s := bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 10, InitialBalance: 100}
			if err := bank.Create(ctx, st, m, s, nil); err != nil {
				t.Fatal(err)
			}
			stats, err := bank.Run(ctx, bank.Local(m), &s, bank.Workload{Concurrency: 8, Count: 400, Isolation: tt.iso})
			if err != nil {
				t.Fatal(err)
			}
			if stats.Committed == 0 || stats.Failed != 0 || stats.Aborted == 0 {
				t.Fatalf("with 10 hot accounts there must be commits and conflicts and no failures: %+v", stats)
			}
			if err := m.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			iv, err := bank.Check(ctx, st, &s)
			if err != nil || !iv.OK() || iv.CommittedTransfers != stats.Committed {
				t.Fatalf("invariants: %+v, %v (run committed %d)", iv, err, stats.Committed)
			}
		})
	}
}

// TestCheckDetectsLostMoney: the invariants must be able to fail.
func TestCheckDetectsLostMoney(t *testing.T) {
	ctx := context.Background()
	st := multistorage.New(testenv.Embedded(t))
	defer st.Close()
	m := txn.NewManager(st, txn.Options{})
	s := bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 3, InitialBalance: 100}
	if err := bank.Create(ctx, st, m, s, nil); err != nil {
		t.Fatal(err)
	}
	// Half a transfer, written straight to the store: money vanishes.
	err := st.Put(ctx, storage.Put{Namespace: "bank_0", Table: bank.AccountsTable, Values: storage.Record{"account_id": 0, "balance": int64(50)}})
	if err != nil {
		t.Fatal(err)
	}
	iv, err := bank.Check(ctx, st, &s)
	if err != nil || iv.OK() || iv.Total != 550 {
		t.Fatalf("a lost 50 must break the total: %+v, %v", iv, err)
	}
}

// Damaged accounts are errors of the transfer and of the check that name
// the account, never a crash of the workload.
func TestDamagedAccountIsAnError(t *testing.T) {
	ctx := context.Background()
	st := multistorage.New(testenv.Embedded(t))
	defer st.Close()
	m := txn.NewManager(st, txn.Options{})
	s := bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 1, InitialBalance: 100}
	if err := bank.Create(ctx, st, m, s, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, storage.Put{Namespace: "bank_1", Table: bank.AccountsTable, Values: storage.Record{"account_id": 0, "balance": nil}}); err != nil {
		t.Fatal(err)
	}
	stats, err := bank.Run(ctx, bank.Local(m), &s, bank.Workload{Concurrency: 1, Count: 2})
	if err != nil || stats.Failed != 2 || !strings.Contains(stats.LastError, "bank_1.accounts account_id 0") {
		t.Fatalf("transfers over a NULL balance: %+v, %v", stats, err)
	}
	iv, err := bank.Check(ctx, st, &s)
	if err != nil || iv.OK() || !strings.Contains(strings.Join(iv.Violations, "\n"), "bank_1.accounts account_id 0") {
		t.Fatalf("check over a NULL balance: %+v, %v", iv, err)
	}
}
