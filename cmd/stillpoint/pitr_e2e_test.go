package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stillpoint/stillpoint/internal/pitr/mariadb"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestPITRMariaDBEndToEnd: the commands together on a binlogging MariaDB
// holding every namespace: a base, transfers, a cut (which closes its
// binlog), more transfers, `archive` until the cut is restorable (then
// SIGINT: exit 130), and `restore --to-cut` into a fresh server whose
// bank holds exactly the transfers committed before the cut.
func TestPITRMariaDBEndToEnd(t *testing.T) {
	store, _ := testenv.PITRMariaDB(t)
	dir := t.TempDir()
	repoDir, target := filepath.Join(dir, "repo"), filepath.Join(dir, "restored")
	port := testenv.LoopbackPort(t)
	t.Cleanup(func() { mariadb.StopRestored(context.Background(), target) })
	config := func(name, dsn string) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(fmt.Sprintf("stores:\n  maria: {engine: mysql, dsn: %q}\ncoordinator: maria\nnamespaces: {bank_0: maria, bank_1: maria}\nrepository: %s\n", dsn, repoDir)), 0o600)
		return path
	}
	bin := build(t)
	src := cli{t: t, bin: bin, args: []string{"--config", config("source.yaml", store.DSN)}}
	restored := cli{t: t, bin: bin, args: []string{"--config", config("restored.yaml", fmt.Sprintf("stillpoint:stillpoint@tcp(127.0.0.1:%d)/", port))}}
	committed := func(c cli) int64 {
		out, code := c.run("--json", "verify")
		var rep struct {
			Bank map[string]struct {
				CommittedTransfers int64 `json:"committed_transfers"`
			} `json:"bank"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Bank) != 1 {
			t.Fatalf("verify: exit %d %s", code, out)
		}
		for _, b := range rep.Bank {
			return b.CommittedTransfers
		}
		return 0
	}
	for _, args := range [][]string{
		{"init"},
		{"workload", "bank", "--accounts", "5", "--count", "1"},
		{"base", "create"},
		{"workload", "bank", "--count", "30"},
	} {
		if out, code := src.run(args...); code != 0 {
			t.Fatalf("stillpoint %v: exit %d %s", args, code, out)
		}
	}
	atCut := committed(src)
	if out, code := src.run("cut", "create", "--name", "c1"); code != 0 {
		t.Fatalf("cut create: exit %d %s", code, out)
	}
	if out, code := src.run("workload", "bank", "--count", "30"); code != 0 {
		t.Fatalf("workload after the cut: exit %d %s", code, out)
	}
	if after := committed(src); after <= atCut {
		t.Fatalf("committed transfers %d after the cut, %d at it: the test proves nothing", after, atCut)
	}
	archive := exec.Command(bin, append(src.args, "archive")...)
	if err := archive.Start(); err != nil {
		t.Fatal(err)
	}
	var o struct {
		Bases  []struct{ Bytes int64 } `json:"bases"`
		Stores []struct{ Cuts int }    `json:"stores"`
	}
	testenv.Await(t, "the archiver to make cut c1 restorable", func() bool {
		out, _ := src.run("--json", "cut", "list")
		return json.Unmarshal([]byte(out), &o) == nil && len(o.Stores) == 1 && o.Stores[0].Cuts == 1
	})
	t.Logf("base: %d bytes; %d transfers committed at the cut, %d after", o.Bases[0].Bytes, atCut, committed(src))
	archive.Process.Signal(syscall.SIGINT)
	if err := archive.Wait(); archive.ProcessState.ExitCode() != exitInterrupted {
		t.Errorf("archive after SIGINT: %v, want exit %d", err, exitInterrupted)
	}
	if out, code := restored.run("restore", "--to-cut", "c1", "--target", fmt.Sprintf("maria=%s:%d", target, port)); code != 0 {
		t.Fatalf("restore --to-cut c1: exit %d %s", code, out)
	}
	if got := committed(restored); got != atCut {
		t.Errorf("the restored bank holds %d committed transfers, want the %d committed before the cut", got, atCut)
	}
}
