package dynamodb_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// TestBank runs concurrent transfers with Consensus Commit on DynamoDB
// alone (the coordinator too) and across DynamoDB and PostgreSQL, the
// coordinator on either, in both isolations, and checks the bank's
// invariants: no money made or lost, and the committed transfers counted
// in the coordinator.
func TestBank(t *testing.T) {
	cases := []struct {
		name        string
		stores      []string // where bank_0, bank_1, bank_2 go
		coordinator string
	}{
		{"dynamodb", []string{"dy", "dy", "dy"}, "dy"},
		{"dynamodb+postgres/coordinator on dynamodb", []string{"dy", "pg", "dy"}, "dy"},
		{"dynamodb+postgres/coordinator on postgres", []string{"pg", "dy", "dy"}, "pg"},
	}
	for _, c := range cases {
		for _, iso := range []consensus.Isolation{consensus.Snapshot, consensus.Serializable} {
			t.Run(c.name+"/"+iso.String(), func(t *testing.T) { runBank(t, c.stores, c.coordinator, iso) })
		}
	}
}

func runBank(t *testing.T, stores []string, coordinator string, iso consensus.Isolation) {
	ctx := context.Background()
	cfg := &config.Config{
		DataDir:     t.TempDir(),
		Stores:      map[string]config.Store{"dy": {Engine: "dynamodb", DSN: testenv.DynamoDSN(t)}},
		Namespaces:  map[string]string{},
		Coordinator: coordinator,
		Source:      "test",
	}
	s := bank.Setup{Accounts: 5, InitialBalance: 100}
	for i, store := range stores {
		if store == "pg" && cfg.Stores["pg"].DSN == "" {
			cfg.Stores["pg"] = config.Store{Engine: "postgres", DSN: testenv.PostgresDSN(t)}
		}
		ns := fmt.Sprintf("bank_%d", i)
		cfg.Namespaces[ns] = store
		s.Namespaces = append(s.Namespaces, ns)
	}
	st := multistorage.New(cfg)
	defer st.Close()
	m := txn.NewManager(st, txn.Options{})
	if err := bank.Create(ctx, st, m, s, nil); err != nil {
		t.Fatal(err)
	}
	stats, err := bank.Run(ctx, bank.Local(m), &s, bank.Workload{Concurrency: 6, Count: 150, Isolation: iso})
	if err != nil {
		t.Fatal(err)
	}
	// 15 hot accounts and 6 workers: conflicts must happen, and be aborts,
	// never failures.
	if stats.Committed == 0 || stats.Failed != 0 || stats.Aborted == 0 {
		t.Fatalf("want commits, conflicts and no failures: %+v", stats)
	}
	iv, err := bank.Check(ctx, st, &s)
	if err != nil || !iv.OK() || iv.CommittedTransfers != stats.Committed {
		t.Fatalf("invariants: %+v, %v (run committed %d)", iv, err, stats.Committed)
	}
	t.Logf("committed %d, aborted %d, p50 %v, p99 %v", stats.Committed, stats.Aborted, stats.P50, stats.P99)
}
