package bank_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestConcurrentTransfers runs the workload in-process, so that go test
// -race watches the transaction paths under contention.
func TestConcurrentTransfers(t *testing.T) {
	for _, iso := range []consensus.Isolation{consensus.Snapshot, consensus.Serializable} {
		t.Run(iso.String(), func(t *testing.T) {
			ctx := context.Background()
			st := multistorage.New(testenv.Embedded(t))
			defer st.Close()
			m := txn.NewManager(st, txn.Options{})
			s := bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 10, InitialBalance: 100}
			if err := bank.Create(ctx, st, m, s, nil); err != nil {
				t.Fatal(err)
			}
			stats, err := bank.Run(ctx, bank.Local(m), &s, bank.Workload{Concurrency: 8, Duration: 3 * time.Second, Isolation: iso})
			if err != nil {
				t.Fatal(err)
			}
			if stats.Committed == 0 || stats.Failed != 0 || stats.Aborted == 0 {
				t.Fatalf("with 10 hot accounts there must be commits and conflicts and no failures: %+v", stats)
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
