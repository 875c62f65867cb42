// Package mariadb is point-in-time recovery for MariaDB/MySQL stores:
// physical base backups with mariadb-backup, binlogs archived whole, cut
// marks at binlog coordinates, and restore by replaying the binlogs from
// the base's position exactly to a mark (docs/pitr-mariadb.md).
package mariadb

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

func init() { pitr.Register("mysql", Engine{}) }

// Engine is pitr.Engine for MariaDB (10.11 tested) and its binlogs.
type Engine struct{}

// Format is how Base lays out its bytes.
const Format = "xbstream"

// IncompleteMarker is in a target data directory from the start of a
// restore until it has finished: a failed restore never looks done.
const IncompleteMarker = "stillpoint-restore.incomplete"

func sqlStore(st storage.Store) (*sqlstore.Store, error) {
	s, ok := st.(*sqlstore.Store)
	if !ok {
		return nil, fmt.Errorf("binlog positions need a MariaDB/MySQL store, not %T", st)
	}
	return s, nil
}

// Mark reads the binlog's end (SHOW MASTER STATUS) while the fence holds.
// The position is exact: the binlog is written in commit order
// (binlog_order_commits), so every transaction before it committed before
// the read and none after; with the fence held no commit decision is made
// in between (DESIGN.md sections 5 and 10). The GTID is read between two
// reads of the position and kept only if the position did not move, so
// it always names the same point; File and Offset are what replay uses,
// and the position returned is the last one read.
func (Engine) Mark(ctx context.Context, st storage.Store, name string) (pitr.Position, error) {
	s, err := sqlStore(st)
	if err != nil {
		return pitr.Position{}, err
	}
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		return pitr.Position{}, fmt.Errorf("store %s: mark %s: %w", s.Name(), name, err)
	}
	defer conn.Close()
	status := func() (pitr.Position, error) {
		rows, err := conn.QueryContext(ctx, "SHOW MASTER STATUS")
		if err != nil {
			return pitr.Position{}, err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return pitr.Position{}, err
			}
			return pitr.Position{}, errors.New("the server has no binary log: start it with log_bin, server_id and binlog_format=ROW")
		}
		// File, Position, then filters whose number varies by version.
		vals := make([]any, len(cols))
		var p pitr.Position
		vals[0], vals[1] = &p.File, &p.Offset
		for i := 2; i < len(vals); i++ {
			vals[i] = new(any)
		}
		p.Engine = "mysql"
		return p, rows.Scan(vals...)
	}
	p, err := status()
	// A few tries: on a store that commits all the time the position may
	// never hold still, and the GTID is then left out rather than wrong.
	for try := 0; try < 3 && err == nil && p.GTID == ""; try++ {
		var gtid string
		if err = conn.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
			break
		}
		var again pitr.Position
		if again, err = status(); err == nil {
			if again == p {
				again.GTID = gtid
			}
			p = again
		}
	}
	if err != nil {
		// MySQL has no @@gtid_binlog_pos (and 8.4 no SHOW MASTER STATUS):
		// asked only once a mark failed, so a mark stays one statement.
		var version string
		if conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version) == nil {
			err = cmp.Or(notMariaDB(version), err)
		}
		return pitr.Position{}, fmt.Errorf("store %s: mark %s: %w", s.Name(), name, err)
	}
	return p, nil
}

// Flush closes the current binlog (FLUSH BINARY LOGS), so the archiver
// copies it now: right after a cut, the cut's file.
func Flush(ctx context.Context, st storage.Store) error {
	s, err := sqlStore(st)
	if err != nil {
		return err
	}
	if _, err := s.DB().ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
		return fmt.Errorf("store %s: flush binary logs: %w", s.Name(), err)
	}
	return nil
}

var binlogPosLine = regexp.MustCompile(`MySQL binlog position: filename '([^']+)', position '(\d+)'(?:, GTID of the last change '([^']*)')?`)

// Base streams `mariadb-backup --backup --stream=xbstream` to w. The tool
// reads the data files, so it must run on the database host (or a sidecar
// mounting the data directory) as a user that can read it. The start
// position is the one it reports, taken under BACKUP STAGE BLOCK_COMMIT
// with the InnoDB copy, so the prepared base is the state at exactly that
// binlog position (Start and End are the same).
func (Engine) Base(ctx context.Context, sc config.Store, w io.Writer) (pitr.BaseInfo, error) {
	srv, err := connect(sc)
	if err != nil {
		return pitr.BaseInfo{}, err
	}
	defer srv.close()
	var datadir, version string
	var logBin bool
	if err := srv.db.QueryRowContext(ctx, "SELECT @@datadir, VERSION(), @@log_bin").Scan(&datadir, &version, &logBin); err != nil {
		return pitr.BaseInfo{}, fmt.Errorf("mariadb at %s: %w", srv.cfg.Addr, err)
	}
	if err := canBackUp(srv.cfg.Addr, version, logBin, datadir); err != nil {
		return pitr.BaseInfo{}, err
	}
	cmd := exec.CommandContext(ctx, "mariadb-backup", srv.defaults(), "--backup", "--stream="+Format,
		"--datadir="+datadir, "--target-dir="+srv.optionsDir)
	cmd.Stdout = w
	out := &toolLog{}
	cmd.Stderr = out
	if err := cmd.Run(); err != nil {
		return pitr.BaseInfo{}, fmt.Errorf("mariadb-backup of %s: %w: %s", srv.cfg.Addr, err, out.tail())
	}
	m := binlogPosLine.FindStringSubmatch(out.posLine)
	if m == nil {
		return pitr.BaseInfo{}, fmt.Errorf("mariadb-backup of %s reported no binlog position: %s", srv.cfg.Addr, out.tail())
	}
	off, _ := strconv.ParseUint(m[2], 10, 64)
	start := pitr.Position{Engine: "mysql", File: m[1], Offset: off, GTID: m[3]}
	return pitr.BaseInfo{Start: start, End: start, Version: version, Format: Format}, nil
}

// canBackUp says what to fix when mariadb-backup cannot back up a server
// from here: MySQL, no binary log, or a data directory this process cannot
// read (another host, or another user).
func canBackUp(addr, version string, logBin bool, datadir string) error {
	if err := notMariaDB(version); err != nil {
		return fmt.Errorf("mariadb at %s: %w", addr, err)
	}
	if !logBin {
		return fmt.Errorf("mariadb at %s has no binary log: point-in-time recovery needs log_bin, server_id and binlog_format=ROW in its configuration", addr)
	}
	if _, err := os.ReadDir(datadir); err != nil {
		return fmt.Errorf("mariadb at %s: mariadb-backup reads its data directory %s directly, so the base backup must run on the database host (or a sidecar that mounts it) as a user that can read it: %w", addr, datadir, err)
	}
	return nil
}

// notMariaDB says what is supported when a server of a mysql store is
// MySQL: base backups need mariadb-backup and cut marks MariaDB's
// @@gtid_binlog_pos.
func notMariaDB(version string) error {
	if strings.Contains(version, "MariaDB") {
		return nil
	}
	return fmt.Errorf("the server is MySQL %s: point-in-time recovery supports MariaDB (10.5 or later) only, through mariadb-backup and @@gtid_binlog_pos (MySQL would need Percona XtraBackup, which is not supported); use logical backups for this store (stillpoint backup create)", version)
}

// toolLog keeps what matters of a tool's output, which can be large
// (mariadb-backup logs a line per file; the mariadb client echoes a
// failed statement, a whole BINLOG event): its binlog position line, its
// ERROR lines and its last lines, each cut short.
type toolLog struct {
	partial []byte
	posLine string
	errors  []string
	last    []string
}

func (l *toolLog) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
}

func (l *toolLog) line(s string) {
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	keep := func(lines []string) []string { return append(lines, s)[max(0, len(lines)+1-8):] }
	switch {
	case strings.Contains(s, "MySQL binlog position:"):
		l.posLine = s
	case strings.HasPrefix(s, "ERROR") || strings.Contains(s, "[ERROR]"):
		l.errors = keep(l.errors)
	}
	l.last = keep(l.last)
}

// tail is the tool's errors if it wrote any, else its last lines.
func (l *toolLog) tail() string {
	if len(l.errors) > 0 {
		return strings.Join(l.errors, "\n")
	}
	l.line(string(l.partial))
	l.partial = nil
	return strings.TrimSpace(strings.Join(l.last, "\n"))
}

// Gaps checks that logs hold from.File and every binlog after it up to
// the newest they hold.
func (Engine) Gaps(ctx context.Context, store string, logs pitr.Logs, from pitr.Position) error {
	start, ok := parseBinlog(from.File)
	if !ok {
		return fmt.Errorf("store %s: %q is not a binlog file name", store, from.File)
	}
	held, err := heldNumbers(ctx, logs, start.base)
	if err != nil {
		return fmt.Errorf("store %s: %w", store, err)
	}
	want, after := start, ""
	for _, n := range held {
		if n < start.num {
			continue
		}
		if n != want.num {
			return &pitr.GapError{Store: store, After: after, Missing: want.String(), Before: binlog{start.base, n}.String(),
				Suggestion: "; take a new base backup: changes in the missing binlogs cannot be replayed"}
		}
		after, want = want.String(), want.next()
	}
	if after == "" {
		return &pitr.GapError{Store: store, Missing: from.File,
			Suggestion: "; the base backup's first binlog was never archived: is the archiver running?"}
	}
	return nil
}

// Restore extracts the base into target.DataDir, prepares it, and replays
// the archived binlogs from info.Start to `to` on a server that listens
// on a socket only and skips the grant tables, so nothing else can write
// during replay and no credentials are needed.
func (Engine) Restore(ctx context.Context, base io.Reader, info pitr.BaseInfo, logs pitr.Logs, to pitr.Position, target pitr.Target) error {
	if info.Format != Format {
		return fmt.Errorf("base backup format %q is not %s: not a mariadb-backup stream", info.Format, Format)
	}
	first, ok1 := parseBinlog(info.Start.File)
	last, ok2 := parseBinlog(to.File)
	if !ok1 || !ok2 || first.base != last.base {
		return fmt.Errorf("cannot replay from %s to %s: not binlog positions of one server", info.Start, to)
	}
	if before(to, info.Start) {
		return fmt.Errorf("the cut at %s is before the base backup's start %s: restore from an older base backup", to, info.Start)
	}
	if err := emptyDir(target.DataDir); err != nil {
		return err
	}
	marker := filepath.Join(target.DataDir, IncompleteMarker)
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return err
	}
	run, err := os.MkdirTemp("", "stillpoint-replay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(run)
	var files []string
	for b := first; b.num <= last.num; b = b.next() {
		f, err := fetch(ctx, logs, b.String(), run)
		if errors.Is(err, pitr.ErrMissing) {
			return &pitr.GapError{Store: target.DataDir, Missing: b.String(),
				Suggestion: "; replay to " + to.String() + " needs it: if it is the cut's own binlog, flush the binary logs and let the archiver copy it"}
		}
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	extract := exec.CommandContext(ctx, "mbstream", "-x", "-C", target.DataDir)
	extract.Stdin = base
	if err := runTool(extract); err != nil {
		return err
	}
	if err := runTool(exec.CommandContext(ctx, "mariadb-backup", "--prepare", "--target-dir="+target.DataDir)); err != nil {
		return err
	}
	settings, err := baseSettings(target.DataDir)
	if err != nil {
		return err
	}
	srv, err := StartServer(ctx, target.DataDir, run, 0, append(settings, "--skip-grant-tables", maxPacket)...)
	if err != nil {
		return err
	}
	err = replay(ctx, srv, files, info.Start.Offset, to.Offset)
	if stop := srv.Stop(); err == nil {
		err = stop
	}
	if err != nil {
		return err
	}
	if err := os.Remove(marker); err != nil {
		return err
	}
	if target.Start {
		runDir := RunDir(target.DataDir)
		if err := os.MkdirAll(runDir, 0o750); err != nil {
			return err
		}
		_, err := StartServer(ctx, target.DataDir, runDir, target.Port, settings...)
		return err
	}
	return nil
}

// baseSettings are the InnoDB settings the base was taken with (page
// size, undo tablespaces, ...), from the backup-my.cnf mariadb-backup
// writes: a server started with other values refuses the data files.
func baseSettings(dataDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "backup-my.cnf"))
	if err != nil {
		return nil, fmt.Errorf("the base backup has no backup-my.cnf: %w", err)
	}
	var args []string
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[':
			section = line
		case section == "[mysqld]":
			args = append(args, "--"+line)
		}
	}
	return args, nil
}

// RunDir is where a server Restore leaves running keeps its socket, pid
// file and error log: beside the data directory, never in it (a directory
// in it would be a database).
func RunDir(dataDir string) string { return filepath.Clean(dataDir) + ".run" }

func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o750)
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("target data directory %s is not empty: a restore fills an empty directory and never overwrites one; name a new directory or empty it", dir)
	}
	return nil
}

// fetch writes one archived binlog into dir.
func fetch(ctx context.Context, logs pitr.Logs, name, dir string) (string, error) {
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	err = logs.Get(ctx, name, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return path, err
}

// maxPacket lets the replay client and server pass the largest BINLOG
// statement mariadb-binlog writes (a big transaction's row events), which
// can exceed the 16 MiB default.
const maxPacket = "--max-allowed-packet=1G"

// replay pipes `mariadb-binlog --start-position=from FILES
// --stop-position=to` (start applies to the first file, stop to the
// last) into the server. FLUSH PRIVILEGES first turns the grant tables
// back on, so account statements in the binlogs replay too; the session
// keeps the rights it connected with.
func replay(ctx context.Context, srv *Server, files []string, from, to uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	args := append([]string{"--no-defaults", fmt.Sprintf("--start-position=%d", from)}, files...)
	dump := exec.CommandContext(ctx, "mariadb-binlog", append(args, fmt.Sprintf("--stop-position=%d", to))...)
	events, err := dump.StdoutPipe()
	if err != nil {
		return err
	}
	dumpErr := &toolLog{}
	dump.Stderr = dumpErr
	apply := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--binary-mode", maxPacket, "--socket="+srv.Socket, "-uroot")
	apply.Stdin = io.MultiReader(strings.NewReader("FLUSH PRIVILEGES;\n"), bufio.NewReader(events))
	applyErr := &toolLog{}
	apply.Stdout, apply.Stderr = applyErr, applyErr
	if err := dump.Start(); err != nil {
		return err
	}
	if err := apply.Run(); err != nil {
		cancel() // the dump would block on a pipe nobody reads
		dump.Wait()
		return fmt.Errorf("replaying binlogs %s..%s: %w: %s", filepath.Base(files[0]), filepath.Base(files[len(files)-1]), err, applyErr.tail())
	}
	if err := dump.Wait(); err != nil {
		return fmt.Errorf("mariadb-binlog %s..%s: %w: %s", filepath.Base(files[0]), filepath.Base(files[len(files)-1]), err, dumpErr.tail())
	}
	return nil
}

func runTool(cmd *exec.Cmd) error {
	out := &toolLog{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, out.tail())
	}
	return nil
}
