package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/pitr/pitrtest"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/postgres"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func run(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func ids(t *testing.T, conn *pgx.Conn) []int {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT id FROM rows ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// archived loads every file the server's archive_command copied into a
// Logs, through Push as archive_command would.
func archived(t *testing.T, dir string) *pitrtest.MemLogs {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := pitrtest.NewMemLogs()
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") { // being archived
			continue
		}
		if err := Push(context.Background(), logs, e.Name(), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return logs
}

var errRepository = errors.New("repository unreachable")

// failingWriter takes left bytes, then fails as a repository can.
type failingWriter struct{ left int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errRepository
	}
	w.left -= len(p)
	return len(p), nil
}

// TestBaseRefusesAServerThatDoesNotArchive uses the shared server, whose
// archive_mode is off, and runs nothing there but a query.
func TestBaseRefusesAServerThatDoesNotArchive(t *testing.T) {
	var w bytes.Buffer
	_, err := Engine{}.Base(context.Background(), config.Store{Engine: "postgres", DSN: testenv.PostgresDSN(t)}, &w)
	if err == nil || !strings.Contains(err.Error(), "archive_mode = on") || w.Len() != 0 {
		t.Fatalf("Base = %v (%d bytes written), want a refusal naming archive_mode before any byte", err, w.Len())
	}
}

// loadMark is a mark taken while one session commits ids 0, 1, 2, ...
// into table live, one per transaction: every id up to committedBefore
// had committed when Mark was called, and no id after begunBefore had
// begun when it returned.
type loadMark struct {
	cut                          pitr.Position
	committedBefore, begunBefore int
}

func markUnderLoad(t *testing.T, dsn string, st storage.Store) loadMark {
	t.Helper()
	ctx := context.Background()
	writer := connect(t, dsn)
	run(t, writer, "CREATE TABLE live (id int PRIMARY KEY)")
	var committed atomic.Int64
	committed.Store(-1)
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := writer.Exec(ctx, "INSERT INTO live VALUES ($1)", i); err != nil {
				done <- err
				return
			}
			committed.Store(int64(i))
		}
	}()
	testenv.Await(t, "100 commits", func() bool { return committed.Load() >= 100 })
	m := loadMark{committedBefore: int(committed.Load())}
	var err error
	m.cut, err = Engine{}.Mark(ctx, st, "live")
	// The insert of committed+1 may have begun before Mark returned.
	m.begunBefore = int(committed.Load()) + 1
	testenv.Await(t, "commits after the mark", func() bool { return committed.Load() > int64(m.begunBefore)+100 })
	close(stop)
	if werr := <-done; werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	if err != nil {
		t.Fatalf("Mark: %v", err)
	}
	return m
}

// switchAndArchive ends the server's current WAL segment, awaits its
// archiving into dir, and returns the archive.
func switchAndArchive(t *testing.T, conn *pgx.Conn, dir string) *pitrtest.MemLogs {
	t.Helper()
	var switched string
	if err := conn.QueryRow(context.Background(), "SELECT pg_walfile_name(pg_switch_wal())").Scan(&switched); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, "the archiver to archive "+switched, func() bool {
		_, err := os.Stat(filepath.Join(dir, switched))
		return err == nil
	})
	return archived(t, dir)
}

func isEmpty(t *testing.T, dir string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries) == 0
}

// TestRestoreToMarks: a base, then rows, mark cut1, rows, mark cut2, rows;
// a restore to each mark holds exactly the rows written before it.
func TestRestoreToMarks(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartPITRPostgres(t)
	conn := connect(t, srv.DSN)
	run(t, conn, "CREATE TABLE rows (id int PRIMARY KEY)")
	var base bytes.Buffer
	info, err := Engine{}.Base(ctx, config.Store{Engine: "postgres", DSN: srv.DSN}, &base)
	if err != nil {
		t.Fatalf("Base: %v", err)
	}
	if info.Format != "tar" || info.Start.Timeline != 1 || info.Start.LSN == "" || info.End.LSN == "" || versionMajor(info.Version) != 15 {
		t.Fatalf("Base = %+v", info)
	}
	st, err := postgres.Open(ctx, "pg", srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Each phase writes 1 MiB of WAL and more, so marks and rows span
	// several segments.
	phase := func(from int) {
		run(t, conn, "INSERT INTO rows SELECT g FROM generate_series($1::int, $1::int + 9999) g", from)
	}
	phase(0)
	cut1, err := Engine{}.Mark(ctx, st, "cut1")
	if err != nil {
		t.Fatalf("Mark: %v", err)
	}
	phase(10000)
	cut2, err := Engine{}.Mark(ctx, st, "cut2")
	if err != nil {
		t.Fatalf("Mark: %v", err)
	}
	phase(20000)
	live := markUnderLoad(t, srv.DSN, st)
	logs := switchAndArchive(t, conn, srv.Archive)
	names, _ := logs.Names(ctx)
	t.Logf("base %d bytes, %s to %s; archive %d files; cut1 %s, cut2 %s", base.Len(), info.Start, info.End, len(names), cut1, cut2)
	if err := (Engine{}).Gaps(ctx, "pg", logs, info.Start); err != nil {
		t.Fatalf("Gaps: %v", err)
	}

	upTo := func(n int) []int {
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		return want
	}
	for _, tc := range []struct {
		cut  pitr.Position
		want []int
	}{
		{cut1, upTo(10000)},
		{cut2, upTo(20000)},
	} {
		t.Run(tc.cut.RestorePoint, func(t *testing.T) {
			dir, port := testenv.PITRPostgresTarget(t)
			// As an operator's directory often is; PostgreSQL refuses it.
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := (Engine{}).Restore(ctx, bytes.NewReader(base.Bytes()), info, logs, tc.cut, pitr.Target{DataDir: dir, Port: port, Start: true}); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			restored := connect(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port))
			var inRecovery bool
			if err := restored.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
				t.Fatalf("pg_is_in_recovery() = %v, %v; want a promoted server", inRecovery, err)
			}
			if got := ids(t, restored); !slices.Equal(got, tc.want) {
				t.Fatalf("restored %d rows (%v...), want exactly the %d written before %s", len(got), got[:min(3, len(got))], len(tc.want), tc.cut.RestorePoint)
			}
			if _, err := os.Stat(filepath.Join(dir, spoolDir)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the WAL spool is left after promotion: %v", err)
			}
		})
	}

	t.Run("a mark taken while commits run", func(t *testing.T) {
		dir, port := testenv.PITRPostgresTarget(t)
		if err := (Engine{}).Restore(ctx, bytes.NewReader(base.Bytes()), info, logs, live.cut, pitr.Target{DataDir: dir, Port: port, Start: true}); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		restored := connect(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port))
		var n, maxID int
		if err := restored.QueryRow(ctx, "SELECT count(*), coalesce(max(id), -1) FROM live").Scan(&n, &maxID); err != nil {
			t.Fatal(err)
		}
		// Commits are sequential: what replay kept is a prefix, holding
		// every commit that returned before the mark was asked for and
		// none begun after it returned.
		if n != maxID+1 || maxID < live.committedBefore || maxID > live.begunBefore {
			t.Fatalf("restored ids 0..%d (%d rows); want a prefix ending between %d and %d", maxID, n, live.committedBefore, live.begunBefore)
		}
		t.Logf("mark under load: restored ids 0..%d, bounds %d..%d", maxID, live.committedBefore, live.begunBefore)
	})

	// An operator makes a restored server the new primary: it archives
	// into the same archive on the timeline its promotion began (its
	// history file pushed by hand, as archiving was off when it promoted).
	// A cut on that timeline restores from the same base, following the
	// switch.
	t.Run("a cut on the timeline a restore began", func(t *testing.T) {
		dir, port := testenv.PITRPostgresTarget(t)
		if err := (Engine{}).Restore(ctx, bytes.NewReader(base.Bytes()), info, logs, cut1, pitr.Target{DataDir: dir, Port: port, Start: true}); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		history, err := os.ReadFile(filepath.Join(dir, "pg_wal", historyName(2)))
		if err != nil {
			t.Fatalf("the promoted server's history file: %v", err)
		}
		if err := os.WriteFile(filepath.Join(srv.Archive, historyName(2)), history, 0o644); err != nil {
			t.Fatal(err)
		}
		testenv.StopPostgres(t, srv.Bin, dir)
		dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", testenv.StartPostgresOn(t, srv.Bin, dir, testenv.ArchiveConf(srv.Archive)))
		primary := connect(t, dsn)
		run(t, primary, "INSERT INTO rows SELECT g FROM generate_series(30000, 30099) g")
		st2, err := postgres.Open(ctx, "pg", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st2.Close()
		cut3, err := Engine{}.Mark(ctx, st2, "cut3")
		if err != nil || cut3.Timeline != 2 {
			t.Fatalf("Mark = %v, %v; want a mark on timeline 2", cut3, err)
		}
		run(t, primary, "INSERT INTO rows VALUES (40000)")
		logs := switchAndArchive(t, primary, srv.Archive)
		if err := (Engine{}).Gaps(ctx, "pg", logs, info.Start); err != nil {
			t.Fatalf("Gaps: %v", err)
		}
		dir3, port3 := testenv.PITRPostgresTarget(t)
		if err := (Engine{}).Restore(ctx, bytes.NewReader(base.Bytes()), info, logs, cut3, pitr.Target{DataDir: dir3, Port: port3, Start: true}); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		want := upTo(10000)
		for id := 30000; id < 30100; id++ {
			want = append(want, id)
		}
		if got := ids(t, connect(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port3))); !slices.Equal(got, want) {
			t.Fatalf("restored %d rows, want the %d of cut1 and the new timeline before cut3", len(got), len(want))
		}
	})

	// A hole between the base and cut2: found by Gaps, and refused by the
	// restore before it writes anything.
	a, err := readArchive(ctx, logs)
	if err != nil {
		t.Fatal(err)
	}
	startLSN, _ := parseLSN(info.Start.LSN)
	hole := segmentName(1, startLSN/a.segSize+1, a.segSize)
	holed := logs.Without(hole)
	bad := []struct {
		name    string
		logs    pitr.Logs
		info    pitr.BaseInfo
		to      pitr.Position
		refusal string
	}{
		{"a gap in the archive", holed, info, cut2, hole},
		{"a base of another major version", logs, func() pitr.BaseInfo { i := info; i.Version = "14.11"; return i }(), cut2, "PostgreSQL 14"},
		{"a cut before the base's end", logs, info, pitr.Position{Engine: "postgres", LSN: "0/1", Timeline: 1}, "precedes the end of the base"},
		{"a cut of another engine", logs, info, pitr.Position{Engine: "mysql", File: "mysql-bin.000001"}, "no PostgreSQL LSN"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			dir, port := testenv.PITRPostgresTarget(t)
			err := Engine{}.Restore(ctx, bytes.NewReader(base.Bytes()), tc.info, tc.logs, tc.to, pitr.Target{DataDir: dir, Port: port, Start: true})
			if err == nil || !strings.Contains(err.Error(), tc.refusal) {
				t.Fatalf("Restore = %v, want a refusal naming %q", err, tc.refusal)
			}
			if !isEmpty(t, dir) {
				t.Fatalf("the refused restore wrote into %s", dir)
			}
		})
	}
	// A segment whose content is damaged passes the gap check; replay
	// ends at the damage, before the mark, and the server stops: the
	// restore fails, leaving a server that never promoted.
	t.Run("a damaged segment", func(t *testing.T) {
		damaged := logs.Without()
		b := bytes.Clone(damaged.Files[hole])
		for i := len(b) / 2; i < len(b)/2+64; i++ {
			b[i] ^= 0xff
		}
		damaged.Files[hole] = b
		dir, port := testenv.PITRPostgresTarget(t)
		err := Engine{}.Restore(ctx, bytes.NewReader(base.Bytes()), info, damaged, cut2, pitr.Target{DataDir: dir, Port: port, Start: true})
		if err == nil || !strings.Contains(err.Error(), "before reaching the cut") || !strings.Contains(err.Error(), "recovery ended before configured recovery target was reached") {
			t.Fatalf("Restore = %v, want the server's refusal to end short of the cut", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "recovery.signal")); err != nil {
			t.Fatalf("the failed restore looks finished: %v", err)
		}
	})
	t.Run("Gaps names the hole", func(t *testing.T) {
		var gap *pitr.GapError
		if err := (Engine{}).Gaps(ctx, "pg", holed, info.Start); !errors.As(err, &gap) || gap.Missing != hole {
			t.Fatalf("Gaps = %v, want the gap at %s", err, hole)
		}
	})
	t.Run("interrupted while the server replays", func(t *testing.T) {
		dir, port := testenv.PITRPostgresTarget(t)
		ctx, cancel := context.WithCancel(ctx)
		afterStart = cancel
		defer func() { afterStart = func() {} }()
		err := Engine{}.Restore(ctx, bytes.NewReader(base.Bytes()), info, logs, cut2, pitr.Target{DataDir: dir, Port: port, Start: true})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Restore = %v, want it interrupted", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the interrupted restore left its server running (postmaster.pid: %v)", err)
		}
	})
	t.Run("a target data directory restore_command cannot name", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "it's")
		err := Engine{}.Restore(ctx, bytes.NewReader(base.Bytes()), info, logs, cut1, pitr.Target{DataDir: dir})
		if err == nil || !strings.Contains(err.Error(), "quote") {
			t.Fatalf("Restore = %v, want a refusal of the path", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the refused restore created %s", dir)
		}
	})
	t.Run("a target owned by root, or by the user restoring", func(t *testing.T) {
		dir := t.TempDir()
		err := Engine{}.Restore(ctx, bytes.NewReader(base.Bytes()), info, logs, cut1, pitr.Target{DataDir: dir})
		if os.Geteuid() == 0 {
			// PostgreSQL refuses to run as root, and so as the owner of a
			// root-owned directory.
			if err == nil || !strings.Contains(err.Error(), "refuses to run as root") || !isEmpty(t, dir) {
				t.Fatalf("Restore as root into a root-owned directory = %v, want a refusal that writes nothing", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "recovery.signal")); err != nil {
			t.Fatalf("the restored directory is not set to recover: %v", err)
		}
	})
	t.Run("a restored server to start without a port", func(t *testing.T) {
		dir, _ := testenv.PITRPostgresTarget(t)
		err := Engine{}.Restore(ctx, bytes.NewReader(base.Bytes()), info, logs, cut1, pitr.Target{DataDir: dir, Start: true})
		if err == nil || !strings.Contains(err.Error(), "port of its own") || !isEmpty(t, dir) {
			t.Fatalf("Restore = %v, want a refusal that writes nothing", err)
		}
	})
	t.Run("a target that is not empty", func(t *testing.T) {
		dir, port := testenv.PITRPostgresTarget(t)
		keep := filepath.Join(dir, "keep")
		if err := os.WriteFile(keep, []byte("operator's"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := Engine{}.Restore(ctx, bytes.NewReader(base.Bytes()), info, logs, cut1, pitr.Target{DataDir: dir, Port: port})
		if err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("Restore = %v, want a refusal of a non-empty target", err)
		}
		if b, _ := os.ReadFile(keep); string(b) != "operator's" {
			t.Fatal("the refused restore changed the target's file")
		}
	})
	t.Run("a repository that fails during the base", func(t *testing.T) {
		_, err := Engine{}.Base(ctx, config.Store{Engine: "postgres", DSN: srv.DSN}, &failingWriter{left: 1 << 20})
		if !errors.Is(err, errRepository) {
			t.Fatalf("Base = %v, want the repository's error", err)
		}
	})
	t.Run("a mark name longer than PostgreSQL takes", func(t *testing.T) {
		_, err := Engine{}.Mark(ctx, st, strings.Repeat("m", 64))
		if err == nil || !strings.Contains(err.Error(), "at most 63") {
			t.Fatalf("Mark = %v, want a refusal naming the limit", err)
		}
	})
	t.Run("a user without REPLICATION", func(t *testing.T) {
		run(t, conn, "CREATE ROLE norepl LOGIN")
		dsn := strings.Replace(srv.DSN, "postgres@", "norepl@", 1)
		_, err := Engine{}.Base(ctx, config.Store{Engine: "postgres", DSN: dsn}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "REPLICATION") {
			t.Fatalf("Base = %v, want an error naming REPLICATION", err)
		}
	})
	// Last: it changes the server's archive_command (and puts it back).
	t.Run("archive_mode on without archive_command", func(t *testing.T) {
		var command string
		if err := conn.QueryRow(ctx, "SHOW archive_command").Scan(&command); err != nil {
			t.Fatal(err)
		}
		setArchiveCommand := func(c string) {
			run(t, conn, "ALTER SYSTEM SET archive_command = '"+strings.ReplaceAll(c, "'", "''")+"'")
			run(t, conn, "SELECT pg_reload_conf()")
			testenv.Await(t, "the server to reload archive_command", func() bool {
				fresh, err := pgx.Connect(ctx, srv.DSN)
				if err != nil {
					t.Fatal(err)
				}
				defer fresh.Close(ctx)
				var now string
				return fresh.QueryRow(ctx, "SHOW archive_command").Scan(&now) == nil && now == c
			})
		}
		setArchiveCommand("")
		defer setArchiveCommand(command)
		var w bytes.Buffer
		// Without the check, pg_basebackup waits forever for archiving:
		// the deadline only ends such a hang.
		hang, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err := Engine{}.Base(hang, config.Store{Engine: "postgres", DSN: srv.DSN}, &w)
		if err == nil || !strings.Contains(err.Error(), "no archive_command") || w.Len() != 0 {
			t.Fatalf("Base = %v (%d bytes written), want a refusal naming archive_command before any byte", err, w.Len())
		}
	})
}
