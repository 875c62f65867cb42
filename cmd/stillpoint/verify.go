package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/verify"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var (
		repair       bool
		lifetime     time.Duration
		wait         time.Duration
		fenceTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the stores hold a transactionally consistent state (read-only unless --repair)",
		Long: `Reads every transactional table at one consistent cut (the coordinator
write fence a backup takes, held while the snapshots open), so a live system
is judged exactly. Every COMMITTED record must have a COMMITTED coordinator
row, and where a bank exists both bank invariants must hold on the state
lazy recovery would make. Records left PREPARED or DELETED are reported:
those of transactions that may still run (younger than --lifetime) are
counted as in flight; the others are listed as unsettled. Data verify
cannot read (NULLs, wrong types, incomplete metadata) is reported as a
violation naming the table and key.

verify writes nothing unless --repair: then lazy recovery first settles
pending records (rolled forward when the coordinator says COMMITTED, back
when ABORTED, aborted when undecided and older than --lifetime), waiting up
to --wait for young undecided ones to expire.
Exit code 3 names each violation or unsettled record; 0 means consistent.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.storage()
			if err != nil {
				return err
			}
			defer st.Close()
			if lifetime == 0 { // no writer is alive (after a restore): settle everything now
				lifetime = -1
			}
			m := txn.NewManager(st, txn.Options{Lifetime: lifetime})
			if wait < 0 {
				wait = max(lifetime, 0) + time.Second
			}
			rep, err := verify.Run(cmd.Context(), st, m, verify.Options{Repair: repair, Wait: wait, FenceTimeout: fenceTimeout})
			if errors.Is(err, verify.ErrUnfinishedRestore) {
				return violationError{err}
			}
			if err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), rep, func(w io.Writer) { printVerify(w, rep) }); err != nil {
				return err
			}
			if !rep.OK() {
				return violationError{fmt.Errorf("verification failed: %d violations, %d unsettled records", len(rep.Violations), len(rep.Pending))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&repair, "repair", false, "settle PREPARED and DELETED records by lazy recovery before checking (writes to the stores)")
	durationAtLeast(f, &lifetime, "lifetime", txn.DefaultLifetime, 0, "transaction lifetime: pending records older than this belong to no live transaction; --repair aborts undecided ones (0: all of them, as after a restore, when no writer is alive)")
	// -1: not given; the default depends on --lifetime, so help says it in words.
	durationAtLeast(f, &wait, "wait", -1, 0, "with --repair, how long to wait for undecided records to expire (default: the lifetime plus 1s)").DefValue = ""
	durationPositive(f, &fenceTimeout, "fence-timeout", verify.DefaultFenceTimeout, "how long to wait for the coordinator fence that fixes the cut")
	// Scripts written when verify recovered by default keep working.
	f.Bool("no-recover", false, "")
	_ = f.MarkDeprecated("no-recover", "verify is read-only unless --repair")
	return cmd
}

func printVerify(w io.Writer, r *verify.Report) {
	fmt.Fprintf(w, "checked %d records in %d transactional tables at one cut\n", r.Records, r.Tables)
	if r.InFlight > 0 {
		fmt.Fprintf(w, "in flight: %d records of transactions that may still be running\n", r.InFlight)
	}
	if r.CommittedWithoutDecision > 0 {
		fmt.Fprintf(w, "committed without a coordinator row: %d records (one-phase commit; see docs/recovery-compat.md)\n", r.CommittedWithoutDecision)
	}
	if s := r.Recovered; s != nil {
		fmt.Fprintf(w, "repaired: %d records rolled forward, %d rolled back\n", s.RolledForward, s.RolledBack)
	}
	for _, p := range r.Pending {
		fmt.Fprintf(w, "UNSETTLED %s\n", p)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(w, "VIOLATION %s\n", v)
	}
	for ns, iv := range r.Bank {
		if iv.OK() {
			fmt.Fprintf(w, "bank %s: invariants hold (total %d; tx_version sum %d with %d committed transfers)\n", ns, iv.Total, iv.VersionSum, iv.CommittedTransfers)
		}
	}
	if r.OK() {
		fmt.Fprintln(w, "consistent")
	}
}
