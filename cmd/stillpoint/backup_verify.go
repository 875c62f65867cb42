package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/repo"
)

type backupCheck struct {
	Backup   string   `json:"backup"`
	Chunks   int      `json:"chunks"`
	ReadData bool     `json:"read_data"`
	Problems []string `json:"problems,omitempty"`
	// LogFiles counts the point-in-time recovery archive's files checked;
	// LogProblems are its gaps, unreadable files and damaged cut or base
	// records, each naming the store and the file.
	LogFiles    int      `json:"log_files"`
	LogProblems []string `json:"log_problems,omitempty"`
}

// logArchiveProblems checks the point-in-time recovery archive: a hole a
// cut's replay would meet (as check reports it), a hole after the start
// of a store's newest base (the cuts to come replay from it), a damaged
// cut or base record, and every log file readable (its index and chunks
// present; with readData read back whole against its SHA-256). A hole no
// cut and no cut to come needs (after an old base, past its cuts) is not
// reported; nor is a log that simply ends before a file (a binlog not
// rotated yet), archived when the server closes it. It returns the files
// checked and the problems, each naming the store and the file.
func logArchiveProblems(ctx context.Context, r *repo.Repository, readData bool) (int, []string, error) {
	o, err := loadOverview(ctx, r)
	if err != nil {
		return 0, nil, err
	}
	problems := o.Damaged
	for _, s := range o.Stores {
		if s.Gap != "" {
			problems = append(problems, s.Gap)
		}
	}
	newest := map[string]*pitr.Base{} // bases are oldest first
	for _, b := range o.Bases {
		newest[b.Store] = b
	}
	for _, store := range slices.Sorted(maps.Keys(newest)) {
		b := newest[store]
		e, err := pitr.EngineFor(b.Engine)
		if err != nil {
			return 0, nil, err
		}
		names, err := r.ListLogs(ctx, store)
		if err != nil {
			return 0, nil, err
		}
		var gap *pitr.GapError
		if err := e.Gaps(ctx, store, pitr.NewLogs(r, store), b.Info.Start); errors.As(err, &gap) {
			if slices.ContainsFunc(names, func(n string) bool { return pitr.CompareLogNames(n, gap.Missing) > 0 }) {
				problems = append(problems, fmt.Sprintf("the cuts to come from base %s: %v", b.ID, err))
			}
		} else if err != nil {
			return 0, nil, err
		}
	}
	stores, err := r.LogStores(ctx)
	if err != nil {
		return 0, nil, err
	}
	files := 0
	for _, store := range stores {
		names, err := r.ListLogs(ctx, store)
		if err != nil {
			return 0, nil, err
		}
		for _, name := range names {
			files++
			if err := r.CheckLog(ctx, store, name, readData); repo.IsObjectProblem(err) {
				problems = append(problems, fmt.Sprintf("store %s: log file %s cannot be read: %v", store, name, err))
			} else if err != nil {
				return 0, nil, err
			}
		}
	}
	return files, problems, nil
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
The point-in-time recovery archive is checked too: a hole in a store's log
archive that a cut's replay would meet, or that the cuts to come from the
store's newest base would, the cut and base records, and every archived log
file (its index and chunks present; read back and checked against its
SHA-256 with --read-data). Exit code 3 names every
missing or damaged object, gap and unreadable log file, with its store.`,
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
			if res.LogFiles, res.LogProblems, err = logArchiveProblems(ctx, r, readData); err != nil {
				return err
			}
			what := "present"
			if readData {
				what = "present and intact"
			}
			if err := g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				for _, p := range res.Problems {
					fmt.Fprintln(w, "DAMAGED", p)
				}
				for _, p := range res.LogProblems {
					fmt.Fprintln(w, "LOG ARCHIVE", p)
				}
				if len(res.Problems) == 0 {
					fmt.Fprintf(w, "backup %s: manifest intact, %d chunks %s\n", m.ID, res.Chunks, what)
				}
				if len(res.LogProblems) == 0 && res.LogFiles > 0 {
					fmt.Fprintf(w, "log archive: %d files %s, no gap\n", res.LogFiles, what)
				}
			}); err != nil {
				return err
			}
			if len(problems) > 0 || len(res.LogProblems) > 0 {
				return violationError{fmt.Errorf("backup %s: %d missing or damaged objects; log archive: %d gaps or unreadable files", m.ID, len(problems), len(res.LogProblems))}
			}
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and check every chunk, not only that it exists")
	return cmd
}
