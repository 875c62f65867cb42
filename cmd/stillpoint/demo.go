package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/verify"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

type demoReport struct {
	Dir        string           `json:"dir"`
	Workload   bank.Stats       `json:"workload"`
	Backup     *backup.Manifest `json:"backup"`
	Restored   string           `json:"restored_into"`
	Restore    *restore.Result  `json:"restore"`
	RestoreDur time.Duration    `json:"restore_ns"`
	Verify     *verify.Report   `json:"verify"`
	// NextSteps are commands to try on what the demo left behind.
	NextSteps []nextStep `json:"next_steps"`
}

type nextStep struct {
	What    string `json:"what"`
	Command string `json:"command"`
}

// demoNextSteps are the commands that go on from the demo's stores and
// repository, with the flags that name them.
func demoNextSteps(dir string, b *backup.Manifest, restored string) []nextStep {
	cmd := func(args ...string) string {
		for i, a := range args {
			args[i] = shellQuote(a)
		}
		return "stillpoint " + strings.Join(args, " ")
	}
	repoDir, source := filepath.Join(dir, "repo"), filepath.Join(dir, "source")
	return []nextStep{
		{"list the backups", cmd("backup", "list", "--repo", repoDir)},
		{"show the one just taken", cmd("backup", "show", b.ID[len(b.ID)-8:], "--repo", repoDir)},
		{"check the restored stores again", cmd("verify", "--data-dir", restored)},
		{"run more transfers on the source", cmd("workload", "bank", "--duration", "10s", "--data-dir", source)},
		{"back it up again (only changes are stored)", cmd("backup", "create", "--repo", repoDir, "--data-dir", source)},
		{"see what changed between the two", cmd("diff", b.ID[len(b.ID)-8:], "latest", "--rows", "--repo", repoDir)},
		{"restore the newest into new stores", cmd("restore", "latest", "--repo", repoDir, "--data-dir", filepath.Join(dir, "restored-latest"))},
	}
}

func newDemoCmd(g *globals) *cobra.Command {
	var (
		dir      string
		duration time.Duration
		accounts int
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "The whole job on the embedded default: transfers, a backup under load, a restore, a verification",
		Long: `Runs the bank workload on SQLite stores (two account databases and a coordinator
database), takes a fence backup while it runs, restores the backup into fresh
stores (the restore finishes the cut by lazy recovery), and verifies them
read-only: nothing may be left undecided, and both bank invariants must hold. Everything goes under --dir: source/, repo/, restored-<id>/.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rep := demoReport{Dir: dir}
			if g.dataDir != "" || g.configFile != "" {
				return usageError{fmt.Errorf("demo makes its own SQLite stores and repository under --dir (now %s); --data-dir and --config do not apply to it", dir)}
			}
			// The demo makes everything it uses, its directory included.
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			src, err := config.Load("", filepath.Join(dir, "source"))
			if err != nil {
				return err
			}
			st := multistorage.New(src)
			defer st.Close()
			m := txn.NewManager(st, txn.Options{})
			setup, err := bank.Load(ctx, st, bank.DefaultNamespaces[0])
			if err != nil {
				return err
			}
			if setup == nil {
				setup = &bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: accounts, InitialBalance: 1000}
				if err := bank.Create(ctx, st, m, *setup, nil); err != nil {
					return err
				}
			}
			be, err := backend.Open(ctx, filepath.Join(dir, "repo"))
			if err != nil {
				return err
			}
			r, _, err := repo.OpenOrInit(ctx, be, nil)
			if err != nil {
				return err
			}
			say := func(format string, a ...any) {
				if !g.json {
					fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", a...)
				}
			}
			say("running bank transfers for %v (8 workers) between %s ...", duration, strings.Join(setup.Namespaces, " and "))
			done := make(chan error, 1)
			go func() {
				var err error
				rep.Workload, err = bank.Run(ctx, bank.Local(m), setup, bank.Workload{Concurrency: 8, Duration: duration})
				done <- err
			}()
			time.Sleep(duration / 3)
			say("taking a fence backup while they run ...")
			rep.Backup, err = backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
			werr := <-done
			if err := errors.Join(err, werr); err != nil {
				return err
			}
			rep.Restored = filepath.Join(dir, "restored-"+rep.Backup.ID)
			say("restoring backup %s into %s ...", rep.Backup.ID, rep.Restored)
			tcfg, err := config.Load("", rep.Restored)
			if err != nil {
				return err
			}
			target := multistorage.New(tcfg)
			defer target.Close()
			start := time.Now()
			if rep.Restore, err = restore.Run(ctx, r, rep.Backup, restore.Stores(target), restore.Options{}); err != nil {
				return err
			}
			rep.RestoreDur = time.Since(start)
			say("verifying the restored stores (read-only) ...")
			rep.Verify, err = verify.Run(ctx, target, txn.NewManager(target, txn.Options{}), verify.Options{})
			if err != nil {
				return err
			}
			rep.NextSteps = demoNextSteps(dir, rep.Backup, rep.Restored)
			if err := g.print(cmd.OutOrStdout(), rep, func(w io.Writer) { printDemo(w, rep) }); err != nil {
				return err
			}
			if !rep.Verify.OK() {
				return violationError{errors.New("the restored stores are not consistent")}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "./stillpoint-demo", "directory for the source stores, the repository and the restores")
	durationPositive(f, &duration, "duration", 6*time.Second, "how long the transfers run")
	intAtLeast(f, &accounts, "accounts", 100, 1, "accounts per namespace")
	return cmd
}

func printDemo(w io.Writer, r demoReport) {
	s, b := r.Workload, r.Backup
	fmt.Fprintln(w, "Stillpoint demo")
	fmt.Fprintf(w, "  workload      %d transfers committed (%.0f/s), %d aborted by conflicts, %d failed\n", s.Committed, s.Throughput, s.Aborted, s.Failed)
	fmt.Fprintf(w, "  backup        %s taken under load: fence held %v; %d rows, %s, %d stores\n", b.ID, b.FenceHold.Round(time.Microsecond), b.Rows, humanBytes(b.Bytes), len(b.Stores))
	fmt.Fprintf(w, "  restore       into %s in %v\n", r.Restored, r.RestoreDur.Round(time.Millisecond))
	rec := r.Restore.Recovery
	fmt.Fprintf(w, "  recovery      %d records in flight at the cut settled by the restore: %d rolled forward, %d rolled back\n", rec.RolledForward+rec.RolledBack, rec.RolledForward, rec.RolledBack)
	for _, iv := range r.Verify.Bank {
		status := "HOLD"
		if !iv.OK() {
			status = "BROKEN: " + strings.Join(iv.Violations, "; ")
		}
		fmt.Fprintf(w, "  invariants    %s: total %d of %d; tx_version sum %d = %d accounts + 2 × %d transfers in the cut\n",
			status, iv.Total, iv.ExpectedTotal, iv.VersionSum, iv.Accounts, iv.CommittedTransfers)
	}
	for _, v := range r.Verify.Violations {
		fmt.Fprintf(w, "  VIOLATION     %s\n", v)
	}
	fmt.Fprintf(w, "\nEverything is under %s. Next, try:\n", r.Dir)
	for _, s := range r.NextSteps {
		fmt.Fprintf(w, "  # %s\n  %s\n", s.What, s.Command)
	}
}
