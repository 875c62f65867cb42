package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/backup"
)

type backupCheck struct {
	Backup   string   `json:"backup"`
	Chunks   int      `json:"chunks"`
	ReadData bool     `json:"read_data"`
	Problems []string `json:"problems,omitempty"`
}

func newBackupVerifyCmd(g *globals) *cobra.Command {
	var (
		rf       repoFlags
		readData bool
	)
	cmd := &cobra.Command{
		Use:   "verify ID|latest",
		Short: "Check a backup's manifest and that every chunk it needs is there (and intact, with --read-data)",
		Long: `Reads the backup's manifest (whose checksum is verified) and checks that every
chunk it references exists in the repository. With --read-data every chunk is
read, decompressed (and decrypted) and its SHA-256 compared with its name.
Exit code 3 names every missing or damaged object.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, id, err := rf.resolve(ctx, g, args[0])
			if err != nil {
				return err
			}
			m, err := backup.Load(ctx, r, id)
			if err != nil {
				return violationError{err}
			}
			referenced := map[string]bool{}
			m.Referenced(referenced)
			res := backupCheck{Backup: m.ID, Chunks: len(referenced), ReadData: readData}
			var progress func(done, total int)
			if bar := g.newProgress(int64(len(referenced)), "checking chunks", "chunks"); bar != nil {
				progress = func(done, total int) { bar.Set(done) }
				defer bar.Finish()
			}
			problems, err := r.CheckChunks(ctx, referenced, readData, progress)
			if err != nil {
				return err
			}
			for _, p := range problems {
				res.Problems = append(res.Problems, p.Error())
			}
			if err := g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				for _, p := range res.Problems {
					fmt.Fprintln(w, "DAMAGED", p)
				}
				if len(res.Problems) == 0 {
					what := "present"
					if readData {
						what = "present and intact"
					}
					fmt.Fprintf(w, "backup %s: manifest intact, %d chunks %s\n", m.ID, res.Chunks, what)
				}
			}); err != nil {
				return err
			}
			if len(problems) > 0 {
				return violationError{fmt.Errorf("backup %s: %d missing or damaged objects", m.ID, len(problems))}
			}
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and check every chunk, not only that it exists")
	return cmd
}
