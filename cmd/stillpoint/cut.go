package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
)

func newCutCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cut",
		Short: "Mark and list cuts: points every store can be restored to by point-in-time recovery",
	}
	cmd.AddCommand(newCutCreateCmd(g), newCutListCmd(g))
	return cmd
}

func newCutCreateCmd(g *globals) *cobra.Command {
	var (
		rf           repoFlags
		opts         pitr.MarkOptions
		every        time.Duration
		fenceTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Record each store's log position at one transactionally consistent cut",
		Long: `Takes the coordinator's write fence (commit decisions wait, nothing else does)
and, while it holds, records each PostgreSQL and MariaDB store's log position
(a named restore point; the binlog file, offset and GTID), then records the cut
in the repository. A restore to the cut replays each store's archived log
exactly to its mark (docs/pitr.md).

With --every, it marks a cut each period until interrupted (exit 130); a failed
cut is logged and the next period tries again. A cut takes no repository lock:
cuts go on while a backup runs.

SQLite stores have no point-in-time recovery: a cut over them is refused
unless --allow-logical-only (they are then named in the cut and restored from
logical backups); the coordinator's store must have it.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, r, err := g.storesAndRepo(ctx, &rf)
			if err != nil {
				return err
			}
			defer st.Close()
			opts.FenceTimeout = fenceTimeout
			mark := func() (*pitr.Cut, error) {
				c, err := pitr.CreateCut(ctx, r, st, opts)
				if err == nil {
					closeCutLogs(ctx, st, c)
				}
				return c, err
			}
			if every == 0 {
				c, err := mark()
				if err != nil {
					return err
				}
				return g.print(cmd.OutOrStdout(), c, func(w io.Writer) { printCut(w, c) })
			}
			if opts.Name != "" {
				return usageError{fmt.Errorf("--name names one cut; with --every each cut is named by its id")}
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				if c, err := mark(); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					slog.Error("cut failed; trying again next period", "error", err, "every", every)
				} else if err := g.print(cmd.OutOrStdout(), c, func(w io.Writer) { printCut(w, c) }); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-t.C:
				}
			}
		},
	}
	rf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", "", "name the cut (letters, digits, '-', '_', '.'), to restore it by name; a name serves one cut for the repository's life, even once the cut is forgotten")
	f.BoolVar(&opts.AllowLogicalOnly, "allow-logical-only", false, "mark the cut although some stores (SQLite) have no point-in-time recovery; they are named in it")
	durationAtLeast(f, &every, "every", 0, 0, "mark a cut every period (e.g. 1m) until interrupted")
	durationPositive(f, &fenceTimeout, "fence-timeout", 5*time.Second, "give up if the fence is not granted within this")
	durationPositive(f, &opts.MaxHold, "fence-max-hold", cut.DefaultMaxHold, "hold the fence (which blocks every commit) at most this long while the marks are recorded")
	return cmd
}

// closeCutLogs closes the log files holding a cut's marks (after the
// fence), so the archiver stores them now. A failure leaves the cut
// recorded, restorable once the file rotates: it is logged, not fatal.
func closeCutLogs(ctx context.Context, st *multistorage.Storage, c *pitr.Cut) {
	cfg := st.Config()
	for store := range c.Positions {
		closeLog, ok := closeLogs[cfg.Stores[store].Engine]
		if !ok {
			continue
		}
		s, err := st.Store(ctx, store)
		if err == nil {
			err = closeLog(ctx, s)
		}
		if err != nil {
			slog.Warn("cut: could not close the log file holding the mark; the cut is restorable once it rotates and is archived", "store", store, "cut", c.ID, "error", err)
		}
	}
}

// storesAndRepo opens the configured stores and the existing repository.
func (g *globals) storesAndRepo(ctx context.Context, rf *repoFlags) (*multistorage.Storage, *repo.Repository, error) {
	st, err := g.storage()
	if err != nil {
		return nil, nil, err
	}
	r, err := rf.open(ctx, st.Config(), repoExisting)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, r, nil
}

func printCut(w io.Writer, c *pitr.Cut) {
	name := ""
	if c.Name != "" {
		name = " (" + c.Name + ")"
	}
	fmt.Fprintf(w, "cut %s%s at %s: fence held %v\n", c.ID, name, c.Taken.Format(time.RFC3339), c.FenceHold)
	for _, store := range slices.Sorted(maps.Keys(c.Positions)) {
		fmt.Fprintf(w, "  %s: %s\n", store, c.Positions[store])
	}
	if len(c.LogicalOnly) > 0 {
		fmt.Fprintf(w, "  logical backups only: %s\n", strings.Join(c.LogicalOnly, ", "))
	}
}

// pitrOverview is what point-in-time recovery can restore: the cuts, the
// bases, and per store the range of cuts it reaches.
type pitrOverview struct {
	Cuts    []*pitr.Cut  `json:"cuts"`
	Bases   []*pitr.Base `json:"bases"`
	Stores  []pitr.Reach `json:"stores"`
	Damaged []string     `json:"damaged,omitempty"`
}

func loadOverview(ctx context.Context, r *repo.Repository) (*pitrOverview, error) {
	cuts, dc, err := pitr.Cuts(ctx, r)
	if err != nil {
		return nil, err
	}
	bases, db, err := pitr.Bases(ctx, r)
	if err != nil {
		return nil, err
	}
	reach, err := pitr.Reaches(ctx, r, cuts, bases)
	if err != nil {
		return nil, err
	}
	o := &pitrOverview{Cuts: cuts, Bases: bases, Stores: reach}
	for _, d := range append(dc, db...) {
		o.Damaged = append(o.Damaged, d.Kind+" "+d.ID+": "+d.Err.Error())
	}
	if o.Cuts == nil {
		o.Cuts = []*pitr.Cut{}
	}
	if o.Bases == nil {
		o.Bases = []*pitr.Base{}
	}
	return o, nil
}

// print writes the overview's text.
func (o *pitrOverview) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BASE\tSTORE\tTAKEN\tBYTES\tREPLAY FROM")
	for _, b := range o.Bases {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.ID, b.Store, b.Taken.Format(time.RFC3339), humanBytes(b.Bytes), b.Info.Start)
	}
	fmt.Fprintln(tw, "CUT\tNAME\tTAKEN\tSTORES\tFENCE HOLD")
	for _, c := range o.Cuts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\n", c.ID, c.Name, c.Taken.Format(time.RFC3339), len(c.Positions), c.FenceHold)
	}
	tw.Flush()
	for _, s := range o.Stores {
		if s.Cuts == 0 {
			fmt.Fprintf(w, "store %s: restorable to no cut (%s)\n", s.Store, s.Problem)
			continue
		}
		fmt.Fprintf(w, "store %s: restorable to any cut from %s to %s (%d cuts", s.Store, s.From, s.To, s.Cuts)
		if s.Unrestorable > 0 {
			fmt.Fprintf(w, "; %d not: %s", s.Unrestorable, s.Problem)
		}
		fmt.Fprintln(w, ")")
	}
	for _, d := range o.Damaged {
		fmt.Fprintln(w, "DAMAGED", d)
	}
}

func (o *pitrOverview) damagedError() error {
	if len(o.Damaged) == 0 {
		return nil
	}
	return violationError{fmt.Errorf("%d damaged PITR record(s): %s", len(o.Damaged), o.Damaged[0])}
}

func newCutListCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the cut marks and base backups, and per store the range of cuts it can be restored to",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := rf.existing(ctx, g)
			if err != nil {
				return err
			}
			o, err := loadOverview(ctx, r)
			if err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), o, o.print); err != nil {
				return err
			}
			return o.damagedError()
		},
	}
	rf.add(cmd)
	return cmd
}
