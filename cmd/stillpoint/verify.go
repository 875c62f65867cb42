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
		noRecover bool
		lifetime  time.Duration
		wait      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the stores hold a transactionally consistent state, recovering pending records",
		Long: `Reads every transactional table. Records left PREPARED or DELETED are settled
by lazy recovery (unless --no-recover): rolled forward when the coordinator
says COMMITTED, back when it says ABORTED, and aborted when they have no
decision and are older than --lifetime. Then every COMMITTED record must have
a COMMITTED coordinator row, and where a bank exists both bank invariants
must hold. Exit code 3 names each violation; 0 means consistent.`,
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
				wait = lifetime + time.Second
			}
			rep, err := verify.Run(cmd.Context(), st, m, verify.Options{NoRecover: noRecover, Wait: wait})
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
	f.BoolVar(&noRecover, "no-recover", false, "only report pending records; change nothing")
	f.DurationVar(&lifetime, "lifetime", txn.DefaultLifetime, "transaction lifetime: undecided records older than this are aborted (0: all of them, as after a restore, when no writer is alive)")
	f.DurationVar(&wait, "wait", -1, "how long to wait for undecided records to expire (default: the lifetime plus 1s)")
	return cmd
}

func printVerify(w io.Writer, r *verify.Report) {
	fmt.Fprintf(w, "checked %d records in %d transactional tables\n", r.Records, r.Tables)
	for action, n := range r.Recovered {
		fmt.Fprintf(w, "recovered: %d records (%s)\n", n, action)
	}
	for _, p := range r.Pending {
		fmt.Fprintf(w, "UNSETTLED %s %s tx %s: %s\n", p.Table, p.Key, p.TxID, p.Detail)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(w, "VIOLATION %s %s tx %s: %s\n", v.Table, v.Key, v.TxID, v.Detail)
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
