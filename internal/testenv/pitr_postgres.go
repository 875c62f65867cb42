package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PITRPostgres is a throwaway PostgreSQL server of the test's own,
// configured as an operator configures one for point-in-time recovery:
// wal_level=replica, archive_mode=on, full_page_writes=on, and an
// archive_command that copies each file PostgreSQL archives into Archive
// (never overwriting one; ArchiveConf). Its WAL segments are 1 MiB, so tests fill and
// switch segments with little data.
type PITRPostgres struct {
	DSN     string // superuser, URL form
	Bin     string // the PostgreSQL 15 binaries
	DataDir string
	Archive string
	Port    int
}

// StartPITRPostgres starts a PITRPostgres, stopped and removed when the
// test ends. Under root it runs as the unprivileged server user of
// scripts/testenv.sh, as PostgreSQL requires.
func StartPITRPostgres(t testing.TB) *PITRPostgres {
	t.Helper()
	return startPITRPostgres(t, "")
}

// startPITRPostgres starts a PITRPostgres whose archive_command is
// command, or with none, copies into Archive.
func startPITRPostgres(t testing.TB, command string) *PITRPostgres {
	t.Helper()
	bin := PGBin(t)
	dir := serverDir(t)
	s := &PITRPostgres{Bin: bin, DataDir: filepath.Join(dir, "data"), Archive: filepath.Join(dir, "archive")}
	mkdirOwned(t, s.Archive)
	mkdirOwned(t, s.DataDir)
	if out, err := asServerUser(t, filepath.Join(bin, "initdb"), "-D", s.DataDir, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C.UTF-8", "--nosync", "--wal-segsize=1").CombinedOutput(); err != nil {
		t.Fatalf("testenv: initdb: %v\n%s", err, out)
	}
	archive := ArchiveConf(s.Archive)
	if command != "" {
		archive = fmt.Sprintf("archive_mode = on\narchive_command = '%s'\n", command)
	}
	conf := archive + `wal_level = replica
full_page_writes = on
max_wal_senders = 4
fsync = off
logging_collector = off
`
	s.Port = StartPostgresOn(t, bin, s.DataDir, conf)
	s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	return s
}

// ArchiveConf is the postgresql.conf lines that archive every WAL file
// into dir, never overwriting one. A file appears there whole (copied
// under a .tmp name, then renamed), as a repository's Put stores it: a
// reader never sees one half copied.
func ArchiveConf(dir string) string {
	return fmt.Sprintf("archive_mode = on\narchive_command = 'test ! -f %[1]s/%%f && cp %%p %[1]s/%%f.tmp && mv %[1]s/%%f.tmp %[1]s/%%f'\n", dir)
}

// PITRPostgresTarget returns an empty directory a restore may fill and a
// PostgreSQL server may run from (owned by the server user), and a free
// port for it. A server left running there is stopped when the test ends.
func PITRPostgresTarget(t testing.TB) (dataDir string, port int) {
	t.Helper()
	bin := PGBin(t)
	dataDir = filepath.Join(serverDir(t), "data")
	mkdirOwned(t, dataDir)
	t.Cleanup(func() { StopPostgres(t, bin, dataDir) })
	return dataDir, FreePort(t)
}

// StartPostgresOn appends conf to dataDir's postgresql.auto.conf with a
// free loopback port and a socket directory beside dataDir, starts the
// server (stopped when the test ends) and returns its port. A port taken
// between choosing and binding it is retried.
func StartPostgresOn(t testing.TB, bin, dataDir, conf string) int {
	t.Helper()
	t.Cleanup(func() { StopPostgres(t, bin, dataDir) })
	logFile := filepath.Join(filepath.Dir(dataDir), "postgres.log")
	sock := filepath.Join(filepath.Dir(dataDir), "run")
	mkdirOwned(t, sock)
	auto := filepath.Join(dataDir, "postgresql.auto.conf")
	orig, err := os.ReadFile(auto)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		all := fmt.Sprintf("%s\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n%s", orig, port, sock, conf)
		if err := os.WriteFile(auto, []byte(all), 0o600); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		chownToServer(t, auto)
		out, err := asServerUser(t, filepath.Join(bin, "pg_ctl"), "-D", dataDir, "-l", logFile, "-w", "-t", "300", "start").CombinedOutput()
		if err == nil {
			return port
		}
		logText, _ := os.ReadFile(logFile)
		if attempt < 5 && strings.Contains(string(logText), "Address already in use") {
			continue
		}
		t.Fatalf("testenv: starting PostgreSQL on %s: %v\n%s\n%s", dataDir, err, out, tail(logText, 4000))
	}
}

// FreePort returns a loopback TCP port nothing listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StopPostgres stops the server running on dataDir, if any, at once
// (-m immediate: its next start recovers from its WAL).
func StopPostgres(t testing.TB, bin, dataDir string) {
	if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); err != nil {
		return
	}
	if out, err := asServerUser(t, filepath.Join(bin, "pg_ctl"), "-D", dataDir, "-m", "immediate", "-w", "-t", "60", "stop").CombinedOutput(); err != nil {
		t.Errorf("testenv: stopping PostgreSQL on %s: %v\n%s", dataDir, err, out)
	}
}

// serverDir is a new directory of the server user's, removed when
// the test ends. It is short (socket paths are limited to 107 bytes) and
// not under t.TempDir, whose parents only root may enter.
func serverDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sp-pitr-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	chownToServer(t, dir)
	return dir
}

func mkdirOwned(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	chownToServer(t, dir)
}

// serverUser is the uid/gid servers run as: the caller's, or under root
// the user scripts/testenv.sh runs its servers as.
func serverUser(t testing.TB) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return os.Geteuid(), os.Getegid()
	}
	name := os.Getenv("STILLPOINT_TESTENV_USER")
	if name == "" {
		name = "stillpoint-test"
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("testenv: server user %s (created by scripts/testenv.sh up): %v", name, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

func chownToServer(t testing.TB, path string) {
	t.Helper()
	uid, gid := serverUser(t)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

func asServerUser(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, name, args...)
	uid, gid := serverUser(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}
