package verify_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/verify"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// TestCampaignVerifyLive runs verify again and again while transfers
// commit: it must never report a violation the workload did not make, and
// still find the ones planted while the transfers run.
func TestCampaignVerifyLive(t *testing.T) {
	trials := testenv.Trials(t, 3, 50)
	setups := []struct {
		name string
		cfg  func(t *testing.T, namespaces []string) *config.Config
	}{
		{"sqlite", func(t *testing.T, _ []string) *config.Config { return testenv.Embedded(t) }},
		{"postgres+mariadb", func(t *testing.T, ns []string) *config.Config { return testenv.Mixed(t, ns...) }},
	}
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			ctx := context.Background()
			namespaces := []string{testenv.UniqueName("vl"), testenv.UniqueName("vl")}
			st := multistorage.New(setup.cfg(t, namespaces))
			defer st.Close()
			m := txn.NewManager(st, txn.Options{})
			const accounts = 8
			s := bank.Setup{Namespaces: namespaces, Accounts: accounts, InitialBalance: 1000}
			if err := bank.Create(ctx, st, m, s, nil); err != nil {
				t.Fatal(err)
			}
			// The transfers leave the last account of each namespace alone,
			// so what is planted there stays planted.
			moved := s
			moved.Accounts--
			var committed atomic.Int64
			wctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				_, err := bank.Run(wctx, bank.Local(m), &moved, bank.Workload{Concurrency: 4, Duration: time.Hour,
					Progress: func(st bank.Stats) { committed.Store(st.Committed) }})
				done <- err
			}()
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			// run verifies until one run overlapped at least one commit; the
			// caller's checks apply to that run. Runs with no commit in them
			// do not count as trials.
			var runs, overlapped, minOverlap int64 = 0, 0, -1
			run := func(t *testing.T) *verify.Report {
				t.Helper()
				for range 20 {
					before := committed.Load()
					rep, err := verify.Run(ctx, st, m, verify.Options{})
					if err != nil {
						t.Fatal(err)
					}
					runs++
					if n := committed.Load() - before; n > 0 {
						overlapped++
						if minOverlap < 0 || n < minOverlap {
							minOverlap = n
						}
						return rep
					}
				}
				t.Fatal("20 verify runs in a row overlapped no commit: the workload is not running")
				return nil
			}
			for i := range trials {
				if rep := run(t); !rep.OK() {
					t.Fatalf("trial %d: verify reported a consistent live system as broken: %+v", i, rep)
				}
			}
			// --repair on a live system waits only for what it found
			// undecided, not for the transactions that keep starting (the
			// hour-long Wait would otherwise time the test out).
			rep, err := verify.Run(ctx, st, m, verify.Options{Repair: true, Wait: time.Hour, Poll: 10 * time.Millisecond})
			if err != nil || len(rep.Violations) != 0 {
				t.Fatalf("--repair on a live system: %+v, %v", rep, err)
			}
			t.Logf("%d clean trials, each overlapping at least %d commits (%d of %d runs overlapped a commit)", trials, minOverlap, overlapped, runs)
			last := storage.Key{"account_id": accounts - 1}
			plants := []struct {
				name   string
				put    storage.Put
				detail string
			}{
				{"record COMMITTED by a transaction the coordinator aborted", storage.Put{Namespace: namespaces[1], Table: bank.AccountsTable,
					Values: storage.Record{"account_id": last["account_id"], schema.TxID: "ghost", schema.TxState: int32(consensus.Committed)}},
					"record COMMITTED but coordinator says ABORTED"},
				{"balance changed outside a transaction", storage.Put{Namespace: namespaces[0], Table: bank.AccountsTable,
					Values: storage.Record{"account_id": last["account_id"], "balance": int64(1001)}},
					"total balance"},
			}
			if err := st.Put(ctx, consensus.CoordinatorPut("ghost", consensus.Aborted, 0)); err != nil {
				t.Fatal(err)
			}
			for _, p := range plants {
				if err := st.Put(ctx, p.put); err != nil {
					t.Fatal(err)
				}
				rep := run(t)
				found := false
				for _, v := range rep.Violations {
					found = found || strings.Contains(v.Detail, p.detail)
				}
				if !found {
					t.Errorf("%s: not found: %+v", p.name, rep.Violations)
				}
			}
		})
	}
}
