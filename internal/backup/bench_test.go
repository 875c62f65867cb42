package backup_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// benchRows is the size of the bank table each side backs up.
var benchRows = envInt("STILLPOINT_BENCH_ROWS", 5_000_000)

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}

// measurement is one tool's run: wall time, output size, peak memory.
type measurement struct {
	name    string
	elapsed time.Duration
	bytes   int64
	maxRSS  int64 // KiB
}

// run times a command and reads its peak resident memory.
func run(b *testing.B, name string, out string, cmd *exec.Cmd) measurement {
	b.Helper()
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	m := measurement{name: name, elapsed: time.Since(start), bytes: dirSizeB(out)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.maxRSS = ru.Maxrss
	}
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

// BenchmarkBackupVersusDumps backs up a bank table of benchRows rows with
// Stillpoint and with pg_dump (-Fc, -Fd -j2) and mysqldump
// --single-transaction, side by side, and reports time, size and peak
// memory as ratios. Run it with ./scripts/bench.sh -bench BackupVersus.
func BenchmarkBackupVersusDumps(b *testing.B) {
	ctx := context.Background()
	bin := buildCLI(b)
	pgDSN, myDSN := testenv.PostgresDSN(b), testenv.MySQLDSN(b)
	ns := testenv.UniqueName("bank_big")
	for range b.N {
		for _, side := range []struct {
			engine string
			dsn    string
			dumps  func(dir string) []measurement
		}{
			{"postgres", pgDSN, func(dir string) []measurement {
				pgBin := testenv.PGBin(b)
				return []measurement{
					run(b, "pg_dump -Fc", filepath.Join(dir, "dump.fc"), exec.Command(filepath.Join(pgBin, "pg_dump"), "-Fc", "-f", filepath.Join(dir, "dump.fc"), "-n", ns, pgDSN)),
					run(b, "pg_dump -Fd -j2", filepath.Join(dir, "dump.d"), exec.Command(filepath.Join(pgBin, "pg_dump"), "-Fd", "-j2", "-f", filepath.Join(dir, "dump.d"), "-n", ns, pgDSN)),
				}
			}},
			{"mysql", myDSN, func(dir string) []measurement {
				cfg, _ := mysql.ParseDSN(myDSN)
				host, port, _ := strings.Cut(cfg.Addr, ":")
				out := filepath.Join(dir, "dump.sql")
				cmd := exec.Command("sh", "-c", fmt.Sprintf("mysqldump --single-transaction -h %s -P %s -u %s %s > %s", host, port, cfg.User, ns, out))
				cmd.Env = append(os.Environ(), "MYSQL_PWD="+cfg.Passwd)
				return []measurement{run(b, "mysqldump --single-transaction", out, cmd)}
			}},
		} {
			cfgPath := loadBig(b, ctx, side.engine, side.dsn, ns)
			dir := b.TempDir()
			repoDir := filepath.Join(dir, "repo")
			ours := run(b, "stillpoint backup create", repoDir, exec.Command(bin, "--config", cfgPath, "backup", "create", "--repo", repoDir))
			results := append([]measurement{ours}, side.dumps(dir)...)
			fmt.Printf("\nbackup of %d bank rows on %s:\n", benchRows, side.engine)
			for _, m := range results {
				fmt.Printf("  %-32s %8.2fs %10.1f MiB %8.1f MiB peak   time %.2f×  size %.2f×  memory %.2f× of stillpoint\n",
					m.name, m.elapsed.Seconds(), float64(m.bytes)/(1<<20), float64(m.maxRSS)/1024,
					m.elapsed.Seconds()/ours.elapsed.Seconds(), float64(m.bytes)/float64(ours.bytes), float64(m.maxRSS)/float64(ours.maxRSS))
				b.ReportMetric(m.elapsed.Seconds()/ours.elapsed.Seconds(), side.engine+"-"+strings.Fields(m.name)[0]+"-time/stillpoint")
			}
		}
	}
}

// loadBig fills one store with a bank table of benchRows committed rows
// (and the coordinator table), and writes a config naming it.
func loadBig(b *testing.B, ctx context.Context, engine, dsn, ns string) string {
	b.Helper()
	cfgPath := filepath.Join(b.TempDir(), "stillpoint.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("stores:\n  db: {engine: %s, dsn: %q}\nnamespaces: {%s: db}\ncoordinator: db\n", engine, dsn, ns)), 0o600)
	st := multistorage.New(mustLoad(b, cfgPath))
	defer st.Close()
	if _, err := schema.Create(ctx, st, bank.Tables([]string{ns, ns + "_x"})[:1]); err != nil {
		b.Fatal(err)
	}
	s, _ := st.Store(ctx, "db")
	db := s.(interface{ DB() *sql.DB }).DB()
	var q string
	switch engine {
	case "postgres":
		q = fmt.Sprintf(`INSERT INTO %q.accounts (account_id, balance, tx_id, tx_state, tx_version, tx_prepared_at, tx_committed_at)
			SELECT g, 1000, 'load', 3, 1, 0, 0 FROM generate_series(0, %d) g`, ns, benchRows-1)
	case "mysql":
		q = fmt.Sprintf("INSERT INTO `%s`.accounts (account_id, balance, tx_id, tx_state, tx_version, tx_prepared_at, tx_committed_at) SELECT seq, 1000, 'load', 3, 1, 0, 0 FROM seq_0_to_%d", ns, benchRows-1)
	}
	start := time.Now()
	if _, err := db.ExecContext(ctx, q); err != nil {
		b.Fatalf("load %d rows into %s: %v", benchRows, engine, err)
	}
	b.Logf("loaded %d rows into %s in %v", benchRows, engine, time.Since(start))
	return cfgPath
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
