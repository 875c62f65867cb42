package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// BenchmarkBackupStall measures what a backup of DynamoDB + PostgreSQL
// costs the applications. A DynamoDB store has no snapshot, so a fence
// backup reads it whole while the fence holds (docs/no-snapshot-cut.md);
// the pause mode stops every transaction for as long instead. Transfers
// run through an admin gate, as a server admits them, and each is timed
// from its first attempt to its commit, time refused by a pause included.
// The same load runs with no backup, across a fence backup and across a
// pause backup. STILLPOINT_BENCH_ITEMS sets the accounts in DynamoDB (and
// in PostgreSQL; default 10,000). Run it with
// ./scripts/bench.sh -bench BackupStall ./internal/storage/dynamodb/.
func BenchmarkBackupStall(b *testing.B) {
	ctx := context.Background()
	slog.SetLogLoggerLevel(slog.LevelWarn)
	items := 10_000
	if _, err := fmt.Sscan(os.Getenv("STILLPOINT_BENCH_ITEMS"), &items); err != nil || items < 2 {
		items = 10_000
	}
	cfg := &config.Config{DataDir: b.TempDir(), Source: "bench", Coordinator: "pg",
		Stores: map[string]config.Store{
			"pg": {Engine: "postgres", DSN: testenv.PostgresDSN(b)},
			"dy": {Engine: "dynamodb", DSN: testenv.DynamoDSN(b)},
		},
		Namespaces: map[string]string{"bank_0": "pg", "bank_1": "dy"}}
	st := multistorage.New(cfg)
	defer st.Close()
	m := txn.NewManager(st, txn.Options{})
	s := bank.Setup{Namespaces: []string{"bank_0", "bank_1"}, Accounts: items, InitialBalance: 100}
	began := time.Now()
	if err := bank.Create(ctx, st, m, s, nil); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("created %d accounts in each store in %v\n", items, time.Since(began).Round(time.Second))
	be, err := backend.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	r, err := repo.Init(ctx, be, nil)
	if err != nil {
		b.Fatal(err)
	}
	addr, gate := testenv.AdminServer(b, admin.GateOptions{Lease: time.Hour})
	fleet, err := admin.NewFleet([]string{addr}, admin.DialOptions{}, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer fleet.Close()

	type result struct {
		mode          string
		committed     int
		p50, p99, max time.Duration
		stopped       time.Duration // fence hold, or paused window
	}
	phase := func(mode string) result {
		load, stop := context.WithCancel(ctx)
		var mu sync.Mutex
		var latencies []time.Duration
		var committed atomic.Int64
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				for load.Err() == nil {
					first := time.Now()
					release, err := gate.Enter()
					for errors.Is(err, admin.ErrPaused) { // as a client retries a paused server
						select {
						case <-load.Done():
							return
						case <-time.After(time.Millisecond):
						}
						release, err = gate.Enter()
					}
					if err != nil {
						b.Error(err)
						return
					}
					err = bank.Transfer(ctx, bank.Local(m), &s, rng, consensus.Snapshot)
					release()
					if err == nil {
						mu.Lock()
						latencies = append(latencies, time.Since(first))
						mu.Unlock()
						committed.Add(1)
					}
				}
			})
		}
		awaitMore := func(n int64) {
			target := committed.Load() + n
			testenv.Await(b, fmt.Sprintf("%d committed transfers", target), func() bool { return committed.Load() >= target })
		}
		awaitMore(100)
		res := result{mode: mode}
		switch mode {
		case "no backup":
			awaitMore(400)
		case "fence":
			man, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence, FenceMaxHold: 10 * time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			res.stopped = man.FenceHold
		case "pause":
			man, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Pause, Fleet: fleet, FenceMaxHold: 10 * time.Minute, PauseWait: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			res.stopped = man.PausedWindow.End.Sub(man.PausedWindow.Start)
		}
		awaitMore(100)
		stop()
		wg.Wait()
		slices.Sort(latencies)
		res.committed, res.p50, res.p99, res.max = len(latencies), bank.Percentile(latencies, 0.5), bank.Percentile(latencies, 0.99), bank.Percentile(latencies, 1)
		return res
	}
	for range b.N {
		var results []result
		for _, mode := range []string{"no backup", "fence", "pause"} {
			results = append(results, phase(mode))
		}
		if iv, err := bank.Check(ctx, st, &s); err != nil || !iv.OK() {
			b.Fatalf("invariants after the runs: %+v %v", iv, err)
		}
		fmt.Printf("\ntransfers across PostgreSQL (coordinator) and DynamoDB (dynalite), %d accounts each, 8 at a time,\ntimed from the first attempt to the commit:\n", items)
		fmt.Printf("  %-10s %10s %10s %10s %10s   %s\n", "backup", "transfers", "p50", "p99", "max", "fence held / servers paused")
		for _, res := range results {
			fmt.Printf("  %-10s %10d %10v %10v %10v   %v\n", res.mode, res.committed, res.p50.Round(100*time.Microsecond),
				res.p99.Round(100*time.Microsecond), res.max.Round(100*time.Microsecond), res.stopped.Round(time.Millisecond))
		}
		b.ReportMetric(float64(results[1].max)/float64(results[2].max), "fence/pause-max-latency-ratio")
	}
}
