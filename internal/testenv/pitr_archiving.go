package testenv

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// StartPITRPostgresArchiving starts a PITRPostgres whose archive_command
// is command, as an operator configures `stillpoint wal-push` (%f and %p
// substituted by PostgreSQL; no single quotes). The command runs as the
// server's user: under root, what it reads and writes must be the
// server user's (ServerDir, ServerOwns).
func StartPITRPostgresArchiving(t testing.TB, command string) *PITRPostgres {
	t.Helper()
	return startPITRPostgres(t, command)
}

// ServerDir is a new directory the servers' user owns and can reach,
// removed when the test ends.
func ServerDir(t testing.TB) string {
	t.Helper()
	return serverDir(t)
}

// ServerOwns gives path and everything under it to the servers' user.
func ServerOwns(t testing.TB, path string) {
	t.Helper()
	uid, gid := serverUser(t)
	if err := filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// ClosedBinlogs is what a MariaDB server's SHOW BINARY LOGS lists but the
// file being written: the binlogs an archiver may copy.
func ClosedBinlogs(t testing.TB, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query("SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		var size int64
		if err := rows.Scan(&n, &size); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil || len(names) == 0 {
		t.Fatalf("SHOW BINARY LOGS: %v, %d files", err, len(names))
	}
	return names[:len(names)-1]
}
