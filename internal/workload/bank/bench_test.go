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

// benchModes are the manager options measured: the default first, then
// the decision as a local transaction of its own (the default before
// docs/performance-transactions.md's single local transaction) and the
// other options.
var benchModes = []struct {
	name, metric string
	opts         txn.Options
}{
	{"", "", txn.Options{}},
	{", decision separate", "-separate", txn.Options{SeparateDecision: true}},
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
				modes        int // how many of benchModes; 0: all
			}{
				{"both stores on that PostgreSQL", "pg", func(b *testing.B, nss []string) *config.Config {
					return &config.Config{DataDir: b.TempDir(), Source: "bench", Coordinator: "pg",
						Stores:     map[string]config.Store{"pg": {Engine: "postgres", DSN: testenv.PostgresDSN(b)}},
						Namespaces: map[string]string{nss[0]: "pg", nss[1]: "pg"}}
				}, 0},
				// MariaDB statements as before interpolateParams: a
				// server-side prepare and execute each.
				{"PostgreSQL + MariaDB, server-side prepares", "pg+maria-prepared", func(b *testing.B, nss []string) *config.Config {
					cfg := testenv.Mixed(b, nss...)
					maria := cfg.Stores["maria"]
					maria.DSN += "&interpolateParams=false"
					cfg.Stores["maria"] = maria
					return cfg
				}, 1},
				{"PostgreSQL + MariaDB", "pg+maria", func(b *testing.B, nss []string) *config.Config { return testenv.Mixed(b, nss...) }, 0},
			} {
				modes := benchModes
				if setup.modes > 0 {
					modes = modes[:setup.modes]
				}
				for _, mode := range modes {
					name, metric := setup.name+mode.name, setup.metric+mode.metric
					local := localPostgres(b, w)
					nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
					r := throughStillpoint(b, setup.cfg(b, nss), nss, mode.opts, w)
					tps := r.Throughput
					fmt.Printf("  Stillpoint, %-44s %6.0f/s, plain %6.0f/s: %.2f× (%d aborted, p50 %v, p99 %v, %.2f transactions per transfer in the coordinator's PostgreSQL)\n",
						name, tps, local, tps/local, r.Aborted, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.pgTxPerTransfer)
					b.ReportMetric(tps, fmt.Sprintf("stillpoint-%s-tps-c%d", metric, c))
					b.ReportMetric(tps/local, fmt.Sprintf("ratio-%s-c%d", metric, c))
				}
			}
		}
	}
}

// run is one Stillpoint measurement: the workload's stats and how many
// transactions the coordinator's PostgreSQL ran per attempted transfer
// (load-independent, unlike the rate: the round trips this work removes).
type run struct {
	bank.Stats
	pgTxPerTransfer float64
}

func throughStillpoint(b *testing.B, cfg *config.Config, nss []string, opts txn.Options, w bank.Workload) run {
	ctx := context.Background()
	s := bank.Setup{Namespaces: nss, Accounts: benchAccounts, InitialBalance: 1000}
	st := multistorage.New(cfg)
	defer st.Close()
	if err := bank.Create(ctx, st, txn.NewManager(st, txn.Options{}), s, nil); err != nil {
		b.Fatal(err)
	}
	pg := cfg.Stores[cfg.Coordinator].DSN
	st.Close()
	before := pgTransactions(b, pg)
	st = multistorage.New(cfg)
	m := txn.NewManager(st, opts)
	stats, err := bank.Run(ctx, bank.Local(m), &s, w)
	if err != nil || stats.Failed > 0 {
		b.Fatalf("run: %v %+v", err, stats)
	}
	if err := m.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	st.Close()
	ran := pgTransactions(b, pg) - before - 1 // the count's own
	st = multistorage.New(cfg)
	if iv, err := bank.Check(ctx, st, &s); err != nil || !iv.OK() {
		b.Fatalf("invariants: %+v %v", iv, err)
	}
	return run{Stats: stats, pgTxPerTransfer: float64(ran) / float64(stats.Committed+stats.Aborted+stats.Unknown)}
}

// pgTransactions is how many transactions the database of dsn has run, once
// every other session has ended (a backend reports its counts as it exits).
func pgTransactions(b *testing.B, dsn string) int64 {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	testenv.Await(b, "the other sessions to end", func() bool {
		var others int
		err := db.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()").Scan(&others)
		return err == nil && others == 0
	})
	var n int64
	if _, err := db.Exec("SELECT pg_stat_force_next_flush()"); err != nil {
		b.Fatal(err)
	}
	if err := db.QueryRow("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
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
