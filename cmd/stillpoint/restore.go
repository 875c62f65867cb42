package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/backup"
)

func newRestoreCmd(g *globals) *cobra.Command {
	var (
		rf       repoFlags
		force    bool
		parallel int
	)
	cmd := &cobra.Command{
		Use:   "restore ID",
		Short: "Restore a backup into the stores of --config/--data-dir",
		Long: `Recreates the schema and metadata of every table of the backup in the stores
the target configuration maps their namespaces to (which may be other engines
than the source's), and loads the tables in parallel with each engine's fast
path (COPY on PostgreSQL, multi-row INSERTs in large transactions elsewhere).

Targets that hold data are refused unless --force. Progress is recorded in
stillpoint.restore_state: a restore that was interrupted finishes when run
again, and until it has, verify refuses the stores. After a restore, run
'stillpoint verify --lifetime 0' to complete the cut by lazy recovery.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := g.storage()
			if err != nil {
				return err
			}
			defer st.Close()
			r, err := rf.open(ctx, st.Config(), false)
			if err != nil {
				return err
			}
			m, err := backup.Load(ctx, r, args[0])
			if err != nil {
				return err
			}
			opts := backup.RestoreOptions{Force: force, Parallel: parallel}
			if bar := g.newProgress(m.Rows, "restoring"); bar != nil {
				opts.Progress = func(n int64) { bar.Add64(n) }
				defer bar.Finish()
			}
			res, err := backup.Restore(ctx, r, m, st, opts)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "restored backup %s: %d tables, %d rows", res.Backup, res.Tables, res.Rows)
				if res.Resumed > 0 {
					fmt.Fprintf(w, " (%d tables were already restored by an earlier run)", res.Resumed)
				}
				fmt.Fprintln(w, "\nnext: stillpoint verify --lifetime 0   (completes the cut by lazy recovery)")
			})
		},
	}
	rf.add(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "replace tables that hold data, or another backup's unfinished restore")
	cmd.Flags().IntVar(&parallel, "parallel", 4, "tables loaded at once")
	return cmd
}
