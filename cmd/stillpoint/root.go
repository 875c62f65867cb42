package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
)

// globals are the flags every command shares.
type globals struct {
	configFile string
	dataDir    string
	json       bool
	verbose    bool
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "stillpoint",
		Short: "Transactions across databases, and backups that restore to a consistent cut",
		Long: `Stillpoint runs ACID transactions across SQLite, PostgreSQL and MariaDB/MySQL
(ScalarDB's Consensus Commit, with ScalarDB's on-disk layout), and backs all the
stores up together at one transactionally consistent cut.

With no --config, every namespace is an SQLite database under --data-dir.
Environment: STILLPOINT_CONFIG, STILLPOINT_DATA_DIR, STILLPOINT_STORE_<NAME>_DSN
(and _ENGINE, _PATH), STILLPOINT_NAMESPACE_<NS>=<store>, STILLPOINT_COORDINATOR,
STILLPOINT_REPOSITORY, STILLPOINT_REPOSITORY_KEY_FILE, STILLPOINT_REPO_KEY (the
repository key itself), STILLPOINT_TOKEN (servers' token). Secrets are never printed.

Exit codes: 0 success, 1 failure, 2 bad usage, 3 a check found a violation.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelWarn
			if g.verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.configFile, "config", "", "YAML config file naming the stores (default: $STILLPOINT_CONFIG, else the embedded SQLite default)")
	pf.StringVar(&g.dataDir, "data-dir", "", "directory of the embedded SQLite stores (default ./stillpoint-data)")
	pf.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "log progress and details to stderr")
	root.AddCommand(newSchemaCmd(g), newConfigCmd(g), newWorkloadCmd(g), newVerifyCmd(g), newServerCmd(g), newBackupCmd(g), newRestoreCmd(g), newDemoCmd(g), newAdminCmd(g))
	return root
}

// storage loads the configuration and routes to its stores.
func (g *globals) storage() (*multistorage.Storage, error) {
	cfg, err := config.Load(g.configFile, g.dataDir)
	if err != nil {
		return nil, err
	}
	return multistorage.New(cfg), nil
}

// print writes v as JSON with --json, else calls text.
func (g *globals) print(w io.Writer, v any, text func(io.Writer)) error {
	if g.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(w)
	return nil
}

// exactArgs is cobra.ExactArgs reporting a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{fmt.Errorf("%s: %w", cmd.CommandPath(), err)}
		}
		return nil
	}
}
