package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/pitr"
)

func newBaseCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "base",
		Short: "Take physical base backups, from which point-in-time recovery replays",
	}
	cmd.AddCommand(newBaseCreateCmd(g))
	return cmd
}

func newBaseCreateCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Stream a physical base backup of every PostgreSQL and MariaDB store into the repository",
		Long: `Takes a physical base backup of each store's server (pg_basebackup,
mariadb-backup), streamed into the repository (deduplicated, compressed,
checksummed; encrypted with a key) and recorded last: a base that failed is
never listed. It holds the repository lock, as a backup does. A base serves
the cuts marked after it is consistent; the log archive must hold every log
file from its start on. SQLite stores are skipped (logical backups cover them).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := g.storage()
			if err != nil {
				return err
			}
			defer st.Close()
			r, lk, err := rf.locked(ctx, g, "base create")
			if err != nil {
				return err
			}
			defer lk.Unlock()
			bases, err := pitr.CreateBases(ctx, r, lk, st)
			if perr := g.print(cmd.OutOrStdout(), bases, func(w io.Writer) {
				for _, b := range bases {
					fmt.Fprintf(w, "base %s of store %s: %s (%s new), replay from %s\n", b.ID, b.Store, humanBytes(b.Bytes), humanBytes(b.NewBytes), b.Info.Start)
				}
			}); perr != nil && err == nil {
				err = perr
			}
			return err
		},
	}
	rf.add(cmd)
	rf.addRetryLock(cmd)
	return cmd
}
