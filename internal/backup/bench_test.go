package backup_test

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// benchRows is the size of the bank table (STILLPOINT_BENCH_ROWS to change).
var benchRows = envInt("STILLPOINT_BENCH_ROWS", 5_000_000)

// For A/B work on the PostgreSQL restore: STILLPOINT_BENCH_RESTORES pairs
// of restores (ours, then pg_restore -j2) instead of one, each also with
// the stillpoint binary at STILLPOINT_BENCH_BASE_CLI if set.
var (
	benchRestores = envInt("STILLPOINT_BENCH_RESTORES", 1)
	baseBin       = os.Getenv("STILLPOINT_BENCH_BASE_CLI")
)

// benchEngine says whether to measure an engine: all of them, or those
// STILLPOINT_BENCH_ENGINES lists (postgres, mariadb; comma separated).
func benchEngine(b *testing.B, engine string) bool {
	list := os.Getenv("STILLPOINT_BENCH_ENGINES")
	if list == "" {
		return true
	}
	for _, e := range strings.Split(list, ",") {
		if e != "postgres" && e != "mariadb" {
			b.Fatalf("STILLPOINT_BENCH_ENGINES=%q: want postgres, mariadb or both, comma separated", list)
		}
	}
	return slices.Contains(strings.Split(list, ","), engine)
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}

// measurement is one tool's run: wall time, output size, peak memory, and
// the CPU time of the tool (user + system, with the children it waited for)
// and, where measured, of the database server meanwhile.
type measurement struct {
	name      string
	elapsed   time.Duration
	bytes     int64
	maxRSS    int64 // KiB
	cpu       time.Duration
	serverCPU time.Duration // 0: not measured
}

// run times a command and reads its peak resident memory (of the command,
// or of the largest process of a pipeline run by sh).
func run(b *testing.B, name, out string, cmd *exec.Cmd) measurement {
	b.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	m := measurement{name: name, elapsed: time.Since(start)}
	if out != "" {
		m.bytes = dirSizeB(out)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.maxRSS = ru.Maxrss
	}
	m.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return m
}

// runWithServer is run, also measuring the database server's CPU time (a
// single-process server such as mariadbd: serverCPU reads it).
func runWithServer(b *testing.B, name, out string, cmd *exec.Cmd, serverCPU func() time.Duration) measurement {
	before := serverCPU()
	m := run(b, name, out, cmd)
	m.serverCPU = serverCPU() - before
	return m
}

func dirSizeB(path string) int64 {
	var n int64
	filepath.Walk(path, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func report(b *testing.B, what string, ours measurement, others []measurement) {
	fmt.Printf("\n%s of %d bank rows:\n", what, benchRows)
	for _, m := range append([]measurement{ours}, others...) {
		fmt.Printf("  %-36s %8.2fs", m.name, m.elapsed.Seconds())
		if m.bytes > 0 {
			fmt.Printf(" %9.1f MiB", float64(m.bytes)/(1<<20))
		}
		fmt.Printf(" %8.1f MiB peak", float64(m.maxRSS)/1024)
		// The client's CPU always (the PostgreSQL restore's goal depends
		// on it, docs/performance.md); the server's where measured.
		fmt.Printf("  CPU: client %.2fs", m.cpu.Seconds())
		b.ReportMetric(m.cpu.Seconds(), strings.ReplaceAll(what+" "+m.name, " ", "_")+"-client-cpu-s")
		if m.serverCPU > 0 {
			// On 2 cores the wall time is at least half the CPU time of
			// client and server together.
			fmt.Printf(", server %.2fs, (client+server)/2 %.2fs", m.serverCPU.Seconds(), (m.cpu+m.serverCPU).Seconds()/2)
			b.ReportMetric(m.serverCPU.Seconds(), strings.ReplaceAll(what+" "+m.name, " ", "_")+"-server-cpu-s")
		}
		if m.name != ours.name {
			fmt.Printf("   stillpoint takes %.2f× its time", ours.elapsed.Seconds()/m.elapsed.Seconds())
			if m.bytes > 0 {
				fmt.Printf(", %.2f× its size", float64(ours.bytes)/float64(m.bytes))
			}
			fmt.Printf(", %.2f× its memory", float64(ours.maxRSS)/float64(m.maxRSS))
			b.ReportMetric(ours.elapsed.Seconds()/m.elapsed.Seconds(), strings.ReplaceAll(what+" vs "+m.name, " ", "_")+"-time-ratio")
		}
		fmt.Println()
	}
}

// BenchmarkBackupRestoreVersusDumps backs up and restores a bank table of
// benchRows rows, on PostgreSQL and on MariaDB, with Stillpoint and with the
// tools an operator would otherwise use (pg_dump -Fc and -Fd -j2,
// pg_restore -j2; mysqldump --single-transaction, its output fed to
// mariadb; mydumper and myloader), side by side in one run, and prints
// time, size and peak memory as ratios. Run it with ./scripts/bench.sh
// -bench BackupRestore; STILLPOINT_BENCH_ENGINES=postgres (or mariadb)
// measures one engine.
func BenchmarkBackupRestoreVersusDumps(b *testing.B) {
	ctx := context.Background()
	bin := buildCLI(b)
	for range b.N {
		if benchEngine(b, "postgres") {
			versusPostgresTools(b, ctx, bin)
		}
		if benchEngine(b, "mariadb") {
			versusMariaDBTools(b, ctx, bin)
		}
	}
}

// versusPostgresTools: pg_dump -Fc and -Fd -j2, pg_restore -j2.
func versusPostgresTools(b *testing.B, ctx context.Context, bin string) {
	pgBin := testenv.PGBin(b)
	ns := "bank_big"
	pgDSN := testenv.PostgresDSN(b)
	cfg := loadBig(b, ctx, "postgres", pgDSN, ns)
	dir := b.TempDir()
	repoDir := filepath.Join(dir, "repo")
	ours := run(b, "stillpoint backup create", repoDir, exec.Command(bin, "--config", cfg, "backup", "create", "--init", "--repo", repoDir, "--json"))
	fc := run(b, "pg_dump -Fc", filepath.Join(dir, "dump.fc"), exec.Command(filepath.Join(pgBin, "pg_dump"), "-Fc", "-f", filepath.Join(dir, "dump.fc"), pgDSN))
	fd := run(b, "pg_dump -Fd -j2", filepath.Join(dir, "dump.d"), exec.Command(filepath.Join(pgBin, "pg_dump"), "-Fd", "-j2", "-f", filepath.Join(dir, "dump.d"), pgDSN))
	report(b, "PostgreSQL backup", ours, []measurement{fc, fd})
	id := onlyBackup(b, bin, cfg, repoDir)
	pgCPU := testenv.PostgresCPU(b, ctx, openDB(b, "pgx", pgDSN))
	var ratios []float64
	for range benchRestores {
		target := writeConfig(b, "postgres", testenv.PostgresDSN(b), ns)
		oursR := runWithServer(b, "stillpoint restore", "", exec.Command(bin, "--config", target, "restore", id, "--repo", repoDir), pgCPU)
		others := []measurement{runWithServer(b, "pg_restore -j2", "", exec.Command(filepath.Join(pgBin, "pg_restore"), "-j2", "-d", testenv.PostgresDSN(b), filepath.Join(dir, "dump.d")), pgCPU)}
		if baseBin != "" {
			target := writeConfig(b, "postgres", testenv.PostgresDSN(b), ns)
			others = append(others, runWithServer(b, "stillpoint restore (base binary)", "", exec.Command(baseBin, "--config", target, "restore", id, "--repo", repoDir), pgCPU))
		}
		report(b, "PostgreSQL restore", oursR, others)
		ratios = append(ratios, oursR.elapsed.Seconds()/others[0].elapsed.Seconds())
	}
	if len(ratios) > 1 {
		slices.Sort(ratios)
		fmt.Printf("PostgreSQL restore, stillpoint / pg_restore -j2 over %d pairs: median %.2f×, %.2f× to %.2f×\n", len(ratios), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	}
}

// versusMariaDBTools: mysqldump --single-transaction and its output fed to
// mariadb, mydumper and myloader.
func versusMariaDBTools(b *testing.B, ctx context.Context, bin string) {
	// The restores go into the same server, so the source database is
	// dropped first, as after a disaster.
	myNS := testenv.UniqueName("bank_big")
	myDSN := testenv.MySQLDSN(b)
	cfg := loadBig(b, ctx, "mysql", myDSN, myNS)
	dir := b.TempDir()
	repoDir := filepath.Join(dir, "repo")
	my, _ := mysql.ParseDSN(myDSN)
	host, port, _ := strings.Cut(my.Addr, ":")
	client := func(tool, args string) *exec.Cmd {
		c := exec.Command("sh", "-c", fmt.Sprintf("%s -h %s -P %s -u %s %s", tool, host, port, my.User, args))
		c.Env = append(os.Environ(), "MYSQL_PWD="+my.Passwd)
		return c
	}
	serverCPU := testenv.MariaDBCPU(b, ctx, openDB(b, "mysql", myDSN))
	ours := runWithServer(b, "stillpoint backup create", repoDir, exec.Command(bin, "--config", cfg, "backup", "create", "--init", "--repo", repoDir, "--json"), serverCPU)
	dump := filepath.Join(dir, "dump.sql")
	md := runWithServer(b, "mysqldump --single-transaction", dump, client("mysqldump", fmt.Sprintf("--single-transaction --databases %s coordinator scalardb > %s", myNS, dump)), serverCPU)
	// mydumper: two threads, the table split into ranges of rows read
	// at once, plain and gzipped files.
	mydumper := func(dir, opts string) *exec.Cmd {
		return client("mydumper", fmt.Sprintf(`-p "$MYSQL_PWD" --trx-consistency-only -t 2 -r 500000 %s --regex '^(%s|coordinator|scalardb)\.' -o %s`, opts, myNS, dir))
	}
	mdDir, mdzDir := filepath.Join(dir, "mydumper"), filepath.Join(dir, "mydumper-c")
	mdd := runWithServer(b, "mydumper -t 2 -r 500000", mdDir, mydumper(mdDir, ""), serverCPU)
	mdz := runWithServer(b, "mydumper -t 2 -r 500000 -c", mdzDir, mydumper(mdzDir, "-c"), serverCPU)
	report(b, "MariaDB backup", ours, []measurement{md, mdd, mdz})
	id := onlyBackup(b, bin, cfg, repoDir)
	dropAll(b, ctx, cfg, myNS)
	oursR := run(b, "stillpoint restore", "", exec.Command(bin, "--config", cfg, "restore", id, "--repo", repoDir))
	dropAll(b, ctx, cfg, myNS)
	myR := run(b, "mysqldump output fed to mariadb", "", client("mariadb", "< "+dump))
	dropAll(b, ctx, cfg, myNS)
	mylR := run(b, "myloader -t 2 (of mydumper's files)", "", client("myloader", fmt.Sprintf(`-p "$MYSQL_PWD" -t 2 -o -d %s`, mdDir)))
	report(b, "MariaDB restore", oursR, []measurement{myR, mylR})
}

// loadBig fills a store with a bank table of benchRows committed rows (and
// the coordinator table) and returns a config file naming it.
func loadBig(b *testing.B, ctx context.Context, engine, dsn, ns string) string {
	return loadRows(b, ctx, engine, dsn, ns, benchRows)
}

// loadRows fills a store with a bank table of rows committed rows.
func loadRows(b *testing.B, ctx context.Context, engine, dsn, ns string, rows int) string {
	b.Helper()
	cfgPath := writeConfig(b, engine, dsn, ns)
	st := multistorage.New(mustLoad(b, cfgPath))
	defer st.Close()
	if _, err := schema.Create(ctx, st, bank.Tables([]string{ns, ns})[:1]); err != nil {
		b.Fatal(err)
	}
	s, _ := st.Store(ctx, "db")
	db := s.(interface{ DB() *sql.DB }).DB()
	var q string
	switch engine {
	case "postgres":
		q = fmt.Sprintf(`INSERT INTO %q.accounts (account_id, balance, tx_id, tx_state, tx_version, tx_prepared_at, tx_committed_at)
			SELECT g, 1000 + g %% 977, md5(g::text), 3, 1 + g %% 7, 1700000000000 + g, 1700000000000 + g FROM generate_series(0, %d) g`, ns, rows-1)
	case "mysql":
		q = fmt.Sprintf("INSERT INTO `%s`.accounts (account_id, balance, tx_id, tx_state, tx_version, tx_prepared_at, tx_committed_at) SELECT seq, 1000 + seq %% 977, md5(seq), 3, 1 + seq %% 7, 1700000000000 + seq, 1700000000000 + seq FROM `%s`.seq_0_to_%d", ns, ns, rows-1)
	}
	start := time.Now()
	if _, err := db.ExecContext(ctx, q); err != nil {
		b.Fatalf("load %d rows into %s: %v", rows, engine, err)
	}
	// Settle the table (PostgreSQL's hint bits, both engines' statistics)
	// so that the first tool to read it does not pay for the load.
	settle := map[string]string{"postgres": fmt.Sprintf("VACUUM ANALYZE %q.accounts", ns), "mysql": fmt.Sprintf("ANALYZE TABLE `%s`.accounts", ns)}[engine]
	if _, err := db.ExecContext(ctx, settle); err != nil {
		b.Fatalf("%s: %v", settle, err)
	}
	fmt.Printf("loaded %d rows into %s in %v\n", rows, engine, time.Since(start).Round(time.Second))
	return cfgPath
}

func writeConfig(b *testing.B, engine, dsn, ns string) string {
	p := filepath.Join(b.TempDir(), "stillpoint.yaml")
	os.WriteFile(p, []byte(fmt.Sprintf("stores:\n  db: {engine: %s, dsn: %q}\nnamespaces: {%s: db}\ncoordinator: db\n", engine, dsn, ns)), 0o600)
	return p
}

func onlyBackup(b *testing.B, bin, cfg, repoDir string) string {
	out, err := exec.Command(bin, "--config", cfg, "--json", "backup", "list", "--repo", repoDir).Output()
	var list []struct{ ID string }
	if err != nil || json.Unmarshal(out, &list) != nil || len(list) != 1 {
		b.Fatalf("backup list: %v %s", err, out)
	}
	return list[0].ID
}

// dropAll removes the bank and coordinator tables (and their metadata).
func dropAll(b *testing.B, ctx context.Context, cfgPath, ns string) {
	st := multistorage.New(mustLoad(b, cfgPath))
	defer st.Close()
	for _, t := range []struct{ ns, table string }{{ns, bank.AccountsTable}, {schema.CoordinatorNamespace, schema.CoordinatorTable}} {
		if m, _ := st.TableMetadata(ctx, t.ns, t.table); m != nil {
			if err := st.DropTable(ctx, t.ns, t.table); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, n := range []string{ns, schema.CoordinatorNamespace} {
		st.DropNamespace(ctx, n)
	}
}

// openDB opens a database handle closed when the benchmark ends.
func openDB(b *testing.B, driver, dsn string) *sql.DB {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func buildCLI(b *testing.B) string {
	out := filepath.Join(b.TempDir(), "stillpoint")
	if o, err := exec.Command("go", "build", "-o", out, "../../cmd/stillpoint").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, o)
	}
	return out
}

func mustLoad(b *testing.B, path string) *config.Config {
	cfg, err := config.Load(path, "")
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// BenchmarkBackupRestoreMemory measures the peak memory of stillpoint
// backup create and restore, on PostgreSQL and on MariaDB, at each size of
// $STILLPOINT_BENCH_MEMORY_ROWS (comma-separated row counts; by default a
// fifth of benchRows and benchRows), and prints how the peak grows with the
// size: flat memory means the same peak at every size
// (STILLPOINT_BENCH_MEMORY_ROWS=5000000,20000000 for issue 13's claim).
func BenchmarkBackupRestoreMemory(b *testing.B) {
	ctx := context.Background()
	sizes := []int{max(benchRows/5, 1), benchRows}
	if env := os.Getenv("STILLPOINT_BENCH_MEMORY_ROWS"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			var n int
			if _, err := fmt.Sscan(f, &n); err != nil || n <= 0 {
				b.Fatalf("STILLPOINT_BENCH_MEMORY_ROWS=%q: want row counts separated by commas", env)
			}
			sizes = append(sizes, n)
		}
	}
	bin := buildCLI(b)
	for range b.N {
		peaks := map[string][]int64{} // KiB, per step, per size
		steps := []string{"PostgreSQL backup", "PostgreSQL restore", "MariaDB backup", "MariaDB restore"}
		for _, rows := range sizes {
			for _, engine := range []string{"postgres", "mysql"} {
				if !benchEngine(b, map[string]string{"postgres": "postgres", "mysql": "mariadb"}[engine]) {
					continue
				}
				ns, dsn := "bank_big", testenv.PostgresDSN(b)
				if engine == "mysql" {
					ns, dsn = testenv.UniqueName("bank_big"), testenv.MySQLDSN(b)
				}
				cfg := loadRows(b, ctx, engine, dsn, ns, rows)
				repoDir := filepath.Join(b.TempDir(), "repo")
				bk := run(b, "backup", "", exec.Command(bin, "--config", cfg, "backup", "create", "--init", "--repo", repoDir, "--json"))
				id := onlyBackup(b, bin, cfg, repoDir)
				target := cfg
				if engine == "postgres" {
					target = writeConfig(b, engine, testenv.PostgresDSN(b), ns)
				} else {
					dropAll(b, ctx, cfg, ns)
				}
				rs := run(b, "restore", "", exec.Command(bin, "--config", target, "restore", id, "--repo", repoDir))
				step := map[string]int{"postgres": 0, "mysql": 2}[engine]
				peaks[steps[step]] = append(peaks[steps[step]], bk.maxRSS)
				peaks[steps[step+1]] = append(peaks[steps[step+1]], rs.maxRSS)
				if engine == "mysql" {
					dropAll(b, ctx, cfg, ns)
				}
			}
		}
		fmt.Printf("\npeak memory (MiB) by bank rows:\n  %-20s", "")
		for _, rows := range sizes {
			fmt.Printf(" %12d", rows)
		}
		fmt.Printf("   largest/smallest\n")
		for _, s := range steps {
			if len(peaks[s]) == 0 {
				continue
			}
			fmt.Printf("  %-20s", s)
			for _, kib := range peaks[s] {
				fmt.Printf(" %12.1f", float64(kib)/1024)
			}
			ratio := float64(slices.Max(peaks[s])) / float64(slices.Min(peaks[s]))
			fmt.Printf("   %.2f×\n", ratio)
			b.ReportMetric(ratio, strings.ReplaceAll(s, " ", "_")+"-peak-growth")
		}
	}
}

// BenchmarkProfileOfBackupAndRestore backs up and restores a bank table of
// benchRows rows in this process, on PostgreSQL and on MariaDB, and writes
// a CPU profile of each step into the directory $STILLPOINT_BENCH_PROFILE
// (the package's if unset): backup-postgres.pprof, restore-postgres.pprof,
// backup-mysql.pprof, restore-mysql.pprof. Read them with go tool pprof -top.
func BenchmarkProfileOfBackupAndRestore(b *testing.B) {
	ctx := context.Background()
	dir := cmp.Or(os.Getenv("STILLPOINT_BENCH_PROFILE"), ".")
	for range b.N {
		for _, engine := range []string{"postgres", "mysql"} {
			ns, dsn := "bank_big", testenv.PostgresDSN(b)
			if engine == "mysql" {
				ns, dsn = testenv.UniqueName("bank_big"), testenv.MySQLDSN(b)
			}
			cfg := loadBig(b, ctx, engine, dsn, ns)
			be, err := backend.Open(ctx, filepath.Join(b.TempDir(), "repo"))
			if err != nil {
				b.Fatal(err)
			}
			r, _, err := repo.OpenOrInit(ctx, be, nil)
			if err != nil {
				b.Fatal(err)
			}
			st := multistorage.New(mustLoad(b, cfg))
			var m *backup.Manifest
			profile(b, filepath.Join(dir, "backup-"+engine+".pprof"), func() (err error) {
				m, err = backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
				return err
			})
			st.Close()
			target := cfg
			if engine == "postgres" {
				target = writeConfig(b, engine, testenv.PostgresDSN(b), ns)
			} else {
				dropAll(b, ctx, cfg, ns)
			}
			tst := multistorage.New(mustLoad(b, target))
			profile(b, filepath.Join(dir, "restore-"+engine+".pprof"), func() error {
				_, err := restore.Run(ctx, r, m, restore.Stores(tst), restore.Options{})
				return err
			})
			tst.Close()
		}
	}
}

// profile runs fn under the CPU profiler, writing the profile to path.
func profile(b *testing.B, path string, fn func() error) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	err = fn()
	pprof.StopCPUProfile()
	if err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	fmt.Printf("%s: %v\n", path, time.Since(start).Round(time.Millisecond))
}
