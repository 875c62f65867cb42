package testenv

import (
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
