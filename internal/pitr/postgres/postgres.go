// Package postgres is PostgreSQL's point-in-time recovery (docs/pitr-postgres.md):
// cut marks are restore points, base backups come from pg_basebackup,
// WAL reaches the repository through archive_command (Push) and back
// through a spool the restore fills from it, and a restore replays to a
// mark's LSN and promotes.
package postgres

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

func init() { pitr.Register("postgres", Engine{}) }

// Engine is PostgreSQL's pitr.Engine.
type Engine struct{}

// maxRestorePointName is PostgreSQL's limit (MAXFNAMELEN - 1); a longer
// name would be refused by the server inside the fence.
const maxRestorePointName = 63

// Mark creates a restore point and returns its LSN (the end of its WAL
// record, where replay stops) with the timeline it was written on.
func (Engine) Mark(ctx context.Context, st storage.Store, name string) (pitr.Position, error) {
	if len(name) > maxRestorePointName {
		return pitr.Position{}, fmt.Errorf("cut mark name %q is %d bytes: PostgreSQL restore points take at most %d", name, len(name), maxRestorePointName)
	}
	s, ok := st.(*sqlstore.Store)
	if !ok || s.Engine() != "postgres" {
		return pitr.Position{}, fmt.Errorf("PostgreSQL restore point %q: the store is not a PostgreSQL store", name)
	}
	var lsn, file string
	err := s.DB().QueryRowContext(ctx, `SELECT lsn::text, pg_walfile_name(lsn) FROM pg_create_restore_point($1) AS lsn`, name).Scan(&lsn, &file)
	if err != nil {
		return pitr.Position{}, fmt.Errorf("store %s: creating restore point %q: %w (the store's user must be a superuser or be granted EXECUTE on pg_create_restore_point, and the server must have wal_level=replica)", s.Name(), name, err)
	}
	seg, err := parseSegment(file)
	if err != nil {
		return pitr.Position{}, err
	}
	return pitr.Position{Engine: "postgres", LSN: lsn, Timeline: seg.tli, RestorePoint: name}, nil
}

// server is what Base learns of the server before copying it.
type server struct {
	version     string // server_version, e.g. "15.8"
	major       int
	replication bool
	archiveMode string
	// archiver is archive_command, or PostgreSQL 15's archive_library
	// ("" for both unset: WAL is kept but never archived).
	archiver string
}

func inspect(ctx context.Context, dsn string) (server, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return server{}, err
	}
	defer conn.Close(context.Background())
	var s server
	var num int
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('server_version_num')::int,
		(SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), current_setting('archive_mode'),
		current_setting('archive_command') || coalesce(current_setting('archive_library', true), '')`).
		Scan(&s.version, &num, &s.replication, &s.archiveMode, &s.archiver)
	s.major = num / 10000
	return s, err
}

// Base streams pg_basebackup's tar of the data directory to w, without
// WAL (-X none): the WAL from the backup's start to its end comes from the
// archive, and pg_basebackup returns only once the server has archived
// the end's segment, so a base is never finished before its WAL is safe.
// Its start and end are read from the backup_manifest pg_basebackup puts
// in the stream.
func (Engine) Base(ctx context.Context, sc config.Store, w io.Writer) (pitr.BaseInfo, error) {
	srv, err := inspect(ctx, sc.DSN)
	if err != nil {
		return pitr.BaseInfo{}, fmt.Errorf("base backup: cannot query the server: %w", err)
	}
	if !srv.replication {
		return pitr.BaseInfo{}, errors.New("base backup: the store's user lacks the REPLICATION attribute pg_basebackup needs: ALTER ROLE <user> REPLICATION, and allow it a replication connection in pg_hba.conf")
	}
	if srv.archiveMode == "off" {
		return pitr.BaseInfo{}, errors.New("base backup: the server does not archive its WAL, so the base could not be replayed: set archive_mode = on and archive_command (docs/pitr-postgres.md) and restart it")
	}
	if srv.archiver == "" {
		// pg_basebackup would wait forever for the base's WAL to be archived.
		return pitr.BaseInfo{}, errors.New("base backup: the server has archive_mode on but no archive_command, so its WAL is never archived: set archive_command (docs/pitr-postgres.md) and reload it")
	}
	bin, err := binDir(srv.major, "pg_basebackup")
	if err != nil {
		return pitr.BaseInfo{}, err
	}
	pr, pw := io.Pipe()
	ranges := make(chan walRanges, 1)
	go func() { ranges <- readManifest(pr) }()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "pg_basebackup"), "-d", sc.DSN, "-D", "-", "-Ft", "-X", "none", "--checkpoint=fast", "--no-password")
	out := &recordingWriter{w: w}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(out, pw), &stderr
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	err = cmd.Run()
	pw.Close()
	r := <-ranges
	if out.err != nil {
		// pg_basebackup then dies of a broken pipe, which says nothing.
		return pitr.BaseInfo{}, fmt.Errorf("base backup: writing the base: %w", out.err)
	}
	if err != nil {
		return pitr.BaseInfo{}, fmt.Errorf("base backup: pg_basebackup: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if r.err != nil {
		return pitr.BaseInfo{}, fmt.Errorf("base backup: %w", r.err)
	}
	first, last := r.WAL[0], r.WAL[len(r.WAL)-1]
	return pitr.BaseInfo{
		Start:   pitr.Position{Engine: "postgres", LSN: first.Start, Timeline: first.Timeline},
		End:     pitr.Position{Engine: "postgres", LSN: last.End, Timeline: last.Timeline},
		Version: srv.version,
		Format:  "tar",
	}, nil
}

// recordingWriter keeps the first error of w.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}

// walRanges is the part of a backup_manifest that says which WAL the
// base needs.
type walRanges struct {
	WAL []struct {
		Timeline uint32 `json:"Timeline"`
		Start    string `json:"Start-LSN"`
		End      string `json:"End-LSN"`
	} `json:"WAL-Ranges"`
	err error
}

// readManifest finds backup_manifest in a base's tar stream. It reads r
// to its end whatever happens, so pg_basebackup is never blocked.
func readManifest(r io.Reader) (m walRanges) {
	defer io.Copy(io.Discard, r)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			m.err = fmt.Errorf("reading pg_basebackup's tar for backup_manifest: %w", err)
			if err == io.EOF {
				m.err = errors.New("pg_basebackup's tar has no backup_manifest (is the server older than PostgreSQL 13?)")
			}
			return m
		}
		if h.Name != "backup_manifest" {
			continue
		}
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			m.err = fmt.Errorf("backup_manifest: %w", err)
		} else if len(m.WAL) == 0 {
			m.err = errors.New("backup_manifest names no WAL range")
		}
		return m
	}
}

// binDir finds the directory of PostgreSQL major version major's
// programs: Debian's /usr/lib/postgresql/N/bin, else the one on PATH if it
// is that version. A restore needs the base's own major version.
func binDir(major int, program string) (string, error) {
	debian := fmt.Sprintf("/usr/lib/postgresql/%d/bin", major)
	if _, err := os.Stat(filepath.Join(debian, program)); err == nil {
		return debian, nil
	}
	path, err := exec.LookPath(program)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL %d's %s is not installed (looked in %s and PATH)", major, program, debian)
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", path, err)
	}
	if v := versionMajor(string(out)); v != major {
		return "", fmt.Errorf("PostgreSQL %d's %s is needed, but %s is version %d: install PostgreSQL %d", major, program, path, v, major)
	}
	return filepath.Dir(path), nil
}

var majorRe = regexp.MustCompile(`[0-9]+`)

// versionMajor is the major version in "15.8", "15.8 (Debian ...)" or
// "pg_ctl (PostgreSQL) 15.8" (since 10, a major is one number); 0 if none.
func versionMajor(v string) int {
	n, _ := strconv.Atoi(majorRe.FindString(v))
	return n
}
