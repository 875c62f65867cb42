package bank_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
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

// only says whether to measure the setup and mode of this metric name (as
// in "ratio-NAME-c8"): all, or those STILLPOINT_BENCH_BANK lists (comma
// separated, e.g. "pg" for the default on one PostgreSQL, as profiled in
// docs/performance-transactions.md).
func only(metric string) bool {
	list := os.Getenv("STILLPOINT_BENCH_BANK")
	return list == "" || slices.Contains(strings.Split(list, ","), metric)
}

// BenchmarkBankVersusLocalPostgres measures, side by side in one run, the
// bank transfers through Stillpoint and the same transfers as plain local
// REPEATABLE READ transactions on one PostgreSQL (read both balances, write
// both), and reports the ratio. Each Stillpoint measurement is paired with
// a plain one taken just before it, so a shared machine whose load drifts
// during the run skews the ratio less. Run it with ./scripts/bench.sh.
func BenchmarkBankVersusLocalPostgres(b *testing.B) {
	d := benchDuration(b)
	m := newMeter(b)
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
				{"PostgreSQL + MariaDB, server-side prepares", "pg+maria-prepared", mariaDSN("&interpolateParams=false"), 1},
				// MariaDB statements as before they were prepared once
				// per connection: interpolated into the text, parsed by
				// the server on every execution.
				{"PostgreSQL + MariaDB, text statements", "pg+maria-text", mariaDSN("&interpolateParams=true"), 1},
				{"PostgreSQL + MariaDB", "pg+maria", func(b *testing.B, nss []string) *config.Config { return testenv.Mixed(b, nss...) }, 0},
			} {
				modes := benchModes
				if setup.modes > 0 {
					modes = modes[:setup.modes]
				}
				for _, mode := range modes {
					name, metric := setup.name+mode.name, setup.metric+mode.metric
					if !only(metric) {
						continue
					}
					plain := localPostgres(b, m, w)
					nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
					r := throughStillpoint(b, m, setup.cfg(b, nss), nss, mode.opts, w)
					tps := r.Throughput
					fmt.Printf("  Stillpoint, %-44s %6.0f/s, plain %6.0f/s: %.2f× (%d aborted, p50 %v, p99 %v, %.2f transactions per transfer in the coordinator's PostgreSQL)\n",
						name, tps, plain.tps, tps/plain.tps, r.Aborted, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.pgTxPerTransfer)
					fmt.Printf("    per transfer, plain:      %s\n", plain.used.perTransfer(plain.committed, plain.tps))
					fmt.Printf("    per transfer, Stillpoint: %s\n", r.used.perTransfer(r.Committed, tps))
					cpuRatio := plain.used.perCommitted(plain.committed) / r.used.perCommitted(r.Committed)
					fmt.Printf("    CPU per transfer, plain / Stillpoint: %.2f (the ratio if both had the cores to themselves)\n", cpuRatio)
					b.ReportMetric(tps, fmt.Sprintf("stillpoint-%s-tps-c%d", metric, c))
					b.ReportMetric(tps/plain.tps, fmt.Sprintf("ratio-%s-c%d", metric, c))
					b.ReportMetric(r.used.perCommitted(r.Committed)*1000, fmt.Sprintf("stillpoint-%s-cpu-s-per-1000-c%d", metric, c))
					b.ReportMetric(plain.used.perCommitted(plain.committed)*1000, fmt.Sprintf("plain-cpu-s-per-1000-c%d", c))
					b.ReportMetric(cpuRatio, fmt.Sprintf("cpu-ratio-%s-c%d", metric, c))
				}
			}
		}
	}
}

// mariaDSN is the PostgreSQL + MariaDB setup with params added to
// MariaDB's DSN.
func mariaDSN(params string) func(b *testing.B, nss []string) *config.Config {
	return func(b *testing.B, nss []string) *config.Config {
		cfg := testenv.Mixed(b, nss...)
		maria := cfg.Stores["maria"]
		maria.DSN += params
		cfg.Stores["maria"] = maria
		return cfg
	}
}

// run is one Stillpoint measurement: the workload's stats, how many
// transactions the coordinator's PostgreSQL ran per attempted transfer
// (load-independent, unlike the rate: the round trips this work removes)
// and what the transfers used.
type run struct {
	bank.Stats
	pgTxPerTransfer float64
	used            usage
}

func throughStillpoint(b *testing.B, m *meter, cfg *config.Config, nss []string, opts txn.Options, w bank.Workload) run {
	ctx := context.Background()
	s := bank.Setup{Namespaces: nss, Accounts: benchAccounts, InitialBalance: 1000}
	st := multistorage.New(cfg)
	defer st.Close()
	if err := bank.Create(ctx, st, txn.NewManager(st, txn.Options{}), s, nil); err != nil {
		b.Fatal(err)
	}
	pg := cfg.Stores[cfg.Coordinator].DSN
	st.Close()
	before := m.transactions(b, pg)
	start := m.read(b)
	st = multistorage.New(cfg)
	mgr := txn.NewManager(st, opts)
	stats, err := bank.Run(ctx, bank.Local(mgr), &s, w)
	if err != nil || stats.Failed > 0 {
		b.Fatalf("run: %v %+v", err, stats)
	}
	if err := mgr.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	st.Close()
	used := m.read(b).sub(start)
	ran := m.transactions(b, pg) - before
	st = multistorage.New(cfg)
	defer st.Close()
	if iv, err := bank.Check(ctx, st, &s); err != nil || !iv.OK() {
		b.Fatalf("invariants: %+v %v", iv, err)
	}
	return run{Stats: stats, pgTxPerTransfer: float64(ran) / float64(stats.Committed+stats.Aborted+stats.Unknown), used: used}
}

// transactions is how many transactions the database of dsn has run, once
// every session has ended (a backend reports its counts as it exits).
func (m *meter) transactions(b *testing.B, dsn string) int64 {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	awaitAlone(b, m.pg)
	var n int64
	if err := m.pg.QueryRow("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", cfg.Database).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// awaitAlone waits until db's session is the server's only client session:
// the others have ended and so reported their statistics.
func awaitAlone(b *testing.B, db *sql.DB) {
	testenv.Await(b, "the other PostgreSQL sessions to end", func() bool {
		var others int
		err := db.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()").Scan(&others)
		return err == nil && others == 0
	})
}

func openPostgres(b *testing.B, dsn string, conns int) *sql.DB {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(conns)
	return db
}

// meter reads what a measurement used: the CPU time of this process and of
// the benchmark's own servers (all of it: run the benchmark with
// scripts/bench.sh, whose servers nobody else uses), PostgreSQL's WAL
// position, the rows its databases have written and the sessions opened
// (a connection pool that closes and reopens connections costs a backend
// start and the statements' preparation each time).
// docs/performance-transactions.md ("Where the time goes") explains the gap
// to plain transactions by these.
type meter struct {
	pg              *sql.DB // one session on the server's own database
	pgCPU, mariaCPU func() time.Duration
}

// usage is what a meter reads, or the difference of two readings.
type usage struct {
	process, pg, maria       time.Duration
	walBytes, rows, sessions int64
}

func newMeter(b *testing.B) *meter {
	ctx := context.Background()
	pg := openPostgres(b, os.Getenv(testenv.EnvPostgresDSN), 1)
	b.Cleanup(func() { pg.Close() })
	maria, err := sql.Open("mysql", testenv.MySQLDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { maria.Close() })
	return &meter{pg: pg, pgCPU: testenv.PostgresCPU(b, ctx, pg), mariaCPU: testenv.MariaDBCPU(b, ctx, maria)}
}

// read reads once every other PostgreSQL session has ended: the rows a
// backend wrote are in pg_stat_database only once it has reported them.
func (m *meter) read(b *testing.B) usage {
	awaitAlone(b, m.pg)
	var u usage
	if err := m.pg.QueryRow("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, (SELECT sum(tup_inserted + tup_updated + tup_deleted) FROM pg_stat_database)::bigint, (SELECT sum(sessions) FROM pg_stat_database)::bigint").Scan(&u.walBytes, &u.rows, &u.sessions); err != nil {
		b.Fatal(err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	u.process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	u.pg, u.maria = m.pgCPU(), m.mariaCPU()
	return u
}

func (u usage) sub(v usage) usage {
	return usage{process: u.process - v.process, pg: u.pg - v.pg, maria: u.maria - v.maria, walBytes: u.walBytes - v.walBytes, rows: u.rows - v.rows, sessions: u.sessions - v.sessions}
}

func (u usage) cpu() time.Duration { return u.process + u.pg + u.maria }

// perCommitted is the CPU seconds per committed transfer.
func (u usage) perCommitted(committed int64) float64 {
	return u.cpu().Seconds() / float64(committed)
}

// perTransfer says what a committed transfer used, and the rate this
// machine's cores would bound the transfers to at that CPU per transfer.
func (u usage) perTransfer(committed int64, tps float64) string {
	n := float64(committed)
	per1000 := func(d time.Duration) float64 { return d.Seconds() / n * 1000 }
	bound := float64(runtime.NumCPU()) / u.perCommitted(committed)
	return fmt.Sprintf("CPU per 1,000: process %.2fs, PostgreSQL %.2fs, MariaDB %.2fs, total %.2fs (%d cores: at most %.0f/s, ran at %.0f%% of it); PostgreSQL WAL %.0f B, %.2f rows written, %.1f sessions opened per 1,000",
		per1000(u.process), per1000(u.pg), per1000(u.maria), per1000(u.cpu()), runtime.NumCPU(), bound, 100*tps/bound, float64(u.walBytes)/n, float64(u.rows)/n, float64(u.sessions)/n*1000)
}

// plainRun is one measurement of the plain REPEATABLE READ transfers.
type plainRun struct {
	tps       float64
	committed int64
	used      usage
}

func localPostgres(b *testing.B, m *meter, w bank.Workload) plainRun {
	ctx := context.Background()
	dsn := testenv.PostgresDSN(b)
	setup := openPostgres(b, dsn, 1)
	for i := range 2 {
		if _, err := setup.ExecContext(ctx, fmt.Sprintf("CREATE TABLE accounts_%d (account_id INT PRIMARY KEY, balance BIGINT NOT NULL)", i)); err != nil {
			b.Fatal(err)
		}
		if _, err := setup.ExecContext(ctx, fmt.Sprintf("INSERT INTO accounts_%d SELECT g, 1000 FROM generate_series(0, %d) g", i, benchAccounts-1)); err != nil {
			b.Fatal(err)
		}
	}
	setup.Close()
	start := m.read(b)
	db := openPostgres(b, dsn, w.Concurrency*2)
	var committed atomic.Int64
	ctx2, cancel := context.WithTimeout(ctx, w.Duration)
	defer cancel()
	t0 := time.Now()
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
	tps := float64(committed.Load()) / time.Since(t0).Seconds()
	db.Close()
	return plainRun{tps: tps, committed: committed.Load(), used: m.read(b).sub(start)}
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
