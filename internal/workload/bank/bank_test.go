package bank_test

import (
	"context"
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
			if err := bank.Create(ctx, st, m, s); err != nil {
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
	if err := bank.Create(ctx, st, m, s); err != nil {
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
