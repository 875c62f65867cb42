package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/backup"
)

func newCheckCmd(g *globals) *cobra.Command {
	var (
		rf       repoFlags
		readData bool
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the whole repository: every backup's manifest and the chunks each needs (every byte with --read-data), and the log archives' gaps",
		Long: `Reads every backup's manifest (checksummed, and authenticated in an encrypted
repository) and checks that every chunk a backup needs exists; with
--read-data every chunk is read, decompressed, decrypted and compared with its
name, so a backup that passes restores. Base backups are checked likewise, and
a gap in a store's log archive that a cut needs is reported. Chunks no backup uses (left by failed
backups or an interrupted delete) are counted: backup prune removes them.

It writes nothing and takes no lock. Exit code 3 names every damaged backup
and every missing or damaged chunk; backup verify ID checks one backup.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := rf.existing(ctx, g)
			if err != nil {
				return err
			}
			var progress func(done, total int)
			if bar := g.newProgress(-1, "checking chunks", "chunks"); bar != nil {
				progress = func(done, total int) {
					bar.ChangeMax(total)
					bar.Set(done)
				}
				defer bar.Finish()
			}
			res, err := backup.Check(ctx, r, readData, progress)
			if err != nil {
				return err
			}
			// A hole in a log archive that a cut needs is a problem too.
			o, err := loadOverview(ctx, r)
			if err != nil {
				return err
			}
			for _, s := range o.Stores {
				if s.Gap != "" {
					res.Problems = append(res.Problems, s.Gap)
				}
			}
			res.Problems = append(res.Problems, o.Damaged...)
			if err := g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				for _, id := range res.Damaged {
					fmt.Fprintf(w, "DAMAGED backup %s: its manifest cannot be read\n", id)
				}
				for _, p := range res.Problems {
					fmt.Fprintln(w, "DAMAGED", p)
				}
				how := "exist"
				if readData {
					how = "read back intact"
				}
				fmt.Fprintf(w, "%d backups, %d chunks checked (%s)", res.Backups, res.Chunks, how)
				if res.Unreferenced > 0 {
					fmt.Fprintf(w, "; %d chunks (%s) used by no backup, which backup prune removes", res.Unreferenced, humanBytes(res.UnreferencedBytes))
				}
				fmt.Fprintln(w)
				if res.OK() {
					fmt.Fprintln(w, "no problems found")
				}
			}); err != nil {
				return err
			}
			if !res.OK() {
				return violationError{fmt.Errorf("repository %s: %d damaged backups, %d missing or damaged chunks or log archive gaps", r, len(res.Damaged), len(res.Problems))}
			}
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().BoolVar(&readData, "read-data", false, "read every chunk back and check its content, not only that it exists")
	return cmd
}
