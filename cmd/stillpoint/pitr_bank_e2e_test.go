package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// bankCuts is how many cuts TestPITRBankUnderLoad marks while the bank
// runs (issue 12).
const bankCuts = 20

// TestPITRBankUnderLoad is issue 12's end to end (docs/pitr-bank.md):
// PostgreSQL (the coordinator) and MariaDB configured for PITR, the bank
// transferring all along; a base, ten cuts, a second base, ten more cuts,
// over STILLPOINT_PITR_SECONDS (default 10; the 60 s on demand);
// logs archived as an operator's would be (wal-push as archive_command,
// `stillpoint archive`). Each restored state must hold both invariants and
// hold exactly the transfers decided before the cut's mark, decided from
// the source server's own WAL. Restored: the first and the middle cut
// (--to-cut), then after `forget --keep-last 2` (a dry run first, which
// must leave the repository as it was) and its prune, both kept cuts, by
// --to-time and --to-latest.
func TestPITRBankUnderLoad(t *testing.T) {
	seconds := 10
	if s := os.Getenv("STILLPOINT_PITR_SECONDS"); s != "" {
		var err error
		if seconds, err = strconv.Atoi(s); err != nil || seconds < 1 {
			t.Fatalf("STILLPOINT_PITR_SECONDS=%q: want a number of seconds", s)
		}
	}
	ctx := context.Background()
	pg, maria := postgresStore(t), mariadbStore(t)
	stores := []pitrStore{pg, maria}
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	bin := build(t)
	src := cli{t: t, bin: bin, args: []string{"--config", bankConfig(t, dir, "source.yaml", repoDir, stores, []string{pg.dsn, maria.dsn})}}
	source, err := sql.Open("pgx", pg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer source.Close()
	// The transfers decided before each mark are read from the source's
	// WAL (pg_walinspect), so the WAL since the start must stay in pg_wal.
	var from string
	for _, q := range []string{"CREATE EXTENSION pg_walinspect", "ALTER SYSTEM SET wal_keep_size = '4GB'", "SELECT pg_reload_conf()"} {
		if _, err := source.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := source.QueryRow("SELECT pg_current_wal_insert_lsn()::text").Scan(&from); err != nil {
		t.Fatal(err)
	}
	mustRun(src, "init")
	mustRun(src, "workload", "bank", "--accounts", "10", "--count", "1")
	first := basesOf(t, mustRun(src, "--json", "base", "create"))

	archiver := exec.Command(bin, append(src.args, "archive")...)
	if err := archiver.Start(); err != nil {
		t.Fatal(err)
	}
	defer archiver.Process.Kill()

	// The bank runs in this process until the last cut is marked.
	st := multistorage.New(loadConfig(t, src))
	defer st.Close()
	setup, err := bank.Load(ctx, st, "bank_0")
	if err != nil || setup == nil {
		t.Fatalf("bank setup: %v", err)
	}
	const workers = 4
	var committed atomic.Int64
	loadCtx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan bank.Stats, 1)
	go func() {
		stats, err := bank.Run(loadCtx, bank.Local(txn.NewManager(st, txn.Options{})), setup, bank.Workload{
			Concurrency: workers, Duration: time.Hour,
			// The largest count reported: every worker reports.
			Progress: func(s bank.Stats) {
				for old := committed.Load(); s.Committed > old; old = committed.Load() {
					if committed.CompareAndSwap(old, s.Committed) {
						return
					}
				}
			},
		})
		if err != nil {
			t.Error(err)
		}
		loaded <- stats
	}()

	var (
		cuts       []*pitr.Cut
		secondBase *exec.Cmd
		secondOut  bytes.Buffer
		baseDone   = make(chan error, 1)
		lockFile   = filepath.Join(repoDir, "locks", "repository")
	)
	tick := time.NewTicker(time.Duration(seconds) * time.Second / bankCuts)
	for i := 1; i <= bankCuts; i++ {
		<-tick.C
		// committed lags the transfers returned by at most one per
		// worker (each reports its own after counting it), and each worker
		// has at most one transfer deciding across the last mark: so more
		// than 2 × workers reported since were more than workers returned
		// since, one of them decided after the last mark. Every cut then
		// has transfers before it that the last has not.
		at := committed.Load()
		testenv.Await(t, "transfers to commit since the last cut", func() bool { return committed.Load() > at+2*workers })
		if i == bankCuts/2 {
			// A second base under load, with the WAL before it archived
			// (forget may then drop the first base and the logs before
			// it), and the middle cut marked while it holds the lock.
			pg.push(src)
			secondBase = exec.Command(bin, append(src.args, "--json", "base", "create")...)
			secondBase.Stdout = &secondOut
			if err := secondBase.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { baseDone <- secondBase.Wait() }()
			testenv.Await(t, "the second base to take the repository lock", func() bool {
				_, err := os.Stat(lockFile)
				return err == nil || len(baseDone) > 0
			})
		}
		var c pitr.Cut
		if out := mustRun(src, "--json", "cut", "create", "--name", fmt.Sprintf("c%02d", i)); json.Unmarshal([]byte(out), &c) != nil {
			t.Fatalf("cut create: %s", out)
		}
		cuts = append(cuts, &c)
		if i == bankCuts/2 {
			if _, err := os.Stat(lockFile); err != nil {
				t.Errorf("the second base ended before cut %s was marked: the cut did not overlap it", c.Name)
			}
			if err := <-baseDone; err != nil {
				t.Fatalf("base create under load: %v", err)
			}
		}
	}
	tick.Stop()
	second := basesOf(t, secondOut.String())
	stopLoad()
	stats := <-loaded
	t.Logf("load: %d transfers committed, %d aborted, %d unknown, %d failed (%s) in %v; p50 %v p99 %v max %v",
		stats.Committed, stats.Aborted, stats.Unknown, stats.Failed, stats.LastError, stats.Elapsed.Round(time.Millisecond), stats.P50, stats.P99, stats.Max)
	if stats.Failed > 0 {
		t.Errorf("%d transfers failed under the cuts: %s", stats.Failed, stats.LastError)
	}
	var holds []time.Duration
	for _, c := range cuts {
		holds = append(holds, c.FenceHold)
	}
	slices.Sort(holds)
	t.Logf("%d cuts over %v; fence held median %v, max %v", len(cuts), cuts[len(cuts)-1].Taken.Sub(cuts[0].Taken).Round(time.Millisecond), holds[len(holds)/2], holds[len(holds)-1])

	// Every log a cut needs archived: PostgreSQL's pushed, MariaDB's
	// pulled by the archiver (each cut closed its binlog).
	pg.push(src)
	testenv.Await(t, "the archive to make every cut restorable", func() bool {
		return slices.Equal(restorable(src), []int{bankCuts, bankCuts})
	})
	archiver.Process.Signal(syscall.SIGINT)
	if err := archiver.Wait(); archiver.ProcessState.ExitCode() != exitInterrupted {
		t.Errorf("archive after SIGINT: %v, want exit %d", err, exitInterrupted)
	}

	decided := decidedBefore(t, source, from, cuts)
	for i := 1; i < len(cuts); i++ {
		if len(decided[i]) <= len(decided[i-1]) {
			t.Errorf("no transfer committed between cuts %s and %s (%d, then %d): the load did not overlap the cuts", cuts[i-1].Name, cuts[i].Name, len(decided[i-1]), len(decided[i]))
		}
	}
	t.Logf("transfers decided before each cut: first %d, middle %d, last %d", len(decided[0]), len(decided[bankCuts/2-1]), len(decided[bankCuts-1]))

	// restore restores cuts into fresh servers, in parallel, and checks
	// each against the transfers decided before it.
	restore := func(group string, restores ...bankRestore) {
		t.Run(group, func(t *testing.T) {
			for _, r := range restores {
				c := cuts[r.cut]
				t.Run(c.Name, func(t *testing.T) {
					t.Parallel()
					args, restored, dsns := bankTargets(t, dir, repoDir, stores, "restore-"+c.Name)
					var res pitr.Result
					if out := mustRun(restored, append(append([]string{"--json", "restore"}, r.how...), args...)...); json.Unmarshal([]byte(out), &res) != nil || res.Cut != c.ID {
						t.Fatalf("restore %v: restored %q, want cut %s (%s):\n%s", r.how, res.Cut, c.Name, c.ID, out)
					}
					for _, sp := range res.Stores {
						if want := baseBefore(t, c, sp.Store, first, second); sp.Base.ID != want.ID {
							t.Errorf("store %s restored from base %s, want %s (the newest consistent before the cut)", sp.Store, sp.Base.ID, want.ID)
						} else if want == first[sp.Store] {
							t.Logf("store %s: from the first base", sp.Store)
						}
					}
					checkRestoredBank(t, restored, dsns[0], setup, decided[r.cut])
					t.Logf("restore %v: cut %s in %v, %d transfers", r.how, c.Name, res.Took.Round(time.Millisecond), len(decided[r.cut]))
				})
			}
		})
	}
	restore("first and middle", bankRestore{0, []string{"--to-cut", cuts[0].Name}}, bankRestore{bankCuts/2 - 1, []string{"--to-cut", cuts[bankCuts/2-1].ID}})

	// forget --dry-run writes nothing at all; then forget keeps the two
	// newest cuts, their base, and the logs from it on.
	before := repoFiles(t, repoDir)
	forget := func(dry ...string) {
		var out struct {
			DryRun  bool           `json:"dry_run"`
			Removed map[string]int `json:"removed"`
		}
		text := mustRun(src, append([]string{"--json", "forget", "--keep-last", "2"}, dry...)...)
		if json.Unmarshal([]byte(text), &out) != nil || out.DryRun != (len(dry) > 0) {
			t.Fatalf("forget %v: %s", dry, text)
		}
		if r := out.Removed; r["cut"] != bankCuts-2 || r["base"] != len(stores) || r["log"] == 0 {
			t.Errorf("forget --keep-last 2 %v removed %v; want %d cuts, the first base of each store and the logs before the second", dry, r, bankCuts-2)
		}
	}
	forget("--dry-run")
	if after := repoFiles(t, repoDir); !maps.Equal(before, after) {
		t.Errorf("forget --dry-run changed the repository: %d objects before, %d after", len(before), len(after))
	}
	forget()
	mustRun(src, "check", "--read-data")
	var o pitrOverviewJSON
	if out := mustRun(src, "--json", "cut", "list"); json.Unmarshal([]byte(out), &o) != nil || len(o.Cuts) != 2 || len(o.Bases) != len(stores) {
		t.Fatalf("after forget --keep-last 2: %s; want two cuts and their bases", out)
	}
	// Between the two kept cuts: --to-time picks the earlier.
	between := cuts[bankCuts-2].Taken.Add(cuts[bankCuts-1].Taken.Sub(cuts[bankCuts-2].Taken) / 2)
	restore("kept after forget", bankRestore{bankCuts - 2, []string{"--to-time", between.Format(time.RFC3339Nano)}}, bankRestore{bankCuts - 1, []string{"--to-latest"}})

	// Two cut creates with one name at once: one cut, the other refused.
	var wg sync.WaitGroup
	outs, codes := make([][]byte, 2), make([]int, 2)
	for i := range 2 {
		wg.Go(func() {
			cmd := exec.Command(bin, append(src.args, "cut", "create", "--name", "twice")...)
			outs[i], _ = cmd.CombinedOutput()
			codes[i] = cmd.ProcessState.ExitCode()
		})
	}
	wg.Wait()
	if slices.Sort(codes); codes[0] != 0 || codes[1] != exitError || !strings.Contains(string(slices.Concat(outs...)), `cut name "twice" is taken`) && !strings.Contains(string(slices.Concat(outs...)), `cut named "twice" exists already`) {
		t.Errorf("two cut create --name twice at once: exits %v; want one 0 and one %d saying the name is taken:\n%s\n%s", codes, exitError, outs[0], outs[1])
	}
	if out := mustRun(src, "--json", "cut", "list"); json.Unmarshal([]byte(out), &o) != nil || len(o.Cuts) != 3 {
		t.Errorf("after two cut creates named twice: %s; want one more cut", out)
	}
}

// bankRestore is a restore TestPITRBankUnderLoad makes: of which cut, and
// how it is chosen.
type bankRestore struct {
	cut int
	how []string
}

// basesOf reads `base create --json`: each store's new base.
func basesOf(t *testing.T, out string) map[string]*pitr.Base {
	t.Helper()
	var bases []*pitr.Base
	if err := json.Unmarshal([]byte(out), &bases); err != nil || len(bases) == 0 {
		t.Fatalf("base create: %v: %s", err, out)
	}
	by := map[string]*pitr.Base{}
	for _, b := range bases {
		by[b.Store] = b
	}
	return by
}

// baseBefore is the base a restore of store to cut c must start from, by
// docs/pitr.md's rule: of the sets of bases, oldest first, the newest
// whose copy ended (was consistent) at or before the cut's position.
func baseBefore(t *testing.T, c *pitr.Cut, store string, sets ...map[string]*pitr.Base) *pitr.Base {
	t.Helper()
	var want *pitr.Base
	for _, set := range sets {
		if cmp, err := pitr.Compare(set[store].Info.End, c.Positions[store]); err != nil {
			t.Fatal(err)
		} else if cmp <= 0 {
			want = set[store]
		}
	}
	if want == nil {
		t.Fatalf("store %s: no base before cut %s", store, c.Name)
	}
	return want
}

// pitrOverviewJSON is what TestPITRBankUnderLoad reads of `cut list --json`.
type pitrOverviewJSON struct {
	Cuts   []struct{ Name string } `json:"cuts"`
	Bases  []struct{ ID string }   `json:"bases"`
	Stores []struct{ Cuts int }    `json:"stores"`
}

// restorable is how many cuts each store can be restored to, as `cut
// list` says.
func restorable(c cli) []int {
	var o pitrOverviewJSON
	out, _ := c.run("--json", "cut", "list")
	json.Unmarshal([]byte(out), &o)
	n := make([]int, len(o.Stores))
	for i, s := range o.Stores {
		n[i] = s.Cuts
	}
	return n
}

func mustRun(c cli, args ...string) string {
	c.t.Helper()
	out, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("stillpoint %v: exit %d %s", args, code, out)
	}
	return out
}

// bankConfig writes a configuration of stores at dsns: the first holds the
// coordinator and bank_0, the last bank_1.
func bankConfig(t *testing.T, dir, name, repoDir string, stores []pitrStore, dsns []string) string {
	y := "stores:\n"
	for i, s := range stores {
		y += fmt.Sprintf("  %s: {engine: %s, dsn: %q}\n", s.name, map[bool]string{true: "postgres", false: "mysql"}[s.name == "pg"], dsns[i])
	}
	y += fmt.Sprintf("coordinator: %s\nnamespaces: {bank_0: %s, bank_1: %s}\nrepository: %s\n", stores[0].name, stores[0].name, stores[len(stores)-1].name, repoDir)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// bankTargets makes fresh restore targets: the restore's --target
// arguments, the CLI configured for the restored servers, their DSNs.
func bankTargets(t *testing.T, dir, repoDir string, stores []pitrStore, name string) ([]string, cli, []string) {
	var args, dsns []string
	for _, s := range stores {
		dir, port, dsn := s.target(t)
		args = append(args, "--target", fmt.Sprintf("%s=%s:%d", s.name, dir, port))
		dsns = append(dsns, dsn)
	}
	return args, cli{t: t, bin: build(t), args: []string{"--config", bankConfig(t, dir, name+".yaml", repoDir, stores, dsns)}}, dsns
}

// decidedBefore returns, for each cut, the ids of the transfers whose
// commit decision (their coordinator row's insert, in PostgreSQL, the
// coordinator store) committed before the cut's mark: the rows' xmin
// against the COMMIT records of the source server's WAL, from `from` on,
// read on the live source (pg_walinspect), not from the archive nor from
// any restore.
func decidedBefore(t *testing.T, db *sql.DB, from string, cuts []*pitr.Cut) []map[string]bool {
	t.Helper()
	commits := map[string]string{} // xid: its COMMIT record's LSN
	rows, err := db.Query(`SELECT xid::text, start_lsn::text FROM pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn())
		WHERE resource_manager = 'Transaction' AND record_type = 'COMMIT'`, from)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var xid, lsn string
		if err := rows.Scan(&xid, &lsn); err != nil {
			t.Fatal(err)
		}
		commits[xid] = lsn
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = db.Query(`SELECT tx_id, xmin::text FROM coordinator.state WHERE tx_id LIKE $1 AND tx_state = 3`, bank.TransferPrefix+"%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := make([]map[string]bool, len(cuts))
	for i := range out {
		out[i] = map[string]bool{}
	}
	for rows.Next() {
		var id, xmin string
		if err := rows.Scan(&id, &xmin); err != nil {
			t.Fatal(err)
		}
		lsn, ok := commits[xmin]
		if !ok {
			t.Fatalf("transfer %s: its coordinator row's transaction %s has no COMMIT record in the WAL since %s", id, xmin, from)
		}
		for i, c := range cuts {
			mark := c.Positions["pg"]
			if cmp, err := pitr.Compare(pitr.Position{LSN: lsn, Timeline: mark.Timeline}, mark); err != nil {
				t.Fatal(err)
			} else if cmp < 0 {
				out[i][id] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkRestoredBank checks a restored state: verify exits 0 (both
// invariants hold, nothing left unsettled), the restored coordinator holds
// exactly the transfers want names, and the tx_version sum is the initial
// inserts plus two per such transfer.
func checkRestoredBank(t *testing.T, restored cli, coordinatorDSN string, setup *bank.Setup, want map[string]bool) {
	t.Helper()
	var rep struct {
		Bank map[string]bank.Invariants `json:"bank"`
	}
	if out := mustRun(restored, "--json", "verify"); json.Unmarshal([]byte(out), &rep) != nil || len(rep.Bank) != 1 {
		t.Fatalf("verify: %s", out)
	}
	accounts := int64(setup.Accounts * len(setup.Namespaces))
	for _, iv := range rep.Bank {
		if !iv.OK() || iv.VersionSum != accounts+2*int64(len(want)) {
			t.Errorf("restored bank: %+v; want the tx_version sum %d + 2 × %d transfers", iv, accounts, len(want))
		}
	}
	db, err := sql.Open("pgx", coordinatorDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT tx_id FROM coordinator.state WHERE tx_id LIKE $1 AND tx_state = 3`, bank.TransferPrefix+"%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got[id] = true
		if !want[id] {
			t.Errorf("restored coordinator holds transfer %s, decided after the mark", id)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if !got[id] {
			t.Errorf("restored coordinator lacks transfer %s, decided before the mark", id)
		}
	}
}

// repoFiles lists every file of a local repository with its size.
func repoFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			out[path] = info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
