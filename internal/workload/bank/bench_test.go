package bank_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

const benchAccounts = 1000

// benchConcurrencies are the numbers of concurrent clients measured.
var benchConcurrencies = []int{8, 32}

// benchModes are the manager options measured.
var benchModes = []struct {
	name, metric string
	opts         txn.Options
}{
	{"", "", txn.Options{}},
	{", grouped decisions", "-group", txn.Options{GroupDecisions: true}},
	{", async commit", "-async", txn.Options{AsyncCommit: true}},
}

// benchDuration is how long each measurement runs: 10 s, or
// STILLPOINT_BENCH_SECONDS.
func benchDuration(b *testing.B) time.Duration {
	s := os.Getenv("STILLPOINT_BENCH_SECONDS")
	if s == "" {
		return 10 * time.Second
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("STILLPOINT_BENCH_SECONDS=%q: want a whole number of seconds, at least 1", s)
	}
	return time.Duration(n) * time.Second
}

// BenchmarkBankVersusLocalPostgres measures, side by side in one run, the
// bank transfers through Stillpoint and the same transfers as plain local
// REPEATABLE READ transactions on one PostgreSQL (read both balances, write
// both), and reports the ratio. Each Stillpoint measurement is paired with
// a plain one taken just before it, so a shared machine whose load drifts
// during the run skews the ratio less. Run it with ./scripts/bench.sh.
func BenchmarkBankVersusLocalPostgres(b *testing.B) {
	d := benchDuration(b)
	for range b.N {
		for _, c := range benchConcurrencies {
			w := bank.Workload{Concurrency: c, Duration: d}
			fmt.Printf("bank transfers, %d accounts × 2, concurrency %d, %v each, against plain local transactions on one PostgreSQL just before:\n", benchAccounts, c, d)
			for _, setup := range []struct {
				name, metric string
				cfg          func(b *testing.B, nss []string) *config.Config
			}{
				{"both stores on that PostgreSQL", "pg", func(b *testing.B, nss []string) *config.Config {
					return &config.Config{DataDir: b.TempDir(), Source: "bench", Coordinator: "pg",
						Stores:     map[string]config.Store{"pg": {Engine: "postgres", DSN: testenv.PostgresDSN(b)}},
						Namespaces: map[string]string{nss[0]: "pg", nss[1]: "pg"}}
				}},
				{"PostgreSQL + MariaDB", "pg+maria", func(b *testing.B, nss []string) *config.Config { return testenv.Mixed(b, nss...) }},
			} {
				for _, mode := range benchModes {
					name, metric := setup.name+mode.name, setup.metric+mode.metric
					local := localPostgres(b, w)
					nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
					stats := throughStillpoint(b, setup.cfg(b, nss), nss, mode.opts, w)
					tps := stats.Throughput
					fmt.Printf("  Stillpoint, %-44s %6.0f/s, plain %6.0f/s: %.2f× (%d aborted, p50 %v, p99 %v)\n", name, tps, local, tps/local, stats.Aborted,
						stats.P50.Round(time.Microsecond), stats.P99.Round(time.Microsecond))
					b.ReportMetric(tps, fmt.Sprintf("stillpoint-%s-tps-c%d", metric, c))
					b.ReportMetric(tps/local, fmt.Sprintf("ratio-%s-c%d", metric, c))
				}
			}
		}
	}
}

func throughStillpoint(b *testing.B, cfg *config.Config, nss []string, opts txn.Options, w bank.Workload) bank.Stats {
	ctx := context.Background()
	st := multistorage.New(cfg)
	defer st.Close()
	m := txn.NewManager(st, opts)
	s := bank.Setup{Namespaces: nss, Accounts: benchAccounts, InitialBalance: 1000}
	if err := bank.Create(ctx, st, m, s, nil); err != nil {
		b.Fatal(err)
	}
	stats, err := bank.Run(ctx, bank.Local(m), &s, w)
	if err != nil || stats.Failed > 0 {
		b.Fatalf("run: %v %+v", err, stats)
	}
	if err := m.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if iv, err := bank.Check(ctx, st, &s); err != nil || !iv.OK() {
		b.Fatalf("invariants: %+v %v", iv, err)
	}
	return stats
}

func localPostgres(b *testing.B, w bank.Workload) float64 {
	ctx := context.Background()
	db, err := sql.Open("pgx", testenv.PostgresDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(w.Concurrency * 2)
	for i := range 2 {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE accounts_%d (account_id INT PRIMARY KEY, balance BIGINT NOT NULL)", i)); err != nil {
			b.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf("INSERT INTO accounts_%d SELECT g, 1000 FROM generate_series(0, %d) g", i, benchAccounts-1)); err != nil {
			b.Fatal(err)
		}
	}
	var committed atomic.Int64
	ctx2, cancel := context.WithTimeout(ctx, w.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range w.Concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for ctx2.Err() == nil {
				err := localTransfer(ctx, db, rng)
				var pgErr *pgconn.PgError
				switch {
				case err == nil:
					committed.Add(1)
				case errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01"):
				default:
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(committed.Load()) / time.Since(start).Seconds()
}

func localTransfer(ctx context.Context, db *sql.DB, rng *rand.Rand) error {
	i := rng.IntN(2)
	from, to, amount := rng.IntN(benchAccounts), rng.IntN(benchAccounts), int64(1+rng.IntN(100))
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var a, c int64
	if err := tx.QueryRowContext(ctx, fmt.Sprintf("SELECT balance FROM accounts_%d WHERE account_id = $1", i), from).Scan(&a); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, fmt.Sprintf("SELECT balance FROM accounts_%d WHERE account_id = $1", 1-i), to).Scan(&c); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("UPDATE accounts_%d SET balance = $1 WHERE account_id = $2", i), a-amount, from); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("UPDATE accounts_%d SET balance = $1 WHERE account_id = $2", 1-i), c+amount, to); err != nil {
		return err
	}
	return tx.Commit()
}
