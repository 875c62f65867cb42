package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// bankConfig puts bank_0 and the coordinator in PostgreSQL, bank_1 in
// DynamoDB: the coordinator on a store that can hold the fence.
func bankConfig(dataDir, pgDSN, dyDSN string) *config.Config {
	return &config.Config{DataDir: dataDir, Source: "bench", Coordinator: "pg",
		Stores: map[string]config.Store{
			"pg": {Engine: "postgres", DSN: pgDSN},
			"dy": {Engine: "dynamodb", DSN: dyDSN},
		},
		Namespaces: map[string]string{"bank_0": "pg", "bank_1": "dy"}}
}

// capture is one way a backup cuts the stores, or none.
type capture struct {
	name string
	mode backup.Mode // "": no backup
	// dsn is added to the DynamoDB store's DSN for this backup.
	dsn string
}

// captures are the held fence read as one sequential scan (the plain
// held-fence scan), the design (the default segments), and the pause mode,
// beside no backup (docs/no-snapshot-cut.md).
var captures = []capture{
	{name: "no backup"},
	{name: "fence, 1 segment", mode: backup.Fence, dsn: "&scan_segments=1"},
	{name: "fence, 8 segments", mode: backup.Fence},
	{name: "pause", mode: backup.Pause},
}

// stallResult is what one capture cost the transfers that overlapped it.
type stallResult struct {
	capture
	transfers     int
	p50, p99, max time.Duration
	stopped       time.Duration // fence held, or servers paused
	read          time.Duration // DynamoDB read whole (the cut point says)
	records       int64
	took          time.Duration // the window: the whole backup, streaming included
}

// readWhole parses a scan's cut point (cut.ScanEngine).
var readWhole = regexp.MustCompile(`(\d+) records, \d+ segments each, in (\S+)`)

// BenchmarkBackupStall measures what a backup of DynamoDB + PostgreSQL
// costs the applications. A DynamoDB store has no snapshot, so a fence
// backup reads it whole while the fence holds (docs/no-snapshot-cut.md);
// the pause mode stops every transaction for as long instead. Transfers
// run through an admin gate, as a server admits them, and each is timed
// from its first attempt to its commit, time refused by a pause included;
// a capture's latencies are those of the transfers that overlapped its
// backup. STILLPOINT_BENCH_ITEMS sets the accounts in DynamoDB (and in
// PostgreSQL; default 10,000). Run it with
// ./scripts/bench.sh -bench BackupStall ./internal/storage/dynamodb/.
func BenchmarkBackupStall(b *testing.B) {
	ctx := context.Background()
	slog.SetLogLoggerLevel(slog.LevelWarn)
	items, err := strconv.Atoi(os.Getenv("STILLPOINT_BENCH_ITEMS"))
	if err != nil || items < 2 {
		items = 10_000
	}
	s := bank.Setup{Namespaces: []string{"bank_0", "bank_1"}, Accounts: items, InitialBalance: 100}
	began := time.Now()
	st, m, pgDSN, dyDSN := newBank(b, s)
	loaded := time.Since(began)
	// The bank is checked after the runs (count, total, versions): at
	// 1,000,000 accounts a check takes minutes on dynalite.
	fmt.Printf("loaded %d accounts into each store in %v (%.0f accounts/s)\n",
		items, loaded.Round(time.Millisecond), float64(2*items)/loaded.Seconds())

	addr, gate := testenv.AdminServer(b, admin.GateOptions{Lease: time.Hour})
	fleet, err := admin.NewFleet([]string{addr}, admin.DialOptions{}, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer fleet.Close()
	backupOnce := func(c capture) (*backup.Manifest, error) {
		r := newRepo(b)
		bst := multistorage.New(bankConfig(b.TempDir(), pgDSN, dyDSN+c.dsn))
		defer bst.Close()
		// The bound must allow DynamoDB's read whole: at 1,000,000 items
		// dynalite takes minutes.
		return backup.Create(ctx, bst, r, backup.Options{Mode: c.mode, Fleet: fleet, FenceMaxHold: time.Hour, PauseWait: time.Minute})
	}
	phase := func(c capture) stallResult {
		load, stop := context.WithCancel(ctx)
		type transfer struct{ first, done time.Time }
		var mu sync.Mutex
		var transfers []transfer
		committed := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(transfers)
		}
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
						transfers = append(transfers, transfer{first, time.Now()})
						mu.Unlock()
					}
				}
			})
		}
		awaitMore := func(n int) {
			target := committed() + n
			testenv.Await(b, fmt.Sprintf("%d committed transfers", target), func() bool { return committed() >= target })
		}
		awaitMore(100)
		res := stallResult{capture: c}
		start := time.Now()
		if c.mode == "" {
			awaitMore(400)
		} else {
			man, err := backupOnce(c)
			if err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			res.stopped = man.FenceHold
			if man.PausedWindow != nil {
				res.stopped = man.PausedWindow.End.Sub(man.PausedWindow.Start)
			}
			for _, sb := range man.Stores {
				if sb.Name != "dy" {
					continue
				}
				p := readWhole.FindStringSubmatch(sb.CutPoint)
				if p == nil {
					b.Fatalf("%s: DynamoDB's cut point %q does not say what was read", c.name, sb.CutPoint)
				}
				res.records, _ = strconv.ParseInt(p[1], 10, 64)
				if res.read, err = time.ParseDuration(p[2]); err != nil {
					b.Fatalf("%s: cut point %q: %v", c.name, sb.CutPoint, err)
				}
			}
		}
		end := time.Now()
		res.took = end.Sub(start)
		awaitMore(100)
		stop()
		wg.Wait()
		var latencies []time.Duration
		for _, t := range transfers {
			if t.first.Before(end) && t.done.After(start) {
				latencies = append(latencies, t.done.Sub(t.first))
			}
		}
		slices.Sort(latencies)
		res.transfers, res.p50, res.p99, res.max = len(latencies), bank.Percentile(latencies, 0.5), bank.Percentile(latencies, 0.99), bank.Percentile(latencies, 1)
		return res
	}
	for range b.N {
		var results []stallResult
		for _, c := range captures {
			results = append(results, phase(c))
		}
		if iv, err := bank.Check(ctx, st, &s); err != nil || !iv.OK() {
			b.Fatalf("invariants after the runs: %+v %v", iv, err)
		}
		printStall(items, results)
		b.ReportMetric(float64(results[2].max)/float64(results[3].max), "fence/pause-max-latency-ratio")
		b.ReportMetric(float64(results[1].read)/float64(results[2].read), "1-segment/8-segments-read-ratio")
	}
}

// printStall prints the table docs/no-snapshot-cut.md shows.
func printStall(items int, results []stallResult) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\ntransfers across PostgreSQL (coordinator) and DynamoDB (dynalite), %d accounts each, 8 at a time,\n"+
		"timed from the first attempt to the commit, those overlapping the backup; load average %s", items, load)
	fmt.Printf("  %-18s %9s %9s %9s %9s %14s %10s %12s %10s\n", "capture", "transfers", "p50", "p99", "max",
		"fence/paused", "read", "items/s", "window")
	ms := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	for _, r := range results {
		rate := "-"
		if r.read > 0 {
			rate = fmt.Sprintf("%.0f", float64(r.records)/r.read.Seconds())
		}
		fmt.Printf("  %-18s %9d %9s %9s %9s %14s %10s %12s %10s\n", r.name, r.transfers, ms(r.p50), ms(r.p99), ms(r.max),
			ms(r.stopped), ms(r.read), rate, ms(r.took))
	}
}
