package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
)

// globals are the flags every command shares.
type globals struct {
	configFile string
	dataDir    string
	json       bool
	verbose    int
	logFormat  string
	progress   bool
	cpuProfile string
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

Exit codes: 0 success, 1 failure, 2 bad usage (unknown command, bad flag or
value, missing argument, a backup id that names no single backup), 3 a check
found a violation, 130 interrupted (SIGINT or SIGTERM; the command stops
cleanly: locks released, nothing half-recorded).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			h, err := logHandler(cmd.ErrOrStderr(), g.verbose, g.logFormat)
			if err != nil {
				return err
			}
			slog.SetDefault(slog.New(h))
			return startCPUProfile(g.cpuProfile)
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.configFile, "config", "", "YAML config file naming the stores (default: $STILLPOINT_CONFIG, else the embedded SQLite default)")
	pf.StringVar(&g.dataDir, "data-dir", "", "directory of the embedded SQLite stores (default ./stillpoint-data)")
	pf.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	pf.CountVarP(&g.verbose, "verbose", "v", "log to stderr: -v what the command does (the cut, each table), -vv details too")
	pf.StringVar(&g.logFormat, "log-format", "text", "log line format: text or json (one JSON object per line)")
	pf.BoolVar(&g.progress, "progress", false, "show progress bars on stderr even when it is not a terminal (never with --json)")
	pf.StringVar(&g.cpuProfile, "cpu-profile", "", "write a CPU profile of the command to this file (for `go tool pprof`), to see where a slow backup or restore spends its time")
	root.AddCommand(newSchemaCmd(g), newConfigCmd(g), newWorkloadCmd(g), newVerifyCmd(g), newServerCmd(g), newBackupCmd(g), newRestoreCmd(g), newDemoCmd(g), newAdminCmd(g), newInitCmd(g), newVersionCmd(g), newCheckCmd(g), newStatsCmd(g), newDiffCmd(g),
		newCutCmd(g), newBaseCmd(g), newForgetCmd(g), newWALPushCmd(g), newWALFetchCmd(g), newArchiveCmd(g))
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every command that only groups others
// fail with a usage error (exit 2) on a word that names none of them, where
// cobra would print help and succeed; given no word at all, a group fails
// too, naming its subcommands, and the root prints its help and succeeds.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.SuggestionsMinimumDistance = 2
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			if !cmd.HasParent() {
				return cmd.Help()
			}
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			return usageError{fmt.Errorf("%s: missing subcommand: one of %s (see %s --help)", cmd.CommandPath(), strings.Join(names, ", "), cmd.CommandPath())}
		}
		err := fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			err = fmt.Errorf("%w: did you mean %s?", err, strings.Join(s, " or "))
		}
		return usageError{fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())}
	}
}

// stopCPUProfile ends the profile --cpu-profile started, if any; main calls
// it once the command has returned, whether or not it failed.
var stopCPUProfile = func() {}

func startCPUProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return usageError{fmt.Errorf("--cpu-profile: %w", err)}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("--cpu-profile: %w", err)
	}
	stopCPUProfile = func() {
		pprof.StopCPUProfile()
		f.Close()
		stopCPUProfile = func() {}
	}
	return nil
}

// logHandler logs warnings, with -v also info and with -vv debug lines,
// to w in the format asked for.
func logHandler(w io.Writer, verbose int, format string) (slog.Handler, error) {
	level := slog.LevelWarn
	switch {
	case verbose >= 2:
		level = slog.LevelDebug
	case verbose == 1:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, usageError{fmt.Errorf("--log-format %q: use text or json", format)}
}

// storage loads the configuration and routes to its stores, which must
// exist: a mistyped --data-dir or SQLite path is an error, never a new,
// empty store that a check would then call consistent.
func (g *globals) storage() (*multistorage.Storage, error) {
	cfg, err := config.Load(g.configFile, g.dataDir)
	if err != nil {
		return nil, err
	}
	if cfg.Embedded {
		if fi, err := os.Stat(cfg.DataDir); err != nil || !fi.IsDir() {
			return nil, usageError{fmt.Errorf("data directory %s does not exist: check --data-dir (stores are created by schema load, workload bank and restore)", cfg.DataDir)}
		}
	}
	return multistorage.New(cfg).OnlyExisting(), nil
}

// storageCreating is storage for the commands that create stores (schema
// load, workload bank, restore): an embedded store's file, and its
// directory, are created when missing, but not the directory's parent.
func (g *globals) storageCreating() (*multistorage.Storage, error) {
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

// exactArgs is cobra.ExactArgs reporting a usage error that says what the
// command takes (the words after its name in Use).
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		want := strings.Join(strings.Fields(cmd.Use)[1:], " ")
		if n == 0 {
			return usageError{fmt.Errorf("%s takes no arguments, not %q (see %s --help)", cmd.CommandPath(), strings.Join(args, " "), cmd.CommandPath())}
		}
		return usageError{fmt.Errorf("%s takes %s, got %d arguments (see %s --help)", cmd.CommandPath(), want, len(args), cmd.CommandPath())}
	}
}
