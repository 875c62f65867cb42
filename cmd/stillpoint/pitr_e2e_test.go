package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/pitr/mariadb"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestPITRMariaDBEndToEnd: the commands together on a binlogging MariaDB
// holding every namespace: a base, transfers, a cut (which closes its
// binlog), more transfers, `archive` until the cut is restorable (then
// SIGINT: exit 130), and `restore --to-cut` into a fresh server whose bank
// holds exactly the transfers committed before the cut; then a second
// base and cut, `forget --keep-last 1`, and the kept cut still restores.
func TestPITRMariaDBEndToEnd(t *testing.T) {
	store, _ := testenv.PITRMariaDB(t)
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	config := func(name, dsn string) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(fmt.Sprintf("stores:\n  maria: {engine: mysql, dsn: %q}\ncoordinator: maria\nnamespaces: {bank_0: maria, bank_1: maria}\nrepository: %s\n", dsn, repoDir)), 0o600)
		return path
	}
	bin := build(t)
	src := cli{t: t, bin: bin, args: []string{"--config", config("source.yaml", store.DSN)}}
	run := func(c cli, args ...string) string {
		t.Helper()
		out, code := c.run(args...)
		if code != 0 {
			t.Fatalf("stillpoint %v: exit %d %s", args, code, out)
		}
		return out
	}
	committed := func(c cli) int64 {
		t.Helper()
		var rep struct {
			Bank map[string]struct {
				CommittedTransfers int64 `json:"committed_transfers"`
			} `json:"bank"`
		}
		if out := run(c, "--json", "verify"); json.Unmarshal([]byte(out), &rep) != nil || len(rep.Bank) != 1 {
			t.Fatalf("verify: %s", out)
		}
		for _, b := range rep.Bank {
			return b.CommittedTransfers
		}
		return 0
	}
	var overview struct {
		Cuts   []struct{ Name string } `json:"cuts"`
		Bases  []struct{ Bytes int64 } `json:"bases"`
		Stores []struct{ Cuts int }    `json:"stores"`
	}
	// cut marks one, after transfers, and returns how many were committed
	// at it; then runs more, so that a restore to it proves it exact.
	cut := func(name string) int64 {
		run(src, "workload", "bank", "--count", "30")
		at := committed(src)
		var c struct {
			FenceHold int64 `json:"fence_hold_ns"`
		}
		json.Unmarshal([]byte(run(src, "--json", "cut", "create", "--name", name)), &c)
		t.Logf("cut %s: the fence held %v", name, time.Duration(c.FenceHold))
		run(src, "workload", "bank", "--count", "30")
		if after := committed(src); after <= at {
			t.Fatalf("committed transfers %d after cut %s, %d at it: the test proves nothing", after, name, at)
		}
		return at
	}
	// archiveUntil runs the archiver until n cuts are restorable.
	archiveUntil := func(n int) {
		archive := exec.Command(bin, append(src.args, "archive")...)
		if err := archive.Start(); err != nil {
			t.Fatal(err)
		}
		testenv.Await(t, fmt.Sprintf("the archiver to make %d cuts restorable", n), func() bool {
			out, _ := src.run("--json", "cut", "list")
			return json.Unmarshal([]byte(out), &overview) == nil && len(overview.Stores) == 1 && overview.Stores[0].Cuts == n
		})
		archive.Process.Signal(syscall.SIGINT)
		if err := archive.Wait(); archive.ProcessState.ExitCode() != exitInterrupted {
			t.Errorf("archive after SIGINT: %v, want exit %d", err, exitInterrupted)
		}
	}
	// restoreTo restores a cut into a fresh server and returns its bank's
	// committed transfers.
	restoreTo := func(name string) int64 {
		target, port := filepath.Join(dir, "restored-"+name), testenv.LoopbackPort(t)
		t.Cleanup(func() { mariadb.StopRestored(context.Background(), target) })
		restored := cli{t: t, bin: bin, args: []string{"--config", config(name+".yaml", fmt.Sprintf("stillpoint:stillpoint@tcp(127.0.0.1:%d)/", port))}}
		run(restored, "restore", "--to-cut", name, "--target", fmt.Sprintf("maria=%s:%d", target, port))
		return committed(restored)
	}

	run(src, "init")
	run(src, "workload", "bank", "--accounts", "5", "--count", "1")
	run(src, "base", "create")
	at1 := cut("c1")
	archiveUntil(1)
	t.Logf("base: %d bytes; %d transfers committed at cut c1", overview.Bases[0].Bytes, at1)
	if got := restoreTo("c1"); got != at1 {
		t.Errorf("restored to c1, the bank holds %d committed transfers, want the %d committed before it", got, at1)
	}
	run(src, "base", "create")
	at2 := cut("c2")
	archiveUntil(2)
	var forgot struct {
		Removed map[string]int `json:"removed"`
		Prune   struct {
			Chunks int `json:"chunks_removed"`
		} `json:"prune"`
	}
	json.Unmarshal([]byte(run(src, "--json", "forget", "--keep-last", "1")), &forgot)
	if forgot.Removed["cut"] != 1 || forgot.Removed["base"] != 1 || forgot.Removed["log"] == 0 {
		t.Errorf("forget --keep-last 1 removed %v; want c1, its base and the binlogs before the second base", forgot.Removed)
	}
	t.Logf("forget removed %v and pruned %d chunks", forgot.Removed, forgot.Prune.Chunks)
	if out := run(src, "--json", "cut", "list"); json.Unmarshal([]byte(out), &overview) != nil || len(overview.Cuts) != 1 || len(overview.Bases) != 1 {
		t.Fatalf("after forget --keep-last 1: %s; want one cut and its base", out)
	}
	run(src, "check", "--read-data")
	if got := restoreTo("c2"); got != at2 {
		t.Errorf("restored to c2 after forget, the bank holds %d committed transfers, want the %d committed before it", got, at2)
	}
	if out := run(src, "backup", "list"); !strings.Contains(out, "store maria: restorable to any cut from") {
		t.Errorf("backup list does not say what the store can be restored to:\n%s", out)
	}

	// A gap made on purpose: check names it (exit 3), and a restore that
	// needs the file refuses before it writes anything.
	binlogs, _ := filepath.Glob(filepath.Join(repoDir, "logs", "maria", "*"))
	if len(binlogs) == 0 {
		t.Fatal("no binlog archived")
	}
	os.Remove(binlogs[0])
	if out, code := src.run("check"); code != exitViolation || !strings.Contains(out, "gap") {
		t.Errorf("check with a gap in the archive: exit %d, want %d naming the gap:\n%s", code, exitViolation, out)
	}
	target, port := filepath.Join(dir, "restored-across-gap"), testenv.LoopbackPort(t)
	onTarget := cli{t: t, bin: bin, args: []string{"--config", config("gap.yaml", fmt.Sprintf("stillpoint:stillpoint@tcp(127.0.0.1:%d)/", port))}}
	if _, code := onTarget.run("restore", "--to-cut", "c2", "--target", fmt.Sprintf("maria=%s:%d", target, port)); code != exitError {
		t.Errorf("restore across a gap: exit %d, want %d", code, exitError)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a restore refused for a gap touched its target (%v)", err)
	}
}
