package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/backup"
)

func newDiffCmd(g *globals) *cobra.Command {
	var (
		rf   repoFlags
		rows bool
	)
	cmd := &cobra.Command{
		Use:   "diff FROM TO",
		Short: "What changed between two backups: tables, rows, bytes",
		Long: `Compares backup TO with backup FROM (ids, unique prefixes or latest), table by
table: added, removed, changed or unchanged, their row counts and sizes, and
the stored size of TO's chunks that FROM did not have. With --rows both copies
of every table present in both are read and rows are compared by primary key:
added, removed and changed (this reads both backups' data and holds one hash
per row of a table in memory). It writes nothing.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := rf.existing(ctx, g)
			if err != nil {
				return err
			}
			var ms [2]*backup.Manifest
			for i, ref := range args {
				id, err := backup.Resolve(ctx, r, ref)
				if err != nil {
					return err
				}
				if ms[i], err = backup.Load(ctx, r, id); err != nil {
					return err
				}
			}
			d, err := backup.Diff(ctx, r, ms[0], ms[1], rows)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), d, func(w io.Writer) {
				fmt.Fprintf(w, "from %s to %s\n", d.From, d.To)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				header := "TABLE\tCHANGE\tROWS\tBYTES\tNEW CHUNKS"
				if rows {
					header += "\tADDED\tREMOVED\tCHANGED"
				}
				fmt.Fprintln(tw, header)
				for _, t := range d.Tables {
					fmt.Fprintf(tw, "%s\t%s\t%d → %d\t%s → %s\t%s", t.Table, t.Change, t.RowsFrom, t.RowsTo, humanBytes(t.BytesFrom), humanBytes(t.BytesTo), humanBytes(t.NewChunkBytes))
					if t.RowsAdded != nil {
						fmt.Fprintf(tw, "\t%d\t%d\t%d", *t.RowsAdded, *t.RowsRemoved, *t.RowsChanged)
					}
					fmt.Fprintln(tw)
				}
				tw.Flush()
			})
		},
	}
	rf.add(cmd)
	cmd.Flags().BoolVar(&rows, "rows", false, "read both backups and count the rows added, removed and changed, by primary key")
	return cmd
}
