package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/restore"
)

func newRestoreCmd(g *globals) *cobra.Command {
	var (
		rf                repoFlags
		force             bool
		allowInconsistent bool
		parallel          int
		pf                pitrFlags
	)
	cmd := &cobra.Command{
		Use:   "restore ID|latest",
		Short: "Restore a backup into the stores of --config/--data-dir",
		Long: `Recreates the schema and metadata of every table of the backup in the stores
the target configuration maps their namespaces to (which may be other engines
than the source's), and loads the tables in parallel with each engine's fast
path (COPY on PostgreSQL, multi-row INSERTs in large transactions elsewhere).
Then it finishes the cut: records left PREPARED or DELETED by transactions in
flight at the cut are rolled forward or back by the restored coordinator
table (no writer of the restored stores exists yet, so nothing is waited for).
Only then does it report the restore done.

Before anything is created, the backup is checked whole (every chunk) and
against the target engines (key lengths). Targets that hold data are refused
unless --force. Progress is journaled in the stillpoint namespace of the
coordinator's store: a restore that was interrupted at any moment finishes
when run again, and until then verify refuses the stores. The journal is
removed once the restore is complete.

Point-in-time recovery (--to-cut, --to-time, --to-latest; docs/pitr.md): each
PostgreSQL and MariaDB store of the cut is rebuilt from its newest base backup
consistent before the cut into the empty --target directory, its archived log
replayed exactly to the cut's mark, and its server started on the target port;
then the cut is finished by lazy recovery through the stores --config names
(the restored servers). A missing base or a gap in the archive is reported
before anything is written.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if ok, err := pf.set(); err != nil {
				return err
			} else if ok {
				return exactArgs(0)(cmd, args)
			}
			return exactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ok, _ := pf.set(); ok {
				return restoreToCut(cmd, g, &rf, &pf)
			}
			st, err := g.storageCreating()
			if err != nil {
				return err
			}
			defer st.Close()
			r, err := rf.open(ctx, st.Config(), repoExisting)
			if err != nil {
				return err
			}
			id, err := backup.Resolve(ctx, r, args[0])
			if err != nil {
				return err
			}
			m, err := backup.Load(ctx, r, id)
			if err != nil {
				return err
			}
			if m.Mode == backup.Independent && !allowInconsistent {
				return usageError{fmt.Errorf("backup %s is independent: its stores were copied one after another with no cut, so it may hold half-applied transactions; restore a fence or pause backup (latest picks one), or pass --allow-inconsistent to restore this one anyway", m.ID)}
			}
			opts := restore.Options{Force: force, Parallel: parallel, LimitMemory: true}
			if bar := g.newProgress(m.Rows, "restoring", "rows"); bar != nil {
				opts.Progress = func(n int64) { bar.Add64(n) }
				defer bar.Finish()
			}
			res, err := restore.Run(ctx, r, m, restore.Stores(st), opts)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "restored backup %s: %d tables, %d rows", res.Backup, res.Tables, res.Rows)
				switch {
				case res.AlreadyComplete:
					fmt.Fprint(w, " (an earlier run had completed it; its journal is now removed)")
				case res.Resumed > 0:
					fmt.Fprintf(w, " (%d tables were already restored by an earlier run)", res.Resumed)
				}
				fmt.Fprintf(w, "\ntables created: %d with the source's DDL, %d by the type mapping into another engine, %d from metadata (docs/ddl.md)",
					res.DDL.Replayed, res.DDL.Mapped, res.DDL.FromMetadata)
				fmt.Fprintf(w, "\ncut finished: %d records rolled forward, %d rolled back\n", res.Recovery.RolledForward, res.Recovery.RolledBack)
				// Only the flags that name the stores: verify takes no --repo.
				fmt.Fprintf(w, "check (read-only): %s\n", nextCommand(cmd.Root(), "verify"))
			})
		},
	}
	rf.add(cmd)
	pf.add(cmd)
	cmd.Flags().BoolVar(&allowInconsistent, "allow-inconsistent", false, "restore an independent backup, which has no cut and may hold half-applied transactions")
	cmd.Flags().BoolVar(&force, "force", false, "replace tables that hold data or are half made, or another backup's unfinished restore")
	intAtLeast(cmd.Flags(), &parallel, "parallel", 4, 1, "tables loaded at once")
	return cmd
}
