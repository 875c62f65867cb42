package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// buildCLI compiles the stillpoint command into the test's temp dir.
func buildCLI(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "stillpoint")
	if b, err := exec.Command("go", "build", "-o", out, "../../cmd/stillpoint").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	return out
}

// writeConfig writes cfg as the YAML file the CLI reads.
func writeConfig(t *testing.T, cfg *config.Config) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("stores:\n")
	for name, s := range cfg.Stores {
		fmt.Fprintf(&b, "  %s: {engine: %s, dsn: %q}\n", name, s.Engine, s.DSN)
	}
	b.WriteString("namespaces:\n")
	for ns, s := range cfg.Namespaces {
		fmt.Fprintf(&b, "  %s: %s\n", ns, s)
	}
	fmt.Fprintf(&b, "coordinator: %s\n", cfg.Coordinator)
	p := filepath.Join(t.TempDir(), "stillpoint.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// dropMariaNamespaces removes the MariaDB namespaces of cfg in any state a
// killed restore can leave (tables without metadata included), so the next
// trial starts from nothing.
func dropMariaNamespaces(t *testing.T, cfg *config.Config) {
	ctx := context.Background()
	st := multistorage.New(cfg)
	defer st.Close()
	for ns, store := range cfg.Namespaces {
		if cfg.Stores[store].Engine != "mysql" {
			continue
		}
		_, d, err := restore.Stores(st).Destination(ctx, ns)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		db := d.(*sqlstore.Store).DB()
		for _, q := range []string{"DROP DATABASE IF EXISTS `" + ns + "`",
			"DELETE FROM scalardb.metadata WHERE full_table_name LIKE '" + ns + ".%'"} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Errorf("cleanup: %s: %v", q, err)
			}
		}
	}
}

// killOutcome is what a restore run did.
type killOutcome struct {
	killed bool
	code   int
	stdout string
	stderr string
}

// runCLI runs the command, killing it with SIGKILL after killAfter
// (never, if 0).
func runCLI(t *testing.T, bin string, killAfter time.Duration, args ...string) killOutcome {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if killAfter > 0 {
		// The kill moment is the experiment's variable, not an event awaited.
		timer := time.AfterFunc(killAfter, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	o := killOutcome{stdout: out.String(), stderr: errb.String()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		o.killed = true
	} else if err != nil {
		o.code = cmd.ProcessState.ExitCode()
	}
	return o
}

// TestCampaignRestoreKill: restores into PostgreSQL+MariaDB of a backup
// taken under load, SIGKILLed at a random moment of the time a clean one
// takes (and a fifth more),
// each run again: every resume finishes, each result is a clean restore's
// row for row, and no run says "restored" over stores that are not.
func TestCampaignRestoreKill(t *testing.T) {
	trials := testenv.Trials(t, 3, 200)
	bin := buildCLI(t)
	nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
	src := newBank(t, testenv.Embedded(t), nss, 4000)
	man := src.backupUnderLoad(t)
	repoDir := src.repoDir

	var want map[string][]string
	// The clean restore runs as the trials do, and its length sets their
	// kill window: restores got faster, and a fixed window let most of
	// them finish before the kill.
	var took time.Duration
	t.Run("clean", func(t *testing.T) {
		cfg := testenv.Mixed(t, nss...)
		t.Cleanup(func() { dropMariaNamespaces(t, cfg) })
		start := time.Now()
		if o := runCLI(t, bin, 0, "--config", writeConfig(t, cfg), "restore", man.ID, "--repo", repoDir); o.code != 0 {
			t.Fatalf("clean restore: exit %d: %s", o.code, o.stderr)
		}
		took = time.Since(start)
		st := multistorage.New(cfg)
		defer st.Close()
		want = dump(t, st, man)
	})
	if want == nil {
		t.Fatal("no clean restore to compare with")
	}
	counts := map[string]int{}
	for i := range trials {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			cfg := testenv.Mixed(t, nss...)
			t.Cleanup(func() { dropMariaNamespaces(t, cfg) })
			path := writeConfig(t, cfg)
			args := []string{"--config", path, "restore", man.ID, "--repo", repoDir}
			killAfter := time.Duration(1 + rand.Int64N(int64(took)*6/5))
			first := runCLI(t, bin, killAfter, args...)
			claimed := strings.Contains(first.stdout, "restored backup")
			switch {
			case !first.killed && first.code != 0:
				t.Fatalf("restore (not killed) exit %d: %s", first.code, first.stderr)
			case !first.killed:
				counts["finished before the kill"]++
			case claimed:
				counts["killed after saying restored"]++
			default:
				counts["killed, journal "+journalState(t, cfg)]++
				again := runCLI(t, bin, 0, args...)
				switch {
				case again.code == 0 && strings.Contains(again.stdout, "restored backup"):
					claimed = true
				case strings.Contains(again.stderr, "already holds data"):
					// Killed after the journal was removed: nothing says a
					// restore happened; the rerun must not write over it.
					counts["killed after the journal was removed (rerun refused)"]++
				default:
					t.Fatalf("restore killed after %v, run again: exit %d\nstdout: %s\nstderr: %s", killAfter, again.code, again.stdout, again.stderr)
				}
			}
			st := multistorage.New(cfg)
			defer st.Close()
			if diff := sameDump(dump(t, st, man), want); diff != "" {
				t.Fatalf("restore killed after %v (claimed restored: %v): differs from a clean restore: %s", killAfter, claimed, diff)
			}
			checkNoJournal(t, st)
		})
	}
	t.Logf("%d trials, killed within %v of starting: %v", trials, took*6/5, counts)
}

// journalState names the journal's state in cfg's stores: where a kill
// landed.
func journalState(t *testing.T, cfg *config.Config) string {
	st := multistorage.New(cfg)
	defer st.Close()
	s, err := restore.JournalState(context.Background(), st)
	if err != nil {
		t.Fatalf("read the journal: %v", err)
	}
	if s == "" {
		return "absent"
	}
	return s
}

// TestCampaignRestoreFresh: restores of one backup taken under load into
// fresh PostgreSQL databases and fresh SQLite directories never fail, and
// each is settled and equal to the first.
func TestCampaignRestoreFresh(t *testing.T) {
	nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
	src := newBank(t, testenv.Embedded(t), nss, 200)
	man := src.backupUnderLoad(t)
	var want map[string][]string
	targets := []struct {
		name   string
		trials int
		cfg    func(t *testing.T) *config.Config
	}{
		{"postgres", testenv.Trials(t, 3, 100), func(t *testing.T) *config.Config { return postgresOnly(t, nss...) }},
		{"sqlite", testenv.Trials(t, 2, 20), func(t *testing.T) *config.Config { return testenv.Embedded(t) }},
	}
	for _, tt := range targets {
		failures := 0
		for i := range tt.trials {
			ok := t.Run(fmt.Sprintf("%s/%d", tt.name, i), func(t *testing.T) {
				st := multistorage.New(tt.cfg(t))
				defer st.Close()
				if _, err := restore.Run(context.Background(), src.repo, man, restore.Stores(st), restore.Options{}); err != nil {
					t.Fatalf("restore into a fresh %s target: %v", tt.name, err)
				}
				checkSettled(t, st, src.setup)
				got := dump(t, st, man)
				if want == nil {
					want = got
				} else if diff := sameDump(got, want); diff != "" {
					t.Fatalf("differs from the first restore: %s", diff)
				}
			})
			if !ok {
				failures++
			}
		}
		t.Logf("%s: %d restores into fresh targets, %d failures", tt.name, tt.trials, failures)
	}
}
