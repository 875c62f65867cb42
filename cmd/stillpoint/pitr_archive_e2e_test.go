package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// archiveRounds is how many times a test breaks or kills the archiving
// during the load: STILLPOINT_TEST_ARCHIVE_ROUNDS for a longer campaign.
func archiveRounds(t *testing.T) int {
	n, err := strconv.Atoi(os.Getenv("STILLPOINT_TEST_ARCHIVE_ROUNDS"))
	if err != nil || n < 2 {
		return 3
	}
	return n
}

// archiving is how one engine's log reaches the repository in
// TestArchivingSurvivesKills, and how the test breaks it.
type archiving struct {
	store pitrStore
	// disrupt breaks or kills the archiving once, during the load, and
	// says what it did.
	disrupt func(t *testing.T, round int) string
	// finish archives the log up to the last cut, once the load stopped.
	finish func(t *testing.T, cuts int)
	// sameAsServer checks every archived file against the server's own.
	sameAsServer func(t *testing.T)
	// fileOf names the log file holding a position.
	fileOf func(t *testing.T, p pitr.Position) string
}

// TestArchivingSurvivesKills: on both engines, the archiving is killed
// with SIGKILL (and the PostgreSQL repository made unwritable) again and
// again while bank transfers run and cuts are taken; afterwards every cut
// taken during the load is restorable, check and backup verify find no
// gap, and a restore to the last cut holds the bank's invariants. Then a
// gap and an unreadable log file made on purpose are named by backup
// verify and check (exit 3), and refuse a restore before it writes.
func TestArchivingSurvivesKills(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, c cli, repoDir string) archiving
	}{
		{"postgres: archive_command is wal-push", postgresWALPush},
		{"mariadb: stillpoint archive", mariadbArchiver},
	} {
		t.Run(tc.name, func(t *testing.T) { archivingSurvivesKills(t, tc.setup) })
	}
}

func archivingSurvivesKills(t *testing.T, setup func(t *testing.T, c cli, repoDir string) archiving) {
	// Under root, PostgreSQL runs wal-push as its own user: the
	// configuration and the repository must be that user's.
	dir := testenv.ServerDir(t)
	repoDir, cfgPath := filepath.Join(dir, "repo"), filepath.Join(dir, "source.yaml")
	src := cli{t: t, bin: build(t), args: []string{"--config", cfgPath}}
	a := setup(t, src, repoDir)
	writeConfig := func(path, dsn string) {
		engine := map[bool]string{true: "postgres", false: "mysql"}[a.store.name == "pg"]
		y := fmt.Sprintf("stores:\n  %[1]s: {engine: %[2]s, dsn: %[3]q}\ncoordinator: %[1]s\nnamespaces: {bank_0: %[1]s, bank_1: %[1]s}\nrepository: %[4]s\n", a.store.name, engine, dsn, repoDir)
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		testenv.ServerOwns(t, path)
	}
	writeConfig(cfgPath, a.store.dsn)
	src.ok("init")
	testenv.ServerOwns(t, repoDir)
	src.ok("workload", "bank", "--accounts", "20", "--count", "1")
	src.ok("base", "create")
	src.ok("backup", "create")
	// A base whose first log file is not archived yet (a binlog still
	// written) has no gap: backup verify passes.
	src.ok("backup", "verify", "latest")

	load := exec.Command(src.bin, append(src.args, "workload", "bank", "--concurrency", "4", "--duration", "10m")...)
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loadDone := make(chan error, 1)
	go func() { loadDone <- load.Wait() }()
	t.Cleanup(func() { load.Process.Kill() })
	// committed is the bank's committed transfers as verify reports them,
	// and whether its invariants hold.
	committed := func(c cli) (int64, bool) {
		var rep struct {
			Bank map[string]struct {
				CommittedTransfers int64    `json:"committed_transfers"`
				Violations         []string `json:"violations"`
			} `json:"bank"`
		}
		out, _ := c.run("--json", "verify")
		if json.Unmarshal([]byte(out), &rep) != nil || len(rep.Bank) != 1 {
			t.Fatalf("verify: %s", out)
		}
		for _, b := range rep.Bank {
			return b.CommittedTransfers, len(b.Violations) == 0
		}
		return 0, false
	}
	var atStart int64
	testenv.Await(t, "the load to commit transfers", func() bool {
		atStart, _ = committed(src)
		return atStart > 1
	})
	rounds := archiveRounds(t)
	began := time.Now()
	var cut string
	for i := range rounds {
		cut = fmt.Sprintf("c%d", i+1)
		src.ok("cut", "create", "--name", cut)
		what := a.disrupt(t, i)
		t.Logf("%v round %d: %s, then cut %s", time.Since(began).Round(time.Millisecond), i, what, cut)
	}
	select {
	case err := <-loadDone:
		t.Fatalf("the load ended (%v) before the last cut: the archiving was not disrupted under load", err)
	default:
	}
	load.Process.Signal(syscall.SIGINT)
	<-loadDone
	a.finish(t, rounds)
	t.Logf("%v: every cut archived", time.Since(began).Round(time.Millisecond))

	var overview struct {
		Stores []pitr.Reach `json:"stores"`
	}
	if out := src.ok("--json", "cut", "list"); json.Unmarshal([]byte(out), &overview) != nil || len(overview.Stores) != 1 ||
		overview.Stores[0].Cuts != rounds || overview.Stores[0].Unrestorable != 0 {
		t.Fatalf("after the load, want all %d cuts restorable: %s", rounds, out)
	}
	a.sameAsServer(t)
	src.ok("check")
	if out := src.ok("backup", "verify", "latest"); !strings.Contains(out, "no gap") {
		t.Errorf("backup verify does not say the log archive has no gap:\n%s", out)
	}

	// restore restores the last cut into a fresh server and returns the
	// CLI configured for it, the restore's exit code and the directory.
	restore := func() (cli, int, string) {
		target, port, dsn := a.store.target(t)
		path := filepath.Join(dir, "restored-"+filepath.Base(target)+strconv.Itoa(port)+".yaml")
		writeConfig(path, dsn)
		restored := cli{t: t, bin: src.bin, args: []string{"--config", path}}
		_, code := restored.run("restore", "--to-cut", cut, "--target", fmt.Sprintf("%s=%s:%d", a.store.name, target, port))
		return restored, code, target
	}
	restored, code, _ := restore()
	if code != 0 {
		t.Fatalf("restore to %s: exit %d", cut, code)
	}
	// The restored bank holds the transfers committed while the archiving
	// was disrupted: the load overlapped it.
	if n, ok := committed(restored); !ok || n <= atStart {
		t.Fatalf("restored to %s: %d committed transfers (invariants hold: %v), want more than the %d committed before the first disruption", cut, n, ok, atStart)
	} else {
		t.Logf("restored to %s: %d committed transfers (%d before the first disruption), both invariants hold", cut, n, atStart)
	}

	// A gap and an unreadable file, made on purpose: the gap is the file
	// holding the last cut's mark (so a restore to it needs it), the
	// unreadable file the newest.
	var listed struct {
		Cuts []pitr.Cut `json:"cuts"`
	}
	if out := src.ok("--json", "cut", "list"); json.Unmarshal([]byte(out), &listed) != nil || len(listed.Cuts) != rounds {
		t.Fatalf("cut list: %s", out)
	}
	logDir := filepath.Join(repoDir, "logs", a.store.name)
	names := archivedLogs(logDir)
	gap, unreadable := a.fileOf(t, listed.Cuts[rounds-1].Positions[a.store.name]), names[len(names)-1]
	if pitr.CompareLogNames(gap, unreadable) >= 0 {
		t.Fatalf("the last cut's file %s is the newest archived (%v): no file after it to make it a gap", gap, names)
	}
	// The cuts before the gap still restore (a hole after a cut does not
	// refuse it); the others do not.
	before := 0
	for _, c := range listed.Cuts {
		if pitr.CompareLogNames(a.fileOf(t, c.Positions[a.store.name]), gap) < 0 {
			before++
		}
	}
	if err := os.Remove(filepath.Join(logDir, gap)); err != nil {
		t.Fatal(err)
	}
	chunks, _ := filepath.Glob(filepath.Join(repoDir, "logdata", a.store.name, unreadable, "*"))
	if len(chunks) == 0 || os.Remove(chunks[0]) != nil {
		t.Fatalf("no chunk of %s to remove: %v", unreadable, chunks)
	}
	for _, args := range [][]string{{"backup", "verify", "latest"}, {"check"}} {
		out, code := src.run(args...)
		if code != exitViolation || !strings.Contains(out, gap) {
			t.Errorf("%v with %s missing: exit %d, want %d naming it:\n%s", args, gap, code, exitViolation, out)
		}
		if args[0] == "backup" && !strings.Contains(out, "store "+a.store.name+": log file "+unreadable+" cannot be read") {
			t.Errorf("backup verify with a chunk of %s missing does not name the file and its store:\n%s", unreadable, out)
		}
	}
	if out := src.ok("--json", "cut", "list"); json.Unmarshal([]byte(out), &overview) != nil || len(overview.Stores) != 1 ||
		overview.Stores[0].Cuts != before || overview.Stores[0].Unrestorable != rounds-before {
		t.Errorf("with %s missing, want the %d cuts before it restorable and the %d others not: %s", gap, before, rounds-before, out)
	}
	t.Logf("with %s missing, %d of %d cuts still restorable", gap, before, rounds)
	if _, code, target := restore(); code != exitError {
		t.Errorf("restore across a gap: exit %d, want %d", code, exitError)
	} else if entries, _ := os.ReadDir(target); len(entries) > 0 {
		t.Errorf("a restore refused for a gap wrote into %s (%s)", target, entries[0].Name())
	}
}

// postgresWALPush: a PostgreSQL whose archive_command is the built
// `stillpoint wal-push`. Round 0 makes the repository's archive
// unwritable until PostgreSQL has seen wal-push fail (after storing the
// chunks, before the file's index), then writable again; the others kill
// a running wal-push with SIGKILL. PostgreSQL keeps each segment and
// retries it until wal-push succeeds.
func postgresWALPush(t *testing.T, c cli, repoDir string) archiving {
	command := fmt.Sprintf("%s %s wal-push --store pg %%f %%p", c.bin, strings.Join(c.args, " "))
	pg := testenv.StartPITRPostgresArchiving(t, command)
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxIdleConns(0) // each query connects anew (see awaitArchiver)
	failures := func() int64 {
		var n int64
		if err := db.QueryRow("SELECT failed_count FROM pg_stat_archiver").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	logDir := filepath.Join(repoDir, "logs", "pg")
	// An archiver whose archive_command was killed exits (FATAL), and the
	// postmaster starts a new one at least 10 s later, when its loop next
	// wakes: on a server that opens no connection, up to a minute later.
	// awaitArchiver awaits cond, connecting anew now and then to wake it.
	awaitArchiver := func(what string, cond func() bool) {
		poked := time.Now()
		testenv.Await(t, what, func() bool {
			if cond() {
				return true
			}
			if time.Since(poked) > 200*time.Millisecond {
				failures()
				poked = time.Now()
			}
			return false
		})
	}
	killed := 0
	return archiving{
		store: pitrStore{name: "pg", dsn: pg.DSN, target: func(t *testing.T) (string, int, string) {
			dir, port := testenv.PITRPostgresTarget(t)
			return dir, port, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		}},
		disrupt: func(t *testing.T, round int) string {
			if round == 0 {
				before := failures()
				if err := os.Chmod(logDir, 0o500); err != nil {
					t.Fatal(err)
				}
				testenv.Await(t, "wal-push to fail on the unwritable repository", func() bool { return failures() > before })
				if err := os.Chmod(logDir, 0o700); err != nil {
					t.Fatal(err)
				}
				return fmt.Sprintf("the repository was unwritable: %d failed archive_command runs", failures()-before)
			}
			var seg string // PostgreSQL archives one segment at a time
			awaitArchiver("a wal-push to kill", func() bool {
				for _, pid := range processes(func(cmdline []string, _ int) bool {
					if len(cmdline) < 3 || cmdline[0] != c.bin || !slices.Contains(cmdline, "wal-push") {
						return false
					}
					seg = cmdline[len(cmdline)-2] // %f
					return true
				}) {
					if syscall.Kill(pid, syscall.SIGKILL) == nil {
						killed++
						return true
					}
				}
				return false
			})
			// PostgreSQL retries the segment once its archiver restarts.
			awaitArchiver("PostgreSQL to archive "+seg+" again", func() bool {
				_, err := os.Stat(filepath.Join(logDir, seg))
				return err == nil
			})
			return fmt.Sprintf("wal-push of %s killed with SIGKILL (%d so far), then archived by PostgreSQL's retry", seg, killed)
		},
		// The segment holding the last mark, then one more (a restore
		// point between them makes the second switch one).
		finish: func(t *testing.T, _ int) {
			var seg string
			for _, q := range []string{"SELECT pg_walfile_name(pg_switch_wal())", "SELECT pg_walfile_name(pg_create_restore_point('after'))", "SELECT pg_walfile_name(pg_switch_wal())"} {
				if err := db.QueryRow(q).Scan(&seg); err != nil {
					t.Fatal(err)
				}
			}
			awaitArchiver("PostgreSQL to archive "+seg+" through wal-push", func() bool {
				_, err := os.Stat(filepath.Join(logDir, seg))
				return err == nil
			})
			t.Logf("archived up to %s; %d archive_command runs failed in all", seg, failures())
		},
		fileOf: func(t *testing.T, p pitr.Position) string {
			var seg string
			if err := db.QueryRow("SELECT pg_walfile_name($1::pg_lsn)", p.LSN).Scan(&seg); err != nil {
				t.Fatal(err)
			}
			return seg
		},
		// PostgreSQL recycles its segments: the archive is checked by the
		// restore, which replays it.
		sameAsServer: func(*testing.T) {},
	}
}

// mariadbArchiver: `stillpoint archive` started, and killed with SIGKILL
// while it copies a binlog (or just after it stored one), each round;
// the next one resumes from what the archive holds.
func mariadbArchiver(t *testing.T, c cli, repoDir string) archiving {
	s := mariadbStore(t)
	db, err := sql.Open("mysql", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var dataDir string
	if err := db.QueryRow("SELECT @@datadir").Scan(&dataDir); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(repoDir, "logs", "maria")
	archived := func() int { return len(archivedLogs(logDir)) }
	// The archiver's temporary files (its credentials, a binlog being
	// copied), which one killed cannot remove: the next start does.
	tmp := t.TempDir()
	start := func() *exec.Cmd {
		archiver := exec.Command(c.bin, append(c.args, "archive")...)
		archiver.Env = append(os.Environ(), "TMPDIR="+tmp)
		archiver.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := archiver.Start(); err != nil {
			t.Fatal(err)
		}
		return archiver
	}
	midCopy := 0
	return archiving{
		store: s,
		disrupt: func(t *testing.T, round int) string {
			before := archived()
			archiver := start()
			copying := false
			testenv.Await(t, "the archiver to copy a binlog", func() bool {
				copying = len(processes(func(cmdline []string, ppid int) bool {
					return ppid == archiver.Process.Pid && len(cmdline) > 0 && filepath.Base(cmdline[0]) == "mariadb-binlog"
				})) > 0
				return copying || archived() > before
			})
			// The group: mariadb-binlog dies with it, as under a supervisor
			// that kills the unit.
			syscall.Kill(-archiver.Process.Pid, syscall.SIGKILL)
			archiver.Wait()
			if copying {
				midCopy++
				return fmt.Sprintf("the archiver killed with SIGKILL while it copied a binlog (%d so far)", midCopy)
			}
			return "the archiver killed with SIGKILL after it stored a binlog"
		},
		// Every closed binlog, and one after the last cut's.
		finish: func(t *testing.T, cuts int) {
			if _, err := db.Exec("FLUSH BINARY LOGS"); err != nil {
				t.Fatal(err)
			}
			archiver := start()
			testenv.Await(t, fmt.Sprintf("the archiver to make %d cuts restorable", cuts), func() bool {
				out, _ := c.run("--json", "cut", "list")
				var o struct {
					Stores []pitr.Reach `json:"stores"`
				}
				return json.Unmarshal([]byte(out), &o) == nil && len(o.Stores) == 1 && o.Stores[0].Cuts == cuts &&
					slices.Equal(archivedLogs(logDir), testenv.ClosedBinlogs(t, db))
			})
			archiver.Process.Signal(syscall.SIGINT)
			if archiver.Wait(); archiver.ProcessState.ExitCode() != exitInterrupted {
				t.Errorf("archive after SIGINT: exit %d, want %d", archiver.ProcessState.ExitCode(), exitInterrupted)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("the archivers killed and the last one left %d temporary files, e.g. %s", len(left), left[0].Name())
			}
		},
		fileOf: func(_ *testing.T, p pitr.Position) string { return p.File },
		sameAsServer: func(t *testing.T) {
			// Every binlog the server closed is archived, with its content.
			closed := testenv.ClosedBinlogs(t, db)
			if got := archivedLogs(logDir); !slices.Equal(got, closed) {
				t.Errorf("archived %v, the server closed %v", got, closed)
			}
			for _, name := range closed {
				fetched := filepath.Join(t.TempDir(), name)
				if out, code := c.run("wal-fetch", "--store", "maria", name, fetched); code != 0 {
					t.Errorf("binlog %s is not archived: exit %d %s", name, code, out)
					continue
				}
				got, _ := os.ReadFile(fetched)
				want, err := os.ReadFile(filepath.Join(dataDir, name))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("archived %s (%d bytes) differs from the server's (%d bytes, %v)", name, len(got), len(want), err)
				}
			}
		},
	}
}

// archivedLogs lists the binlogs or WAL segments archived in logDir (a
// store's logs/ in a repository directory), in log order.
func archivedLogs(logDir string) []string {
	entries, _ := os.ReadDir(logDir)
	var names []string
	for _, e := range entries {
		n, binlog := strings.CutPrefix(e.Name(), "mysql-bin.")
		if strings.Trim(n, "0123456789ABCDEF") == "" && (binlog || len(n) == 24) {
			names = append(names, e.Name())
		}
	}
	slices.SortFunc(names, pitr.CompareLogNames)
	return names
}

// ok runs the command and fails the test unless it exits 0.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	out, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("stillpoint %v: exit %d %s", args, code, out)
	}
	return out
}

// processes returns the ids of the processes whose command line and
// parent match.
func processes(match func(cmdline []string, ppid int) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err1 := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		stat, err2 := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err1 != nil || err2 != nil {
			continue // gone meanwhile
		}
		// stat: pid (comm) state ppid ...; comm may hold spaces.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		if match(strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), ppid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
