// Package testenv gives tests real, isolated PostgreSQL and MariaDB databases.
//
// The servers are the throwaway instances started by scripts/testenv.sh.
// ./scripts/test.sh (the project test command) starts them once and exports
// their DSNs in the environment:
//
//	STILLPOINT_TEST_POSTGRES_DSN  postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable (superuser)
//	STILLPOINT_TEST_MYSQL_DSN     stillpoint:stillpoint@tcp(127.0.0.1:PORT)/ (all privileges)
//	STILLPOINT_TEST_PG_BIN        /usr/lib/postgresql/15/bin
//
// When they are unset (plain `go test ./internal/...`), the first helper call
// in a test binary runs `scripts/testenv.sh up` into a temporary directory
// and uses those servers for the rest of the binary; Main stops them. Every
// package that uses this package must therefore have
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// (a watchdog also stops self-started servers if the binary dies without
// reaching Main's teardown, e.g. on a -timeout panic).
//
// A helper that cannot provide a database fails the test with t.Fatalf:
// integration tests are never skipped in this project.
//
// Isolation:
//   - PostgresDSN creates a brand-new empty database per call, dropped
//     (WITH (FORCE)) when the test ends.
//   - MySQLDSN returns a DSN for the shared server with no default database.
//     In MySQL/MariaDB a namespace is a database, so tests MUST name every
//     database (namespace) they create with UniqueName and drop it when done;
//     never use fixed names, since test binaries share the server and run
//     concurrently.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// Environment variables read by this package (written by scripts/testenv.sh
// into DIR/env).
const (
	EnvPostgresDSN = "STILLPOINT_TEST_POSTGRES_DSN"
	EnvMySQLDSN    = "STILLPOINT_TEST_MYSQL_DSN"
	EnvPGBin       = "STILLPOINT_TEST_PG_BIN"
)

// upTimeout bounds scripts/testenv.sh up, which may install packages.
const upTimeout = 15 * time.Minute

var (
	setupOnce sync.Once
	setupErr  error
	ownDir    string // set when this binary started its own servers

	mysqlPingOnce sync.Once
	mysqlPingErr  error
)

// Main runs the tests of a package and then stops any servers the helpers
// started for this test binary. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: teardown: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// PostgresDSN returns a DSN (URL form) for a new, empty database on the
// shared PostgreSQL 15 server, connecting as a superuser. The database is
// dropped WITH (FORCE) in t.Cleanup, so connections still open then are
// terminated.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	admin := envOrFatal(t, EnvPostgresDSN)
	name := UniqueName("sp")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pgExec(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: creating PostgreSQL database %s (via %s=%s): %v", name, EnvPostgresDSN, admin, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pgExec(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: dropping PostgreSQL database %s: %v", name, err)
		}
	})
	dsn, err := pgWithDatabase(admin, name)
	if err != nil {
		t.Fatalf("testenv: %s: %v", EnvPostgresDSN, err)
	}
	return dsn
}

// MySQLDSN returns a go-sql-driver/mysql DSN for the shared MariaDB server
// (user with all privileges, no default database) with
// parseTime=true&loc=UTC&clientFoundRows=true&multiStatements=false.
// Databases created through it must be named with UniqueName.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	base := envOrFatal(t, EnvMySQLDSN)
	dsn, err := mysqlWithParams(base)
	if err != nil {
		t.Fatalf("testenv: %s=%q: %v", EnvMySQLDSN, base, err)
	}
	mysqlPingOnce.Do(func() { mysqlPingErr = mysqlPing(dsn) })
	if mysqlPingErr != nil {
		t.Fatalf("testenv: MariaDB at %s=%q is not usable: %v", EnvMySQLDSN, base, mysqlPingErr)
	}
	return dsn
}

// PGBin returns the directory of the PostgreSQL 15 server binaries
// (pg_basebackup, pg_ctl, ...).
func PGBin(t testing.TB) string {
	t.Helper()
	return envOrFatal(t, EnvPGBin)
}

// UniqueName returns prefix + "_" + 8 random characters, using only
// [a-z0-9_] so it is a valid unquoted identifier in PostgreSQL and MySQL.
// The prefix is lowercased, other characters become '_', it is cut to 40
// characters, "n" is prepended if it starts with a digit, and "sp" is used
// when it is empty.
func UniqueName(prefix string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(prefix) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	p := b.String()
	if p == "" {
		p = "sp"
	} else if p[0] >= '0' && p[0] <= '9' {
		p = "n" + p
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails (Go 1.24+)
	suffix := make([]byte, len(rnd))
	for i, c := range rnd {
		suffix[i] = alphabet[int(c)%len(alphabet)]
	}
	return p + "_" + string(suffix)
}

// envOrFatal returns the value of an STILLPOINT_TEST_* variable, starting
// the servers first if needed.
func envOrFatal(t testing.TB, key string) string {
	t.Helper()
	if err := setup(); err != nil {
		t.Fatalf("testenv: no test databases: %v", err)
	}
	v := os.Getenv(key)
	if v == "" {
		t.Fatalf("testenv: %s is empty", key)
	}
	return v
}

// setup makes sure all STILLPOINT_TEST_* variables are set, running
// scripts/testenv.sh up once per test binary when they are not.
func setup() error {
	setupOnce.Do(func() {
		if os.Getenv(EnvPostgresDSN) != "" && os.Getenv(EnvMySQLDSN) != "" && os.Getenv(EnvPGBin) != "" {
			return
		}
		setupErr = startOwn()
	})
	return setupErr
}

func startOwn() error {
	dir, err := runUp(EnvPostgresDSN + " and " + EnvMySQLDSN + " are unset")
	if err != nil {
		return err
	}
	ownDir = dir
	return exportFrom(dir, EnvPostgresDSN, EnvMySQLDSN, EnvPGBin)
}

// exportFrom exports the given variables of DIR/env written by
// testenv.sh up. Values already set are kept; the rest are exported so
// subprocesses of tests see the same servers.
func exportFrom(dir string, keys ...string) error {
	env, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		return err
	}
	vars, err := parseEnvFile(env)
	if err != nil {
		return fmt.Errorf("%s/env: %v", dir, err)
	}
	for _, k := range keys {
		if vars[k] == "" {
			return fmt.Errorf("%s/env does not set %s (is scripts/testenv.sh older than this package?)", dir, k)
		}
		if os.Getenv(k) == "" {
			os.Setenv(k, vars[k])
		}
	}
	return nil
}

// runUp runs `scripts/testenv.sh up` into a new directory, with a watchdog
// on this process, and returns the directory. why says why it was needed.
func runUp(why string) (string, error) { return runScript("up", why) }

// runScript runs `scripts/testenv.sh <command>` (up or up-dynalite) as
// runUp says.
func runScript(command, why string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "scripts", "testenv.sh")
	// A short path: the servers' unix sockets live in it.
	dir, err := os.MkdirTemp("", "sp-testenv-")
	if err != nil {
		return "", err
	}
	// Output goes to a file rather than a pipe so nothing the script leaves
	// running can keep us waiting.
	out, err := os.CreateTemp("", "sp-testenv-up-*.log")
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, command, dir, "--owner-pid", fmt.Sprint(os.Getpid()))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = out, out
	// On timeout, SIGTERM lets the script stop what it already started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	if err := cmd.Run(); err != nil {
		logTail, _ := os.ReadFile(out.Name())
		_ = exec.Command("bash", script, "down", dir).Run()
		os.RemoveAll(dir)
		return "", fmt.Errorf("%s and `%s %s %s` failed: %v\n%s", why, script, command, dir, err, tail(logTail, 4000))
	}
	return dir, nil
}

// teardown stops servers started by startOwn.
func teardown() error {
	if ownDir == "" {
		return nil
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	out, err := exec.Command("bash", filepath.Join(root, "scripts", "testenv.sh"), "down", ownDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testenv.sh down %s: %v\n%s", ownDir, err, out)
	}
	ownDir = ""
	return nil
}

// repoRoot walks up from the working directory (a package directory under
// go test) to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root (no go.mod above the working directory)")
		}
		dir = parent
	}
}

// parseEnvFile reads the `export KEY='VALUE'` lines written by testenv.sh.
func parseEnvFile(b []byte) (map[string]string, error) {
	vars := map[string]string{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("bad line %q", line)
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = v[1 : len(v)-1]
		}
		vars[k] = v
	}
	return vars, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

func pgExec(ctx context.Context, dsn, stmt string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, stmt)
	return err
}

// pgWithDatabase returns dsn (URL or keyword/value form) pointing at db.
func pgWithDatabase(dsn, db string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		u.Path = "/" + db
		u.RawPath = ""
		return u.String(), nil
	}
	// Keyword/value form: a later dbname overrides an earlier one.
	return dsn + " dbname=" + db, nil
}

// mysqlWithParams appends the parameters every test connection uses,
// replacing any the base DSN already sets.
func mysqlWithParams(base string) (string, error) {
	if _, err := mysql.ParseDSN(base); err != nil {
		return "", err
	}
	want := [][2]string{
		{"parseTime", "true"},
		{"loc", "UTC"},
		{"clientFoundRows", "true"},
		{"multiStatements", "false"},
	}
	// Params follow the first '?' after the last '/' (the password may
	// contain either character).
	head, query := base, ""
	if slash := strings.LastIndex(base, "/"); slash >= 0 {
		if q := strings.IndexByte(base[slash:], '?'); q >= 0 {
			head, query = base[:slash+q], base[slash+q+1:]
		}
	}
	var params []string
	for p := range strings.SplitSeq(query, "&") {
		if p == "" {
			continue
		}
		k, _, _ := strings.Cut(p, "=")
		replaced := false
		for _, w := range want {
			replaced = replaced || k == w[0]
		}
		if !replaced {
			params = append(params, p)
		}
	}
	for _, w := range want {
		params = append(params, w[0]+"="+w[1])
	}
	dsn := head + "?" + strings.Join(params, "&")
	if _, err := mysql.ParseDSN(dsn); err != nil {
		return "", err
	}
	return dsn, nil
}

func mysqlPing(dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}
