package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/stillpoint/stillpoint/internal/testenv"
)

// bigBank makes a bank of n accounts per namespace on the embedded
// default, fast: a few by transactions, the rest inserted as imported
// data (NULL transaction metadata: deemed committed).
func bigBank(t *testing.T, c cli, dataDir string, n int) {
	t.Helper()
	if out, code := c.run("workload", "bank", "--accounts", "10", "--count", "50"); code != 0 {
		t.Fatalf("create bank: %s", out)
	}
	for _, ns := range []string{"bank_0", "bank_1"} {
		db, err := sql.Open("sqlite", filepath.Join(dataDir, ns+".db"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Exec(fmt.Sprintf(`WITH RECURSIVE g(i) AS (SELECT 10 UNION ALL SELECT i+1 FROM g WHERE i < %d)
			INSERT INTO "%s$accounts" (account_id, balance, tx_id, tx_state, tx_version, tx_prepared_at, tx_committed_at)
			SELECT i, 1000, NULL, NULL, 1, NULL, NULL FROM g`, n-1, ns))
		if err == nil && ns == "bank_0" {
			_, err = db.Exec(fmt.Sprintf(`UPDATE "bank_0$bank_setup" SET accounts = %d`, n))
		}
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoreKilledAndRunAgain: a restore killed while it loads leaves
// stores verify refuses; run again, it finishes, and the result is a clean
// restore's, settled: a read-only verify finds nothing to do.
func TestRestoreKilledAndRunAgain(t *testing.T) {
	src := t.TempDir()
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", src}}
	bigBank(t, c, src, 400000)
	repo := filepath.Join(t.TempDir(), "repo")
	out, code := c.run("--json", "backup", "create", "--init", "--repo", repo)
	if code != 0 {
		t.Fatalf("backup: %s", out)
	}
	var m struct{ ID string }
	json.Unmarshal([]byte(out), &m)

	// A clean restore, for reference.
	clean := cli{t: t, bin: c.bin, args: []string{"--data-dir", t.TempDir()}}
	if out, code := clean.run("restore", m.ID, "--repo", repo); code != 0 {
		t.Fatalf("clean restore: %s", out)
	}
	want, code := clean.run("--json", "verify")
	if code != 0 {
		t.Fatalf("read-only verify of the clean restore: %s", want)
	}

	// A restore killed once it has loaded a table, then run again.
	target := t.TempDir()
	tc := cli{t: t, bin: c.bin, args: []string{"--data-dir", target}}
	cmd := exec.Command(c.bin, "--data-dir", target, "restore", m.ID, "--repo", repo, "--parallel", "1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitForTableRestored(t, filepath.Join(target, "coordinator.db"), exited)
	cmd.Process.Signal(syscall.SIGKILL)
	if err := <-exited; err == nil {
		t.Fatal("the restore finished before it could be killed: make the data bigger")
	}
	if out, code := tc.run("verify"); code != exitViolation {
		t.Fatalf("verify of a half-finished restore: exit %d %s, want %d", code, out, exitViolation)
	}
	if out, code := tc.run("restore", m.ID, "--repo", repo); code != 0 {
		t.Fatalf("restore run again: %s", out)
	}
	got, code := tc.run("--json", "verify")
	if code != 0 {
		t.Fatalf("read-only verify after the second run: %s", got)
	}
	if bankLine(t, got) != bankLine(t, want) {
		t.Fatalf("the resumed restore differs from a clean one:\n%s\n%s", bankLine(t, got), bankLine(t, want))
	}
	t.Logf("resumed restore verified: %s", bankLine(t, got))
}

// bankLine is the bank part of a verify --json report.
func bankLine(t *testing.T, out string) string {
	var rep struct {
		Records int
		Bank    map[string]any
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("verify output: %v\n%s", err, out)
	}
	b, _ := json.Marshal(rep)
	return string(b)
}

// waitForTableRestored waits until the restore journal (in the
// coordinator's database) says a table is loaded, or the restore exited
// (which the caller reports: the journal goes when a restore completes).
func waitForTableRestored(t *testing.T, path string, exited chan error) {
	t.Helper()
	testenv.Await(t, "the restore to load a table", func() bool {
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
		}
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			return false
		}
		defer db.Close()
		var n int
		err = db.QueryRowContext(context.Background(), `SELECT count(*) FROM "stillpoint$restore_journal" WHERE state = 'DONE'`).Scan(&n)
		return err == nil && n > 0
	})
}
