package main

import (
	"context"
	"database/sql"
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

// pitrStore is one store of an end-to-end PITR deployment: its source
// DSN, a restore target (directory, port, the DSN there), and what makes
// its log reach the archive.
type pitrStore struct {
	name, dsn string
	target    func(t *testing.T) (dir string, port int, dsn string)
	// push stores the log files the server archived since (PostgreSQL's
	// archive_command copies into a directory; wal-push is called here as
	// archive_command would); nil: `stillpoint archive` pulls it.
	push func(c cli)
}

func mariadbStore(t *testing.T) pitrStore {
	store, _ := testenv.PITRMariaDB(t)
	return pitrStore{name: "maria", dsn: store.DSN, target: func(t *testing.T) (string, int, string) {
		dir, port := filepath.Join(t.TempDir(), "restored"), testenv.LoopbackPort(t)
		t.Cleanup(func() { mariadb.StopRestored(context.Background(), dir) })
		return dir, port, fmt.Sprintf("stillpoint:stillpoint@tcp(127.0.0.1:%d)/", port)
	}}
}

func postgresStore(t *testing.T) pitrStore {
	pg := testenv.StartPITRPostgres(t)
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return pitrStore{name: "pg", dsn: pg.DSN,
		target: func(t *testing.T) (string, int, string) {
			dir, port := testenv.PITRPostgresTarget(t)
			return dir, port, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		},
		push: func(c cli) {
			// Close the segment holding the latest mark, await its
			// archiving, and push everything archived.
			var seg string
			if err := db.QueryRow("SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg); err != nil {
				c.t.Fatal(err)
			}
			testenv.Await(c.t, "PostgreSQL to archive "+seg, func() bool {
				_, err := os.Stat(filepath.Join(pg.Archive, seg))
				return err == nil
			})
			files, _ := os.ReadDir(pg.Archive)
			for _, f := range files {
				if !strings.HasSuffix(f.Name(), ".tmp") {
					if out, code := c.run("wal-push", "--store", "pg", f.Name(), filepath.Join(pg.Archive, f.Name())); code != 0 {
						c.t.Fatalf("wal-push %s: exit %d %s", f.Name(), code, out)
					}
				}
			}
		}}
}

// TestPITREndToEnd: the commands together, on MariaDB alone and on
// PostgreSQL (the coordinator) with MariaDB: a base, transfers, a cut
// (which closes its binlog), more transfers, the logs archived until the
// cut is restorable (`archive` then SIGINT: exit 130), and `restore
// --to-cut` into fresh servers whose bank holds exactly the transfers
// committed before the cut; then a second base and cut, `forget
// --keep-last 1`, and the kept cut still restores; a gap made on purpose is
// named by check and refuses the restore.
func TestPITREndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stores func(t *testing.T) []pitrStore
	}{
		{"mariadb", func(t *testing.T) []pitrStore { return []pitrStore{mariadbStore(t)} }},
		{"postgres and mariadb", func(t *testing.T) []pitrStore { return []pitrStore{postgresStore(t), mariadbStore(t)} }},
	} {
		t.Run(tc.name, func(t *testing.T) { pitrEndToEnd(t, tc.stores(t)) })
	}
}

func pitrEndToEnd(t *testing.T, stores []pitrStore) {
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	// config names the stores at dsns; the first is the coordinator and
	// holds bank_0, the last holds bank_1.
	config := func(name string, dsns []string) string {
		y := "stores:\n"
		for i, s := range stores {
			y += fmt.Sprintf("  %s: {engine: %s, dsn: %q}\n", s.name, map[bool]string{true: "postgres", false: "mysql"}[s.name == "pg"], dsns[i])
		}
		y += fmt.Sprintf("coordinator: %s\nnamespaces: {bank_0: %s, bank_1: %s}\nrepository: %s\n", stores[0].name, stores[0].name, stores[len(stores)-1].name, repoDir)
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(y), 0o600)
		return path
	}
	var dsns []string
	for _, s := range stores {
		dsns = append(dsns, s.dsn)
	}
	bin := build(t)
	src := cli{t: t, bin: bin, args: []string{"--config", config("source.yaml", dsns)}}
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
		for _, s := range stores {
			if s.push != nil {
				s.push(src)
			}
		}
		archive := exec.Command(bin, append(src.args, "archive")...)
		if err := archive.Start(); err != nil {
			t.Fatal(err)
		}
		testenv.Await(t, fmt.Sprintf("the archiver to make %d cuts restorable", n), func() bool {
			out, _ := src.run("--json", "cut", "list")
			if json.Unmarshal([]byte(out), &overview) != nil || len(overview.Stores) != len(stores) {
				return false
			}
			for _, s := range overview.Stores {
				if s.Cuts != n {
					return false
				}
			}
			return true
		})
		archive.Process.Signal(syscall.SIGINT)
		if err := archive.Wait(); archive.ProcessState.ExitCode() != exitInterrupted {
			t.Errorf("archive after SIGINT: %v, want exit %d", err, exitInterrupted)
		}
	}
	// restoreTo restores a cut into a fresh server and returns its bank's
	// committed transfers.
	// onTargets makes fresh restore targets: the restore's arguments for
	// cut name, the CLI configured for the restored servers, their
	// directories.
	onTargets := func(name string) ([]string, cli, []string) {
		args := []string{"restore", "--to-cut", name}
		var dsns, dirs []string
		for _, s := range stores {
			dir, port, dsn := s.target(t)
			args = append(args, "--target", fmt.Sprintf("%s=%s:%d", s.name, dir, port))
			dsns, dirs = append(dsns, dsn), append(dirs, dir)
		}
		return args, cli{t: t, bin: bin, args: []string{"--config", config(name+"-"+filepath.Base(dirs[0])+".yaml", dsns)}}, dirs
	}
	// restoreTo restores a cut into fresh servers and returns their bank's
	// committed transfers.
	restoreTo := func(name string) int64 {
		args, restored, _ := onTargets(name)
		run(restored, args...)
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
	if forgot.Removed["cut"] != 1 || forgot.Removed["base"] != len(stores) || forgot.Removed["log"] == 0 {
		t.Errorf("forget --keep-last 1 removed %v; want c1, its base and the binlogs before the second base", forgot.Removed)
	}
	t.Logf("forget removed %v and pruned %d chunks", forgot.Removed, forgot.Prune.Chunks)
	if out := run(src, "--json", "cut", "list"); json.Unmarshal([]byte(out), &overview) != nil || len(overview.Cuts) != 1 || len(overview.Bases) != len(stores) {
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
	args, restored, targets := onTargets("c2")
	if _, code := restored.run(args...); code != exitError {
		t.Errorf("restore across a gap: exit %d, want %d", code, exitError)
	}
	for _, target := range targets {
		if entries, _ := os.ReadDir(target); len(entries) > 0 {
			t.Errorf("a restore refused for a gap wrote into %s (%s)", target, entries[0].Name())
		}
	}
}
