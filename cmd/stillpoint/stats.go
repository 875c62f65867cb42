package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/backup"
)

func newStatsCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Sizes of the repository's backups: logical, stored, saved by deduplication and compression, per store and per backup",
		Long: `Sizes every backup from the manifests and the chunk listing, reading no chunk:
logical bytes (the table data of every backup, as if each were stored whole),
stored bytes (the chunks, deduplicated and compressed) and their ratio; per
store; per backup, what it added when it was taken and what deleting it now
would free (chunks no other backup uses). It writes nothing.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := rf.existing(ctx, g)
			if err != nil {
				return err
			}
			st, err := backup.Stats(ctx, r)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), st, func(w io.Writer) {
				fmt.Fprintf(w, "%d backups: %s of table data stored in %s (%d chunks), %.1fx smaller\n",
					st.Backups, humanBytes(st.LogicalBytes), humanBytes(st.StoredBytes), st.Chunks, st.SavingRatio)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "STORE\tLOGICAL\tSTORED")
				for _, s := range st.PerStore {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Store, humanBytes(s.LogicalBytes), humanBytes(s.StoredBytes))
				}
				fmt.Fprintln(tw, "\t\t")
				fmt.Fprintln(tw, "BACKUP\tMODE\tLOGICAL\tSTORED\tADDED\tDELETE FREES")
				for _, b := range st.PerBackup {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Mode, humanBytes(b.LogicalBytes), humanBytes(b.StoredBytes), humanBytes(b.AddedBytes), humanBytes(b.UniqueBytes))
				}
				tw.Flush()
			})
		},
	}
	rf.add(cmd)
	return cmd
}
