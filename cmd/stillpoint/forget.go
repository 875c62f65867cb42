package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/repo"
)

func newForgetCmd(g *globals) *cobra.Command {
	var (
		rf     repoFlags
		p      pitr.Policy
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "forget",
		Short: "Remove the logical backups and cuts a retention policy does not keep, and what only they needed",
		Long: `Applies the policy (restic's semantics) to the logical backups and, on its
own, to the cuts: --keep-last N keeps the N newest, --keep-daily N the newest
of each of the last N days that have one, --keep-weekly N likewise per ISO
week, --keep-within D all taken within D of the newest; the flags add up.
Then it keeps every base backup a kept cut restores from, and every base newer
than the newest kept cut (the cuts to come need it), and the log files from the
oldest kept base's start on; everything else is removed, then the chunks
nothing references are pruned. A kept cut always still restores.

It holds the repository lock. While any backup, base or cut is damaged it
refuses (it might need anything). With --dry-run it says what it would remove,
writing nothing (not even the lock).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if p.Empty() {
				return usageError{fmt.Errorf("no policy: give --keep-last, --keep-daily, --keep-weekly or --keep-within (nothing is removed without one)")}
			}
			if dryRun {
				r, err := rf.existing(ctx, g)
				if err != nil {
					return err
				}
				plan, err := planForget(ctx, r, p)
				if err != nil {
					return err
				}
				return printForget(cmd, g, plan, nil)
			}
			r, lk, err := rf.locked(ctx, g, "forget")
			if err != nil {
				return err
			}
			defer lk.Unlock()
			plan, err := planForget(ctx, r, p)
			if err != nil {
				return err
			}
			if err := pitr.Forget(ctx, r, lk, plan); err != nil {
				return err
			}
			pr, err := backup.Prune(ctx, r, lk)
			if err != nil {
				return err
			}
			if err := printForget(cmd, g, plan, &pr); err != nil {
				return err
			}
			return damagedError(pr.Blocked)
		},
	}
	rf.add(cmd)
	rf.addRetryLock(cmd)
	f := cmd.Flags()
	intAtLeast(f, &p.Last, "keep-last", 0, 0, "keep the N newest")
	intAtLeast(f, &p.Daily, "keep-daily", 0, 0, "keep the newest of each of the last N days that have one")
	intAtLeast(f, &p.Weekly, "keep-weekly", 0, 0, "keep the newest of each of the last N weeks that have one")
	durationAtLeast(f, &p.Within, "keep-within", 0, 0, "keep all taken within this of the newest (e.g. 72h)")
	f.BoolVar(&dryRun, "dry-run", false, "say what would be removed; change nothing")
	return cmd
}

// planForget plans a forget over the logical backups, refusing while one
// is damaged (it might reference any chunk), and the PITR objects.
func planForget(ctx context.Context, r *repo.Repository, p pitr.Policy) (*pitr.ForgetPlan, error) {
	all, damaged, err := backup.LoadAll(ctx, r)
	if err != nil {
		return nil, err
	}
	if len(damaged) > 0 {
		return nil, damagedError([]string{damaged[0].ID})
	}
	backups := make([]pitr.Dated, len(all))
	for i, m := range all {
		backups[i] = pitr.Dated{ID: m.ID, Time: m.Started}
	}
	return pitr.PlanForget(ctx, r, p, backups)
}

func printForget(cmd *cobra.Command, g *globals, plan *pitr.ForgetPlan, pr *backup.PruneResult) error {
	out := struct {
		DryRun bool `json:"dry_run"`
		*pitr.ForgetPlan
		Prune *backup.PruneResult `json:"prune,omitempty"`
	}{pr == nil, plan, pr}
	return g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
		verb := "removed"
		if pr == nil {
			verb = "would remove"
		}
		for _, v := range plan.Objects {
			what := v.Kind + " " + v.ID
			if v.Store != "" {
				what = v.Kind + " " + v.Store + "/" + v.ID
			}
			if v.Keep && v.Kind != "log" {
				fmt.Fprintf(w, "keep   %s (%s)\n", what, strings.Join(v.Reasons, ", "))
			} else if !v.Keep {
				fmt.Fprintf(w, "remove %s\n", what)
			}
		}
		var parts []string
		for _, k := range []string{"backup", "cut", "base", "log"} {
			parts = append(parts, fmt.Sprintf("%d %ss (keeping %d)", plan.Removed[k], k, plan.Kept[k]))
		}
		fmt.Fprintf(w, "%s %s\n", verb, strings.Join(parts, ", "))
		if pr != nil {
			fmt.Fprintln(w, pruneText(*pr))
		} else {
			fmt.Fprintln(w, "nothing was changed (--dry-run)")
		}
	})
}
