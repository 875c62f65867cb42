package postgres

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/stillpoint/stillpoint/internal/pitr"
)

// spoolDir is the directory inside the restored data directory that holds
// the WAL replay needs, copied out of the archive before the server
// starts; restore_command copies from it. It is removed once the server
// has promoted.
const spoolDir = "stillpoint-wal"

// Restore unpacks the base into target.DataDir, spools the WAL from the
// base's start to the mark, and configures recovery to stop exactly at
// the mark's LSN and promote; with target.Start it starts the server and
// waits until it has promoted.
func (Engine) Restore(ctx context.Context, base io.Reader, info pitr.BaseInfo, logs pitr.Logs, to pitr.Position, target pitr.Target) error {
	if info.Format != "tar" {
		return fmt.Errorf("restore: the base is in format %q; PostgreSQL bases are tar", info.Format)
	}
	if target.Start && target.Port == 0 {
		// It would listen on the base's port, the original server's.
		return errors.New("restore: starting the restored server needs a port of its own (the base's is the original server's)")
	}
	if to.Engine != "postgres" || to.LSN == "" {
		return fmt.Errorf("restore: the cut records no PostgreSQL LSN for this store (%s)", to)
	}
	major := versionMajor(info.Version)
	bin, err := binDir(major, "pg_ctl")
	if err != nil {
		return fmt.Errorf("restore: the base is of PostgreSQL %s, which only the same major version can run: %w", info.Version, err)
	}
	stop, err := parseLSN(to.LSN)
	if err != nil {
		return fmt.Errorf("restore: the cut's position: %w", err)
	}
	end, err := parseLSN(info.End.LSN)
	if err != nil {
		return fmt.Errorf("restore: the base's end: %w", err)
	}
	if stop < end || to.Timeline < info.Start.Timeline {
		return fmt.Errorf("restore: the cut at %s precedes the end of the base backup (%s), from which the base is consistent: restore it from an older base", to, info.End)
	}
	a, err := readArchive(ctx, logs)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := a.check(ctx, "", info.Start, to.Timeline, stop/a.segSize); err != nil {
		return fmt.Errorf("restore: the WAL from the base to the cut is incomplete, nothing was restored: %w", err)
	}
	owner, err := targetOwner(target.DataDir)
	if err != nil {
		return err
	}
	began := time.Now()
	if err := untar(base, target.DataDir); err != nil {
		return fmt.Errorf("restore: unpacking the base into %s: %w", target.DataDir, err)
	}
	slog.Info("restore: base unpacked", "data_dir", target.DataDir, "took", time.Since(began))
	began = time.Now()
	if err := spool(ctx, a, info.Start, to, filepath.Join(target.DataDir, spoolDir)); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	slog.Info("restore: WAL to the mark fetched", "data_dir", target.DataDir, "took", time.Since(began))
	if err := configure(target, to); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := owner.chownAll(target.DataDir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if !target.Start {
		return nil
	}
	began = time.Now()
	if err := start(ctx, bin, target.DataDir, owner); err != nil {
		return err
	}
	slog.Info("restore: replayed to the mark and started", "data_dir", target.DataDir, "took", time.Since(began))
	return nil
}

// owner is who the restored server runs as: the caller, or under root the
// owner of the target directory (PostgreSQL refuses to run as root).
type owner struct {
	root     bool
	uid, gid int
}

func targetOwner(dir string) (owner, error) {
	if dir == "" {
		return owner{}, errors.New("restore: no target data directory")
	}
	if strings.ContainsAny(dir, `'"\`) {
		return owner{}, fmt.Errorf("restore: the target data directory %q has a quote or backslash, which restore_command cannot carry: choose another path", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return owner{}, fmt.Errorf("restore: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return owner{}, fmt.Errorf("restore: %w", err)
	}
	if len(entries) > 0 {
		return owner{}, fmt.Errorf("restore: the target data directory %s is not empty; restore into an empty one (nothing in it was touched)", dir)
	}
	if os.Geteuid() != 0 {
		return owner{}, nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return owner{}, fmt.Errorf("restore: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid == 0 {
		return owner{}, fmt.Errorf("restore: running as root, the restored server runs as the owner of %s, which is root: PostgreSQL refuses to run as root; chown it to the server's user (e.g. postgres)", dir)
	}
	return owner{root: true, uid: int(st.Uid), gid: int(st.Gid)}, nil
}

func (o owner) chownAll(dir string) error {
	if !o.root {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, o.uid, o.gid)
	})
}

func (o owner) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	if o.root {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.gid)}}
	}
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// untar writes pg_basebackup's tar of the data directory into dir,
// refusing entries that would land outside it.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("the base holds %q, outside the data directory", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o700)
		case tar.TypeReg:
			err = writeFile(p, tr, os.FileMode(h.Mode).Perm())
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		default:
			err = fmt.Errorf("entry %q has tar type %q, which a PostgreSQL base does not hold", h.Name, h.Typeflag)
		}
		if err != nil {
			return err
		}
	}
	// -X none leaves pg_wal empty or absent; the server needs it, and
	// refuses a data directory others may read.
	if err := os.MkdirAll(filepath.Join(dir, "pg_wal", "archive_status"), 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// spool copies from the archive the files replay from the base's start
// to the mark reads: the history files of the timelines on its path and
// its segments, with the one after the mark's (replay reads the record
// after the mark to stop before it) when the archive has it.
func spool(ctx context.Context, a *archive, from, to pitr.Position, dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	stop, _ := parseLSN(to.LSN)
	spans, err := a.path(ctx, "", from, to.Timeline, stop/a.segSize)
	if err != nil {
		return err
	}
	var names []string
	for i, s := range spans {
		if a.history[s.tli] {
			names = append(names, historyName(s.tli))
		}
		if i == len(spans)-1 && a.held(s.tli, s.last+1) {
			s.last++
		}
		for n := s.first; n <= s.last && s.first <= s.last; n++ {
			names = append(names, segmentName(s.tli, n, a.segSize))
		}
	}
	for _, n := range names {
		if err := Fetch(ctx, a.logs, n, filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// configure appends the recovery settings to postgresql.auto.conf (later
// lines win) and creates recovery.signal. Archiving is switched off: a
// restored server must not push its new timeline into the archive of the
// server it was copied from.
func configure(target pitr.Target, to pitr.Position) error {
	dir := target.DataDir
	// A base of a server configured outside its data directory (Debian's
	// /etc/postgresql) lacks these; the restored server needs them.
	defaults := map[string]string{
		"postgresql.conf": "# Written by stillpoint restore: the base had none.\n",
		"pg_hba.conf":     "# Written by stillpoint restore: the base had none.\nlocal all all peer\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n",
		"pg_ident.conf":   "",
	}
	for name, text := range defaults {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
				return err
			}
		}
	}
	conf := fmt.Sprintf(`
# Written by stillpoint restore: replay to cut mark %q at %s, then promote.
restore_command = 'cp "%s/%%f" "%%p"'
recovery_target_lsn = '%s'
recovery_target_inclusive = off
recovery_target_timeline = '%d'
recovery_target_action = 'promote'
archive_mode = off
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
`, to.RestorePoint, to, filepath.Join(dir, spoolDir), to.LSN, to.Timeline)
	if target.Port > 0 {
		conf += fmt.Sprintf("port = %d\n", target.Port)
	}
	f, err := os.OpenFile(filepath.Join(dir, "postgresql.auto.conf"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "recovery.signal"), nil, 0o600)
}

// start starts the server and waits until recovery has ended and it has
// promoted: pg_control then says "in production" (read with
// pg_controldata, which needs no login to the restored server). A server
// that stops instead (the mark's WAL missing, a corrupt segment) is an
// error carrying its log.
func start(ctx context.Context, bin, dir string, o owner) error {
	logFile := filepath.Join(dir, "log", "stillpoint-restore.log")
	if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
		return err
	}
	if err := o.chownAll(filepath.Dir(logFile)); err != nil {
		return err
	}
	fail := func(what string, err error) error {
		text, _ := os.ReadFile(logFile)
		return fmt.Errorf("restore: %s: %v; the server's log %s ends:\n%s", what, err, logFile, lastLines(string(text), 20))
	}
	promoted := false
	defer func() {
		if !promoted {
			// Interrupted or failed, the restore leaves no server running:
			// one still replaying would go on to promote and look finished.
			stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = o.command(stopCtx, filepath.Join(bin, "pg_ctl"), "-D", dir, "-m", "immediate", "-w", "stop").Run()
		}
	}()
	if out, err := o.command(ctx, filepath.Join(bin, "pg_ctl"), "-D", dir, "-l", logFile, "-w", "-t", "86400", "start").CombinedOutput(); err != nil {
		return fail("the restored server did not start, or stopped before reaching the cut", fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out))))
	}
	afterStart()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("restore: interrupted while the server replayed, which was stopped: %w", err)
		}
		out, err := o.command(ctx, filepath.Join(bin, "pg_controldata"), "-D", dir).Output()
		if err != nil {
			return fail("reading the restored server's pg_control", err)
		}
		if inProduction.Match(out) {
			break
		}
		if err := o.command(ctx, filepath.Join(bin, "pg_ctl"), "-D", dir, "status").Run(); err != nil {
			return fail("the restored server stopped before reaching the cut", err)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	promoted = true
	return os.RemoveAll(filepath.Join(dir, spoolDir))
}

// afterStart is a test hook: it runs once the server has started, before
// its promotion is awaited.
var afterStart = func() {}

var inProduction = regexp.MustCompile(`(?m)^Database cluster state:\s+in production$`)

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
