package testenv

import (
	"context"
	"database/sql"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func pgConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgresDSNIsolated(t *testing.T) {
	ctx := context.Background()
	dsnA, dsnB := PostgresDSN(t), PostgresDSN(t)
	if dsnA == dsnB {
		t.Fatalf("two calls returned the same DSN %s", dsnA)
	}
	a, b := pgConnect(t, dsnA), pgConnect(t, dsnB)

	var tables int
	if err := a.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("new database has %d tables in public, want 0", tables)
	}
	if _, err := a.Exec(ctx, `CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	var x int
	if err := a.QueryRow(ctx, `SELECT x FROM only_in_a`).Scan(&x); err != nil || x != 42 {
		t.Fatalf("read back from a: x=%d err=%v", x, err)
	}
	var found *string
	if err := b.QueryRow(ctx, `SELECT to_regclass('only_in_a')::text`).Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found != nil {
		t.Fatalf("table created in database A is visible in database B as %s", *found)
	}
}

func TestPostgresDSNDroppedOnCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		dsn := PostgresDSN(t)
		conn := pgConnect(t, dsn) // left open on purpose: the drop uses FORCE
		if err := conn.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^sp_[a-z0-9]{8}$`).MatchString(name) {
			t.Fatalf("database name %q does not look like UniqueName(\"sp\")", name)
		}
	})
	admin := pgConnect(t, envOrFatal(t, EnvPostgresDSN))
	var exists bool
	if err := admin.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s still exists after the test that created it finished", name)
	}
}

// The server settings later work (replication, backups, many connections)
// depends on.
func TestPostgresServerSettings(t *testing.T) {
	conn := pgConnect(t, PostgresDSN(t))
	want := map[string]string{
		"server_version_num": "15",
		"wal_level":          "replica",
		"max_connections":    "300",
		"is_superuser":       "on",
	}
	for name, w := range want {
		var got string
		if err := conn.QueryRow(context.Background(), `SELECT current_setting($1)`, name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if name == "server_version_num" {
			got = got[:2]
		}
		if got != w {
			t.Errorf("%s = %s, want %s", name, got, w)
		}
	}
	if bin := PGBin(t); !strings.Contains(bin, "15") {
		t.Errorf("PGBin() = %s, want a PostgreSQL 15 bin dir", bin)
	}
}

func mysqlOpen(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMySQLDSN(t *testing.T) {
	ctx := context.Background()
	dsn := MySQLDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.ParseTime || cfg.Loc != time.UTC || !cfg.ClientFoundRows || cfg.MultiStatements || cfg.DBName != "" {
		t.Fatalf("DSN %s: parseTime=%v loc=%v clientFoundRows=%v multiStatements=%v db=%q",
			dsn, cfg.ParseTime, cfg.Loc, cfg.ClientFoundRows, cfg.MultiStatements, cfg.DBName)
	}
	db := mysqlOpen(t, dsn)

	// A namespace is a database: create one with a unique name and use it.
	ns := UniqueName("testenv")
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+ns+"`"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+ns+"`"); err != nil {
			t.Errorf("drop %s: %v", ns, err)
		}
	})
	if _, err := db.ExecContext(ctx, "CREATE TABLE `"+ns+"`.items (id INT PRIMARY KEY, at DATETIME(6) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	if _, err := db.ExecContext(ctx, "INSERT INTO `"+ns+"`.items VALUES (1, ?)", now); err != nil {
		t.Fatal(err)
	}
	// clientFoundRows: an UPDATE that changes nothing still reports the
	// matched row.
	res, err := db.ExecContext(ctx, "UPDATE `"+ns+"`.items SET at = ? WHERE id = 1", now)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Errorf("no-op UPDATE reported %d rows, want 1 (clientFoundRows)", n)
	}
	var got time.Time // parseTime
	if err := db.QueryRowContext(ctx, "SELECT at FROM `"+ns+"`.items WHERE id = 1").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(now) {
		t.Errorf("read back %v, want %v", got, now)
	}

	// Another unique namespace does not see the table.
	other := UniqueName("testenv")
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+other+"`"); err != nil {
		t.Fatal(err)
	}
	defer db.ExecContext(ctx, "DROP DATABASE `"+other+"`")
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?`, other).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%s has %d tables, want 0", other, n)
	}

	// Settings later work (binlog-based replication) depends on.
	for name, want := range map[string]string{"log_bin": "ON", "binlog_format": "ROW", "server_id": "1"} {
		var v string
		if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL."+name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != want && !(want == "ON" && v == "1") {
			t.Errorf("@@%s = %s, want %s", name, v, want)
		}
	}
}

func TestUniqueName(t *testing.T) {
	re := regexp.MustCompile(`^[a-z_][a-z0-9_]*_[a-z0-9]{8}$`)
	seen := map[string]bool{}
	for _, p := range []string{"ns", "My-Prefix.X", "", "9lives", strings.Repeat("a", 100)} {
		for range 100 {
			n := UniqueName(p)
			if !re.MatchString(n) || len(n) > 63 {
				t.Fatalf("UniqueName(%q) = %q: not a safe identifier", p, n)
			}
			if seen[n] {
				t.Fatalf("UniqueName(%q) repeated %q", p, n)
			}
			seen[n] = true
		}
	}
	if n := UniqueName("My-Prefix"); !strings.HasPrefix(n, "my_prefix_") {
		t.Errorf("UniqueName(My-Prefix) = %q", n)
	}
}

func TestMySQLWithParams(t *testing.T) {
	for base, want := range map[string]string{
		"u:p@tcp(127.0.0.1:3306)/":                   "u:p@tcp(127.0.0.1:3306)/?parseTime=true&loc=UTC&clientFoundRows=true&multiStatements=false",
		"u:p@tcp(h:1)/db?timeout=5s&parseTime=false": "u:p@tcp(h:1)/db?timeout=5s&parseTime=true&loc=UTC&clientFoundRows=true&multiStatements=false",
		"u:p?/x@tcp(h:1)/":                           "u:p?/x@tcp(h:1)/?parseTime=true&loc=UTC&clientFoundRows=true&multiStatements=false",
	} {
		got, err := mysqlWithParams(base)
		if err != nil || got != want {
			t.Errorf("mysqlWithParams(%q) = %q, %v; want %q", base, got, err, want)
		}
	}
}
