package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/verify"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var binary string

// build compiles the command once per test binary.
func build(t *testing.T) string {
	t.Helper()
	if binary != "" {
		return binary
	}
	out := filepath.Join(os.TempDir(), fmt.Sprintf("stillpoint-e2e-%d", os.Getpid()))
	cmd := exec.Command("go", "build", "-o", out, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	binary = out
	return out
}

type cli struct {
	t    *testing.T
	bin  string
	args []string // global flags: --config or --data-dir
}

func (c cli) run(args ...string) (stdout string, code int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, append(c.args, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run %v: %v", args, err)
	}
	if code != 0 {
		c.t.Logf("stillpoint %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.String(), code
}

// coordinatorRows counts the commit decisions in the stores the CLI's
// global flags name.
func (c cli) coordinatorRows() int {
	c.t.Helper()
	st := multistorage.New(loadConfig(c.t, c))
	defer st.Close()
	recs, err := st.ScanAll(context.Background(), storage.ScanAll{Namespace: schema.CoordinatorNamespace, Table: schema.CoordinatorTable})
	if errors.Is(err, storage.ErrTableNotFound) {
		return 0
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return len(recs)
}

// setups are the store layouts of the bank tests: the embedded default,
// and accounts on PostgreSQL and MariaDB with the coordinator on PostgreSQL.
func setups(t *testing.T) map[string]func(t *testing.T) (cli, string) {
	return map[string]func(t *testing.T) (cli, string){
		"sqlite": func(t *testing.T) (cli, string) {
			return cli{t: t, bin: build(t), args: []string{"--data-dir", t.TempDir()}}, "bank_0,bank_1"
		},
		"postgres+mariadb": func(t *testing.T) (cli, string) {
			a, b := testenv.UniqueName("bank_pg"), testenv.UniqueName("bank_maria")
			cfg := testenv.Mixed(t, a, b)
			path := filepath.Join(t.TempDir(), "stillpoint.yaml")
			yaml := fmt.Sprintf("stores:\n  pg: {engine: postgres, dsn: %q}\n  maria: {engine: mariadb, dsn: %q}\nnamespaces:\n  %s: pg\n  %s: maria\ncoordinator: pg\n",
				cfg.Stores["pg"].DSN, cfg.Stores["maria"].DSN, a, b)
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			return cli{t: t, bin: build(t), args: []string{"--config", path}}, a + "," + b
		},
	}
}

func TestBankKeepsInvariants(t *testing.T) {
	for name, setup := range setups(t) {
		t.Run(name, func(t *testing.T) {
			c, nss := setup(t)
			out, code := c.run("--json", "workload", "bank", "--namespaces", nss, "--accounts", "50", "--concurrency", "8", "--duration", "30s")
			if code != 0 {
				t.Fatalf("workload exit %d: %s", code, out)
			}
			var rep bankReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("workload --json: %v\n%s", err, out)
			}
			t.Logf("%s: %d committed, %d aborted, %d unknown, %.0f/s, p99 %v", name, rep.Stats.Committed, rep.Stats.Aborted, rep.Stats.Unknown, rep.Stats.Throughput, rep.Stats.P99)
			if rep.Stats.Committed < 100 || rep.Stats.Failed != 0 {
				t.Fatalf("workload did too little or failed: %+v", rep.Stats)
			}
			if rep.Invariants == nil || !rep.Invariants.OK() {
				t.Fatalf("invariants after the run: %+v", rep.Invariants)
			}
			checkVerify(t, c)
		})
	}
}

func TestBankSurvivesSIGKILL(t *testing.T) {
	for name, setup := range setups(t) {
		t.Run(name, func(t *testing.T) {
			c, nss := setup(t)
			if out, code := c.run("workload", "bank", "--namespaces", nss, "--accounts", "50", "--count", "1"); code != 0 {
				t.Fatalf("create bank: %s", out)
			}
			cmd := exec.Command(c.bin, append(c.args, "workload", "bank", "--namespaces", nss, "--concurrency", "8", "--duration", "5m")...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Kill it once transfers are committing, so some are caught mid-commit.
			testenv.Await(t, "the workload to commit transfers", func() bool { return c.coordinatorRows() >= 200 })
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if out, code := c.run("verify"); code == 0 && strings.Contains(out, "consistent") {
				t.Logf("no transfer was caught mid-commit this time")
			}
			checkVerify(t, c)
		})
	}
}

func checkVerify(t *testing.T, c cli) {
	t.Helper()
	out, code := c.run("--json", "verify", "--repair")
	var rep verify.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	if code != 0 || !rep.OK() {
		t.Fatalf("verify exit %d: %s", code, out)
	}
	if len(rep.Bank) != 1 {
		t.Fatalf("verify found %d banks, want 1", len(rep.Bank))
	}
	for ns, iv := range rep.Bank {
		if !iv.OK() || iv.CommittedTransfers == 0 {
			t.Fatalf("bank %s: %+v", ns, iv)
		}
		t.Logf("verify: recovered %v; bank %s total %d, %d committed transfers", rep.Recovered, ns, iv.Total, iv.CommittedTransfers)
	}
}
