package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/pitr/postgres"
)

// storeFlag names the store whose log a command archives.
func storeFlag(cmd *cobra.Command, store *string) {
	cmd.Flags().StringVar(store, "store", "", "the store (as the configuration names it) whose log this is (required)")
}

// storeLogs opens the repository and the log archive of a configured
// store: a mistyped --store in archive_command must fail, never archive
// under a name no restore looks at.
func storeLogs(cmd *cobra.Command, g *globals, rf *repoFlags, store string) (pitr.Logs, error) {
	if store == "" {
		return nil, usageError{fmt.Errorf("%s needs --store: the store whose log this is (see %s --help)", cmd.CommandPath(), cmd.CommandPath())}
	}
	st, r, err := g.storesAndRepo(cmd.Context(), rf)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	names, err := st.StoreNames()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(names, store) {
		return nil, usageError{fmt.Errorf("--store %q: no such store in the configuration (stores: %s)", store, strings.Join(names, ", "))}
	}
	return pitr.NewLogs(r, store), nil
}

// quiet is the text output of wal-push and wal-fetch on success: nothing,
// since PostgreSQL writes what they print into its log, a line per WAL
// file (-v logs each file; --json still prints its document).
func quiet(io.Writer) {}

func newWALPushCmd(g *globals) *cobra.Command {
	var rf repoFlags
	var store string
	cmd := &cobra.Command{
		Use:   "wal-push NAME PATH",
		Short: "Archive one WAL file into the repository (PostgreSQL's archive_command)",
		Long: `Stores the file at PATH in the store's log archive under NAME, verbatim
(segments, .partial segments, .history and .backup files), for PostgreSQL's
archive_command:

  archive_command = 'stillpoint --config /etc/stillpoint.yaml wal-push --store pg %f %p'

It exits 0 only once the file is stored (so PostgreSQL keeps the segment and
retries until then: none is lost while the repository is unreachable), and also
when the same content is already archived; other content under the same name
is refused (exit 1). It takes no repository lock, and on success prints
nothing (PostgreSQL logs what it prints; -v logs the file).`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			logs, err := storeLogs(cmd, g, &rf, store)
			if err != nil {
				return err
			}
			if err := postgres.Push(cmd.Context(), logs, args[0], args[1]); err != nil {
				return err
			}
			slog.Info("wal-push: archived", "store", store, "file", args[0])
			return g.print(cmd.OutOrStdout(), map[string]string{"store": store, "archived": args[0]}, quiet)
		},
	}
	rf.add(cmd)
	storeFlag(cmd, &store)
	return cmd
}

func newWALFetchCmd(g *globals) *cobra.Command {
	var rf repoFlags
	var store string
	cmd := &cobra.Command{
		Use:   "wal-fetch NAME PATH",
		Short: "Fetch one archived WAL file into PATH (PostgreSQL's restore_command)",
		Long: `Writes the archived file NAME of the store to PATH, checked against its
SHA-256, for PostgreSQL's restore_command:

  restore_command = 'stillpoint --config /etc/stillpoint.yaml wal-fetch --store pg %f %p'

A file the archive does not hold exits 1 with one short line (PostgreSQL asks
for files that may not exist, such as the next timeline's history file, and
takes the failure as "not there"); PATH appears only whole. On success it
prints nothing (-v logs the file).`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			logs, err := storeLogs(cmd, g, &rf, store)
			if err != nil {
				return err
			}
			err = postgres.Fetch(cmd.Context(), logs, args[0], args[1])
			if errors.Is(err, pitr.ErrMissing) {
				// Routine (PostgreSQL asks for timeline history files that
				// never existed): one short line in the server's log.
				return fmt.Errorf("wal-fetch: %s is not in store %s's archive", args[0], store)
			}
			if err != nil {
				return err
			}
			slog.Info("wal-fetch: fetched", "store", store, "file", args[0])
			return g.print(cmd.OutOrStdout(), map[string]string{"store": store, "fetched": args[0]}, quiet)
		},
	}
	rf.add(cmd)
	storeFlag(cmd, &store)
	return cmd
}

func newArchiveCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Archive the binlogs of every MariaDB store continuously, until interrupted",
		Long: `Runs until interrupted (exit 130), storing every completed log file of each
store whose engine pulls its log (MariaDB: binlogs streamed from the server)
into the repository. Restarted, it resumes after the newest archived file.
PostgreSQL pushes its WAL itself (stillpoint wal-push as archive_command).
It takes no repository lock.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, r, err := g.storesAndRepo(ctx, &rf)
			if err != nil {
				return err
			}
			defer st.Close()
			// One store's archiver failing stops them all (exit 1): a
			// supervisor restarts the command, which resumes.
			cfg := st.Config()
			eg, ectx := errgroup.WithContext(ctx)
			running := 0
			for _, name := range cfg.StoreNames() {
				archive, ok := archivers[cfg.Stores[name].Engine]
				if !ok {
					continue
				}
				running++
				slog.Info("archive: archiving", "store", name)
				eg.Go(func() error {
					err := archive(ectx, cfg.Stores[name], pitr.NewLogs(r, name))
					if gap := (*pitr.GapError)(nil); errors.As(err, &gap) {
						gap.Store = name // the engine names the server
						return err
					}
					if err != nil {
						return fmt.Errorf("store %s: %w", name, err)
					}
					return nil
				})
			}
			if running == 0 {
				return errors.New("no store's log is pulled by an archiver (MariaDB stores with point-in-time recovery): PostgreSQL archives through wal-push")
			}
			if err := eg.Wait(); err != nil {
				return err
			}
			return ctx.Err()
		},
	}
	rf.add(cmd)
	return cmd
}
