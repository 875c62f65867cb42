package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/hint"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

// repoFlags say which repository, and its key; and for commands that
// take its lock, how long to wait for it.
type repoFlags struct {
	url       string
	keyFile   string
	retryLock time.Duration
}

func (f *repoFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "repo", "", "repository: a directory or s3://bucket/prefix?endpoint=host:port (default: repository in the config, or $STILLPOINT_REPOSITORY)")
	cmd.Flags().StringVar(&f.keyFile, "key-file", "", "file holding the repository's encryption key (default: repository_key_file in the config, or the key in $STILLPOINT_REPO_KEY); a new repository is encrypted when a key is given")
}

// repoAccess is what a command may do to a repository location.
type repoAccess int

const (
	repoExisting     repoAccess = iota // open it; a missing one is an error saying how to create it
	repoCreateIfNone                   // open it, or create it there (backup create --init)
	repoCreate                         // create it; an existing one is an error (init)
)

// addRetryLock adds --retry-lock to a command that takes the lock.
func (f *repoFlags) addRetryLock(cmd *cobra.Command) {
	durationAtLeast(cmd.Flags(), &f.retryLock, "retry-lock", 0, 0, "if another process holds the repository's lock, try again for up to this long (e.g. 5m) instead of failing at once")
}

// open opens the repository of --repo (or the config's), as access says.
func (f *repoFlags) open(ctx context.Context, cfg *config.Config, access repoAccess) (*repo.Repository, error) {
	url := f.url
	if url == "" {
		url = cfg.Repository
	}
	if url == "" {
		return nil, usageError{errors.New("no repository: give --repo DIR|s3://... or set repository in the config file")}
	}
	keyFile := f.keyFile
	if keyFile == "" {
		keyFile = cfg.RepositoryKeyFile
	}
	key, err := repo.ResolveKey(keyFile)
	if err != nil {
		return nil, err
	}
	be, err := backend.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	switch access {
	case repoCreate:
		return repo.Init(ctx, be, key)
	case repoCreateIfNone:
		r, _, err := repo.OpenOrInit(ctx, be, key)
		return r, err
	}
	r, err := repo.Open(ctx, be, key)
	if errors.Is(err, repo.ErrNoRepository) {
		// A mistyped --repo must not become a new, empty repository.
		return nil, usageError{hint.Run(fmt.Errorf("%w; if this is the right location, create the repository", err), "init")}
	}
	return r, err
}

// existing opens the repository of an existing backup set.
func (f *repoFlags) existing(ctx context.Context, g *globals) (*repo.Repository, error) {
	cfg, err := config.Load(g.configFile, g.dataDir)
	if err != nil {
		return nil, err
	}
	return f.open(ctx, cfg, repoExisting)
}

func newBackupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Take, list, show and delete transactionally consistent backups of all the stores",
	}
	cmd.AddCommand(newBackupCreateCmd(g), newBackupListCmd(g), newBackupShowCmd(g), newBackupDeleteCmd(g), newBackupPruneCmd(g), newBackupUnlockCmd(g), newBackupVerifyCmd(g))
	return cmd
}

func newBackupCreateCmd(g *globals) *cobra.Command {
	var (
		rf           repoFlags
		mode         string
		fenceTimeout time.Duration
		fenceMaxHold time.Duration
		parallel     int
		servers      adminFlags
		pauseWait    time.Duration
		pauseRenew   time.Duration
		initRepo     bool
		checkProof   bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Back up every store at one transactionally consistent cut",
		Long: `Takes one backup of every store the configuration names, at a cut that no
transaction straddles once lazy recovery has run, and streams every table into
the repository (deduplicated, compressed, checksummed; encrypted with a key).

Modes:
  fence        (default) block commit decisions at the coordinator for the
               moment it takes to open a snapshot in every store; the
               applications never stop. The hold time is recorded. A store
               whose snapshot does not open within --fence-max-hold makes
               the backup release the fence at once and fail, naming it.
  pause        pause every server through rpc.Admin (-a host:port,... or -s), with
               drain; open the snapshots; unpause. Records the paused window,
               only if every server stayed paused through it (as admin pause
               --duration checks it); otherwise the backup fails.
  independent  snapshot each store on its own with no cut, as per-database
               backups do: it exists to show what goes wrong without a cut.

The manifest is written last: a backup that fails is never listed.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			m, err := backup.ParseMode(mode)
			if err != nil {
				return usageError{err}
			}
			st, err := g.storage()
			if err != nil {
				return err
			}
			defer st.Close()
			access := repoExisting
			if initRepo {
				access = repoCreateIfNone
			}
			r, err := rf.open(ctx, st.Config(), access)
			if err != nil {
				return err
			}
			opts := backup.Options{Mode: m, FenceTimeout: fenceTimeout, FenceMaxHold: fenceMaxHold, Parallel: parallel, PauseWait: pauseWait, PauseRenew: pauseRenew, RetryLock: rf.retryLock, LimitMemory: true}
			if m == backup.Pause {
				fleet, err := servers.fleet(cmd)
				if err != nil {
					return err
				}
				defer fleet.Close()
				if checkProof {
					fleet.AllowCheckPausedProof()
				}
				opts.Fleet = fleet
			}
			if bar := g.newProgress(-1, "backing up", "rows"); bar != nil {
				opts.Expect = func(rows int64) {
					if rows > 0 {
						bar.ChangeMax64(rows)
					}
				}
				opts.Progress = func(n int64) {
					// The total is an estimate: never show past 100%.
					if st := bar.State(); st.Max > 0 && st.CurrentNum+n > st.Max {
						bar.ChangeMax64(st.CurrentNum + n)
					}
					bar.Add64(n)
				}
				defer bar.Finish()
			}
			man, err := backup.Create(ctx, st, r, opts)
			if err != nil {
				return fmt.Errorf("backup failed, nothing was recorded: %w", err)
			}
			return g.print(cmd.OutOrStdout(), man, func(w io.Writer) { printManifest(w, man) })
		},
	}
	rf.add(cmd)
	rf.addRetryLock(cmd)
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "fence", "fence, pause or independent")
	f.BoolVar(&initRepo, "init", false, "create the repository first if there is none at --repo (encrypted when a key is given); without it a missing repository is an error")
	durationPositive(f, &fenceTimeout, "fence-timeout", 5*time.Second, "give up (and release everything) if the fence is not granted within this")
	durationPositive(f, &fenceMaxHold, "fence-max-hold", cut.DefaultMaxHold, "hold the fence (which blocks every commit), or in pause mode the paused servers, at most this long while the snapshots open; past it, release them and fail, naming the slow stores")
	intAtLeast(f, &parallel, "parallel", 4, 1, "tables streamed at once")
	f.DurationVar(&pauseWait, "max-pause-wait-time", 0, "pause mode: how long servers wait for in-flight transactions (0: their default; negative: no wait, as ScalarDB's servers take it)")
	f.BoolVar(&checkProof, "allow-check-paused-proof", false, "pause mode: accept servers that report no pause id (ScalarDB Server), whose pause is checked by CheckPaused alone (docs/pause.md)")
	durationAtLeast(f, &pauseRenew, "renew-every", 5*time.Second, 0, "pause mode: renew the servers' pause leases this often while the snapshots open (0: never)")
	servers.add(cmd)
	return cmd
}

func printManifest(w io.Writer, m *backup.Manifest) {
	fmt.Fprintf(w, "backup %s (%s)\n", m.ID, m.Mode)
	fmt.Fprintf(w, "  taken %s, %v\n", m.Started.Format(time.RFC3339), m.Finished.Sub(m.Started).Round(time.Millisecond))
	switch {
	case m.Mode == backup.Fence:
		fmt.Fprintf(w, "  fence held %v (granted after %v) on store %s\n", m.FenceHold, m.FenceWait, m.Coordinator)
	case m.PausedWindow != nil:
		fmt.Fprintf(w, "  servers paused %s to %s (%v): %v\n", m.PausedWindow.Start.Format(time.RFC3339Nano), m.PausedWindow.End.Format(time.RFC3339Nano), m.PausedWindow.End.Sub(m.PausedWindow.Start).Round(time.Microsecond), m.PausedWindow.Targets)
	case m.Mode == backup.Independent:
		fmt.Fprintln(w, "  NO CUT: the stores were copied one after another; this backup may hold half-applied transactions")
	}
	fmt.Fprintf(w, "  %d rows, %s of table data, %s new in the repository\n", m.Rows, humanBytes(m.Bytes), humanBytes(m.NewBytes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STORE\tENGINE\tTABLES\tROWS\tBYTES\tCUT POINT")
	for _, s := range m.Stores {
		fmt.Fprintf(tw, "  %s\t%s %s\t%d\t%d\t%s\t%s\n", s.Name, s.Engine, s.Version, len(s.Tables), s.Rows, humanBytes(s.Bytes), s.CutPoint)
	}
	tw.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// backupSummary is a line of backup list; a damaged backup has only ID
// and Damaged.
type backupSummary struct {
	ID      string      `json:"id"`
	Damaged string      `json:"damaged,omitempty"`
	Mode    backup.Mode `json:"mode,omitempty"`
	// Consistent: the backup has a cut (fence or pause); an independent
	// one may hold half-applied transactions.
	Consistent bool          `json:"consistent"`
	Started    time.Time     `json:"started,omitzero"`
	Rows       int64         `json:"rows,omitempty"`
	Bytes      int64         `json:"bytes,omitempty"`
	FenceHold  time.Duration `json:"fence_hold_ns,omitzero"`
	Stores     int           `json:"stores,omitempty"`
}

func newBackupListCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the complete backups in the repository, and name the damaged ones",
		Long: `Lists the complete backups. A backup whose manifest cannot be read is named
(on stderr, and with "damaged" in --json) and the exit code is 3; the others are
listed all the same.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := rf.existing(ctx, g)
			if err != nil {
				return err
			}
			all, damaged, err := backup.LoadAll(ctx, r)
			if err != nil {
				return err
			}
			list := []backupSummary{}
			for _, m := range all {
				list = append(list, backupSummary{ID: m.ID, Mode: m.Mode, Consistent: m.Mode != backup.Independent, Started: m.Started, Rows: m.Rows, Bytes: m.Bytes, FenceHold: m.FenceHold, Stores: len(m.Stores)})
			}
			var damagedIDs []string
			for _, d := range damaged {
				damagedIDs = append(damagedIDs, d.ID)
				list = append(list, backupSummary{ID: d.ID, Damaged: d.Err.Error()})
				fmt.Fprintf(cmd.ErrOrStderr(), "DAMAGED backup %s: %v\n", d.ID, d.Err)
			}
			if err := g.print(cmd.OutOrStdout(), list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tMODE\tSTARTED\tSTORES\tROWS\tBYTES\tFENCE HOLD")
				for _, b := range list[:len(all)] {
					hold := "-"
					if b.Mode == backup.Fence {
						hold = b.FenceHold.String()
					}
					mode := string(b.Mode)
					if !b.Consistent {
						mode += " (INCONSISTENT: no cut)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", b.ID, mode, b.Started.Format(time.RFC3339), b.Stores, b.Rows, humanBytes(b.Bytes), hold)
				}
				tw.Flush()
				// What point-in-time recovery restores (in JSON: cut list).
				if o, err := loadOverview(ctx, r); err != nil {
					fmt.Fprintln(w, "point-in-time recovery: cannot list:", err)
				} else if len(o.Cuts)+len(o.Bases) > 0 {
					fmt.Fprintln(w)
					o.print(w)
				}
			}); err != nil {
				return err
			}
			return damagedError(damagedIDs)
		},
	}
	rf.add(cmd)
	return cmd
}

func newBackupShowCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "show ID|latest",
		Short: "Show a backup's manifest: stores, tables, cut points, fence hold time",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, id, err := rf.resolve(ctx, g, args[0])
			if err != nil {
				return err
			}
			m, err := backup.Load(ctx, r, id)
			if backup.Unreadable(err) {
				return violationError{hint.Run(fmt.Errorf("%w: deleting it removes it from the catalog", err), "backup", "delete", id)}
			}
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), m, func(w io.Writer) {
				printManifest(w, m)
				for _, s := range m.Stores {
					for _, t := range s.Tables {
						fmt.Fprintf(w, "  %s/%s: %d rows, %s, %d chunks\n", s.Name, t.Metadata.FullName(), t.Rows, humanBytes(t.Bytes), len(t.Chunks))
					}
				}
			})
		},
	}
	rf.add(cmd)
	return cmd
}

// resolve opens the repository of an existing backup set and resolves a
// backup reference in it (an id, a unique prefix, latest).
func (f *repoFlags) resolve(ctx context.Context, g *globals, ref string) (*repo.Repository, string, error) {
	r, err := f.existing(ctx, g)
	if err != nil {
		return nil, "", err
	}
	id, err := backup.Resolve(ctx, r, ref)
	return r, id, err
}

// locked opens the repository of an existing backup set and takes its
// lock for command.
func (f *repoFlags) locked(ctx context.Context, g *globals, command string) (*repo.Repository, *repo.Lock, error) {
	r, err := f.existing(ctx, g)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	lk, err := r.LockWaiting(ctx, fmt.Sprintf("stillpoint %s (%s, pid %d)", command, host, os.Getpid()), f.retryLock)
	return r, lk, err
}

func pruneText(p backup.PruneResult) string {
	if len(p.Blocked) > 0 {
		return fmt.Sprintf("no chunks pruned: damaged backup(s) %s might reference any of them", strings.Join(p.Blocked, ", "))
	}
	return fmt.Sprintf("pruned %d chunks, %s freed", p.Removed, humanBytes(p.Freed))
}

// damagedError is exit 3 naming damaged backups, or nil if there are none.
func damagedError(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return violationError{hint.Run(fmt.Errorf("%d damaged backup(s) in the repository: %s; backup verify ID tells more, backup delete ID removes one",
		len(ids), strings.Join(ids, ", ")), "backup", "verify", ids[0])}
}

func newBackupDeleteCmd(g *globals) *cobra.Command {
	var rf repoFlags
	var doPrune, dryRun bool
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a backup, and (unless --prune=false) the chunks no other backup uses",
		Long: `Deletes a backup (also a damaged one) and then removes the chunks no other
backup references. Everything that can fail is read before the backup is
removed. While another backup is damaged nothing is pruned (it might reference
any chunk): the damaged backups are named and the exit code is 3. If removing
chunks fails after the backup is gone, the output says the backup was deleted
and ` + "`stillpoint backup prune`" + ` finishes the job.

With --dry-run it says what it would delete and free, writing nothing (not
even the lock).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if dryRun {
				r, id, err := rf.resolve(ctx, g, args[0])
				if err != nil {
					return err
				}
				plan, err := backup.PlanDelete(ctx, r, id, doPrune)
				if err != nil {
					return err
				}
				return g.print(cmd.OutOrStdout(), struct {
					DryRun bool `json:"dry_run"`
					backup.DeleteResult
				}{true, plan}, func(w io.Writer) {
					fmt.Fprintf(w, "would delete backup %s", id)
					if plan.WasDamaged {
						fmt.Fprint(w, " (it is damaged)")
					}
					if plan.Prune != nil {
						fmt.Fprintf(w, "; %s", strings.Replace(pruneText(*plan.Prune), "pruned", "would prune", 1))
					}
					fmt.Fprintln(w, "\nnothing was changed (--dry-run)")
				})
			}
			r, lk, err := rf.locked(ctx, g, "backup delete")
			if err != nil {
				return err
			}
			defer lk.Unlock()
			id, err := backup.Resolve(ctx, r, args[0])
			if err != nil {
				return err
			}
			res, err := backup.Delete(ctx, r, lk, id, doPrune)
			var pe *backup.PruneError
			if err != nil && !errors.As(err, &pe) {
				return err
			}
			out := struct {
				backup.DeleteResult
				PruneError string `json:"prune_error,omitempty"`
			}{DeleteResult: res}
			if pe != nil {
				out.PruneError = pe.Error()
			}
			if err := g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "deleted backup %s", id)
				if res.WasDamaged {
					fmt.Fprint(w, " (it was damaged)")
				}
				if res.Prune != nil && pe == nil {
					fmt.Fprintf(w, "; %s", pruneText(*res.Prune))
				}
				fmt.Fprintln(w)
			}); err != nil {
				return err
			}
			if pe != nil {
				return pe
			}
			if res.Prune == nil {
				return nil
			}
			return damagedError(res.Prune.Blocked)
		},
	}
	rf.add(cmd)
	rf.addRetryLock(cmd)
	cmd.Flags().BoolVar(&doPrune, "prune", true, "also remove chunks no remaining backup uses")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be deleted and freed; change nothing")
	return cmd
}

func newBackupPruneCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove the chunks no backup uses (left by failed backups or an interrupted delete)",
		Long: `Removes every chunk no backup references. While any backup is damaged nothing is
removed (it might reference any chunk): the damaged backups are named and the
exit code is 3.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, lk, err := rf.locked(ctx, g, "backup prune")
			if err != nil {
				return err
			}
			defer lk.Unlock()
			res, err := backup.Prune(ctx, r, lk)
			if err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), res, func(w io.Writer) { fmt.Fprintln(w, pruneText(res)) }); err != nil {
				return err
			}
			return damagedError(res.Blocked)
		},
	}
	rf.add(cmd)
	rf.addRetryLock(cmd)
	return cmd
}

func newBackupUnlockCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Remove a stale repository lock left by a process that died",
		Long: `Removes the repository's lock. It refuses while the lock's holder is a running
process on this host (stop it first). A lock from another host is removed: make
sure its process is gone. If it is not, it notices before recording anything and
fails, so no backup is lost, but it did its work for nothing.

A lock whose holder ran on this host and is gone, or that was not refreshed for
30 minutes, is taken over by the next command without this.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := rf.existing(ctx, g)
			if err != nil {
				return err
			}
			info, had, err := r.BreakLock(ctx)
			if err != nil {
				return fmt.Errorf("lock left in place: %w", err)
			}
			if had && info.Nonce != "" && time.Since(info.Refreshed) < repo.LockStaleAfter {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: that lock was refreshed %s ago: if its process still runs on %s, it will fail rather than record anything\n",
					time.Since(info.Refreshed).Round(time.Second), info.Host)
			}
			res := struct {
				Repository string         `json:"repository"`
				Removed    bool           `json:"removed"`
				Lock       *repo.LockInfo `json:"lock,omitempty"`
			}{Repository: r.String(), Removed: had}
			if info.Nonce != "" {
				res.Lock = &info
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				switch {
				case !had:
					fmt.Fprintln(w, "repository", r, "is not locked")
				case res.Lock == nil:
					fmt.Fprintln(w, "removed an unreadable lock from", r)
				default:
					fmt.Fprintf(w, "removed the lock of %s from %s\n", info, r)
				}
			})
		},
	}
	rf.add(cmd)
	return cmd
}
