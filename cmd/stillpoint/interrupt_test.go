package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	_ "modernc.org/sqlite"
)

// interruptAt runs stillpoint with args, -vv and JSON logs, sends SIGINT
// once it logs a line whose message starts with at, and returns its exit
// code and stderr. The line is awaited, never timed.
func (c cli) interruptAt(at string, args ...string) (int, string) {
	c.t.Helper()
	return c.interruptAfter(1, at, args...)
}

// interruptAfter is interruptAt on the n-th such line.
func (c cli) interruptAfter(n int, at string, args ...string) (int, string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, append(append(c.args, "-vv", "--log-format", "json"), args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	var log strings.Builder
	lines := bufio.NewScanner(stderr)
	signalled := false
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		var line struct{ Msg string }
		if !signalled && json.Unmarshal(lines.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, at) {
			if n--; n > 0 {
				continue
			}
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				c.t.Fatal(err)
			}
			signalled = true
		}
	}
	io.Copy(io.Discard, stderr)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !signalled {
		c.t.Fatalf("stillpoint %s never logged %q:\n%s", strings.Join(args, " "), at, log.String())
	}
	if err != nil && !errors.As(err, &ee) {
		c.t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), log.String()
}

// holdWriteLock takes an SQLite database's write lock until the test ends
// or release is called.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	release = func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		db.Close()
	}
	t.Cleanup(release)
	return release
}

// TestInterrupted: SIGINT stops a backup waiting for the fence and a
// restore creating its tables with exit 130 and "interrupted"; the
// repository lock is released, no backup is listed, and the half-restored
// stores are refused by verify until a restore run again finishes them.
func TestInterrupted(t *testing.T) {
	dir := t.TempDir()
	data, repoDir, target := filepath.Join(dir, "data"), filepath.Join(dir, "repo"), filepath.Join(dir, "target")
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", data}}
	if out, code := c.run("workload", "bank", "--count", "50"); code != 0 {
		t.Fatalf("bank: %s", out)
	}
	if out, code := c.run("backup", "create", "--init", "--repo", repoDir); code != 0 {
		t.Fatalf("first backup: %s", out)
	}
	listed := func() int {
		out, code := c.run("--json", "backup", "list", "--repo", repoDir)
		var list []json.RawMessage
		if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
			t.Fatalf("backup list: exit %d %s", code, out)
		}
		return len(list)
	}

	t.Run("backup", func(t *testing.T) {
		c := c
		c.t = t
		release := holdWriteLock(t, filepath.Join(data, "coordinator.db")) // the fence waits for it
		code, log := c.interruptAt("cut: waiting for the coordinator fence", "backup", "create", "--repo", repoDir, "--fence-timeout", "10m")
		release()
		if code != exitInterrupted || !strings.Contains(log, "stillpoint: interrupted") {
			t.Fatalf("interrupted backup: exit %d, want %d saying interrupted:\n%s", code, exitInterrupted, log)
		}
		if n := listed(); n != 1 {
			t.Errorf("%d backups listed after an interrupted one, want the 1 taken before", n)
		}
		if locks, _ := os.ReadDir(filepath.Join(repoDir, "locks")); len(locks) != 0 {
			t.Errorf("the repository lock was left behind: %v", locks)
		}
		if out, code := c.run("backup", "create", "--repo", repoDir); code != 0 {
			t.Errorf("a backup after the interrupted one: exit %d %s", code, out)
		}
	})

	// A schedule of cuts logs a failed cut (SQLite stores have no
	// point-in-time recovery) and tries again next period, until SIGINT.
	t.Run("cut schedule", func(t *testing.T) {
		c := c
		c.t = t
		code, log := c.interruptAfter(2, "cut failed; trying again next period", "cut", "create", "--repo", repoDir, "--every", "10ms")
		if code != exitInterrupted || !strings.Contains(log, "stillpoint: interrupted") || !strings.Contains(log, "no point-in-time recovery") {
			t.Fatalf("interrupted cut schedule: exit %d, want %d saying interrupted after logging why each cut failed:\n%s", code, exitInterrupted, log)
		}
	})

	t.Run("restore", func(t *testing.T) {
		c := c
		c.t = t
		onTarget := cli{t: t, bin: c.bin, args: []string{"--data-dir", target}}
		// bank_1's store already has its metadata table (and an empty table
		// of its own), so the restore needs its write lock only to create
		// the accounts, after its journal has started.
		tmp := filepath.Join(dir, "tmp.json")
		os.WriteFile(tmp, []byte(`{"bank_1.tmp": {"transaction": false, "partition-key": ["id"], "columns": {"id": "INT"}}}`), 0o644)
		if out, code := onTarget.run("schema", "load", tmp); code != 0 {
			t.Fatalf("schema load: %s", out)
		}
		release := holdWriteLock(t, filepath.Join(target, "bank_1.db"))
		code, log := c.interruptAt("restore: journal started", "restore", "latest", "--repo", repoDir, "--data-dir", target)
		release()
		if code != exitInterrupted || !strings.Contains(log, "stillpoint: interrupted") {
			t.Fatalf("interrupted restore: exit %d, want %d saying interrupted:\n%s", code, exitInterrupted, log)
		}
		if _, code := onTarget.run("verify"); code != exitViolation {
			t.Errorf("verify of half-restored stores: exit %d, want %d (an unfinished restore)", code, exitViolation)
		}
		if out, code := onTarget.run("restore", "latest", "--repo", repoDir); code != 0 {
			t.Fatalf("the restore run again: exit %d %s", code, out)
		}
		if out, code := onTarget.run("verify"); code != 0 {
			t.Errorf("verify after the restore finished: exit %d %s", code, out)
		}
		if locks, _ := os.ReadDir(filepath.Join(repoDir, "locks")); len(locks) != 0 {
			t.Errorf("a lock was left behind: %v", locks)
		}
	})
}
