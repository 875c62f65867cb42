package mariadb_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/pitr/mariadb"
	"github.com/stillpoint/stillpoint/internal/pitr/pitrtest"
	"github.com/stillpoint/stillpoint/internal/storage/mysql"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type source struct {
	sc  config.Store
	st  *sqlstore.Store
	db  *sql.DB
	eng pitr.Engine
}

func (s *source) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := s.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// insert adds rows from..to to shop.t.
func (s *source) insert(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		s.exec(t, fmt.Sprintf("INSERT INTO shop.t VALUES (%d)", i))
	}
}

// closedBinlogs is what SHOW BINARY LOGS lists but the file being written.
func (s *source) closedBinlogs(t *testing.T) []string { return testenv.ClosedBinlogs(t, s.db) }

func startSource(t *testing.T, innodb ...string) *source {
	t.Helper()
	sc, _ := testenv.PITRMariaDB(t, innodb...)
	st, err := mysql.Open(context.Background(), "maria", sc.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := pitr.EngineFor(st.Engine())
	if err != nil {
		t.Fatal(err)
	}
	s := &source{sc: sc, st: st, db: st.DB(), eng: eng}
	s.exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)", "CREATE TABLE shop.w (id INT PRIMARY KEY)",
		"CREATE TABLE shop.big (id INT PRIMARY KEY, b LONGBLOB)",
		"CREATE DATABASE coordinator", "CREATE TABLE coordinator.state (id VARCHAR(64) PRIMARY KEY)")
	return s
}

// markFenced marks while the project's MariaDB fence (LOCK TABLES ...
// READ on coordinator.state, from another connection) holds.
func (s *source) markFenced(t *testing.T, name string) pitr.Position {
	t.Helper()
	ctx := context.Background()
	fence, err := mysql.AcquireFence(ctx, s.st, "coordinator.state", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer fence.Release()
	p, err := s.eng.Mark(ctx, s.st, name)
	if err != nil {
		t.Fatalf("mark %s under the fence: %v", name, err)
	}
	if p.File == "" || p.Offset == 0 {
		t.Fatalf("mark %s: incomplete position %+v", name, p)
	}
	// The GTID, when there is one, names the same point as File:Offset.
	var gtid string
	if err := s.db.QueryRow("SELECT BINLOG_GTID_POS(?, ?)", p.File, p.Offset).Scan(&gtid); err != nil || p.GTID != "" && gtid != p.GTID {
		t.Fatalf("mark %s: GTID %q, but the binlog has %q at %s (%v)", name, p.GTID, gtid, p, err)
	}
	return p
}

// restoredIDs restores to `to` into a fresh directory, starts the server
// there and returns the ids in shop.t, shop.w and shop.big.
func restoredIDs(t *testing.T, s *source, base []byte, info pitr.BaseInfo, logs pitr.Logs, to pitr.Position) (ids, written, big []int) {
	t.Helper()
	ctx := context.Background()
	target := pitr.Target{DataDir: filepath.Join(t.TempDir(), "data"), Port: testenv.LoopbackPort(t), Start: true}
	if err := s.eng.Restore(ctx, bytes.NewReader(base), info, logs, to, target); err != nil {
		t.Fatalf("restore to %s: %v", to, err)
	}
	t.Cleanup(func() {
		if err := mariadb.StopRestored(ctx, target.DataDir); err != nil {
			t.Error(err)
		}
	})
	if _, err := os.Stat(filepath.Join(target.DataDir, mariadb.IncompleteMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a finished restore still carries %s (%v)", mariadb.IncompleteMarker, err)
	}
	// The restored server keeps the source's accounts.
	db, err := sql.Open("mysql", fmt.Sprintf("stillpoint:stillpoint@tcp(127.0.0.1:%d)/", target.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return queryIDs(t, db, "shop.t"), queryIDs(t, db, "shop.w"), queryIDs(t, db, "shop.big")
}

func queryIDs(t *testing.T, db *sql.DB, table string) []int {
	t.Helper()
	rows, err := db.Query("SELECT id FROM " + table + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// writer inserts 1, 2, ... into shop.w, one autocommit at a time, until
// stopped: started is the last id it began, acked the last committed.
type writer struct {
	started, acked atomic.Int64
	stop           chan struct{}
	done           chan error
}

func (s *source) startWriter() *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		for i := int64(1); ; i++ {
			select {
			case <-w.stop:
				w.done <- nil
				return
			default:
			}
			w.started.Store(i)
			if _, err := s.db.Exec("INSERT INTO shop.w VALUES (?)", i); err != nil {
				w.done <- err
				return
			}
			w.acked.Store(i)
		}
	}()
	return w
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestRestoreToCuts: base; rows; cut1; rows; rotation; rows; cut2; rows;
// archive; a restore to each cut, and to the base's own position, holds
// exactly the rows before it. Another session commits throughout, from
// before the base to after cut2: each restore must hold a prefix of its
// inserts, with every one acknowledged before the base or mark began and
// none begun after it returned. The source's InnoDB page size is not the
// default: a restored server must run with the base's settings.
func TestRestoreToCuts(t *testing.T) {
	ctx := context.Background()
	s := startSource(t, "--innodb-page-size=32k")
	s.insert(t, 1, 3)
	w := s.startWriter()
	testenv.Await(t, "the writer's first commits", func() bool { return w.acked.Load() >= 5 })
	// around returns the writer's ids acknowledged before f and begun
	// before it returned: what a point taken in f must lie between.
	around := func(f func()) [2]int64 {
		lo := w.acked.Load()
		f()
		return [2]int64{lo, w.started.Load()}
	}
	var base bytes.Buffer
	var info pitr.BaseInfo
	var err error
	atBase := around(func() { info, err = s.eng.Base(ctx, s.sc, &base) })
	if err != nil {
		t.Fatalf("base: %v", err)
	}
	if info.Format != mariadb.Format || info.Start.File == "" || info.Start != info.End || !strings.HasPrefix(info.Version, "10.") {
		t.Fatalf("base info %+v", info)
	}
	s.insert(t, 4, 6)
	var cut1, cut2 pitr.Position
	atCut1 := around(func() { cut1 = s.markFenced(t, "cut1") })
	s.insert(t, 7, 9)
	// One statement whose row events exceed the 16 MiB max_allowed_packet.
	s.exec(t, "INSERT INTO shop.big SELECT seq, REPEAT('x', 1000000) FROM shop.seq_1_to_20")
	if err := mariadb.Flush(ctx, s.st); err != nil {
		t.Fatal(err)
	}
	s.insert(t, 10, 12)
	atCut2 := around(func() { cut2 = s.markFenced(t, "cut2") })
	testenv.Await(t, "commits after cut2", func() bool { return w.acked.Load() >= atCut2[1]+5 })
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatal(err)
	}
	s.insert(t, 13, 15)
	if cut1.File == cut2.File || cut1.File != info.Start.File {
		t.Fatalf("want the cuts on either side of a rotation, the first in the base's binlog: base %s, cut1 %s, cut2 %s", info.Start, cut1, cut2)
	}
	logs := pitrtest.NewMemLogs()
	// The cut's own binlog is archived once it is closed.
	if _, err := mariadb.ArchiveOnce(ctx, s.sc, logs); err != nil {
		t.Fatal(err)
	}
	var gap *pitr.GapError
	err = s.eng.Restore(ctx, bytes.NewReader(base.Bytes()), info, logs, cut2, pitr.Target{DataDir: filepath.Join(t.TempDir(), "data")})
	if !errors.As(err, &gap) || gap.Missing != cut2.File {
		t.Fatalf("restore to a cut whose binlog is not archived yet: want a gap at %s, got %v", cut2.File, err)
	}
	if err := mariadb.Flush(ctx, s.st); err != nil {
		t.Fatal(err)
	}
	if _, err := mariadb.ArchiveOnce(ctx, s.sc, logs); err != nil {
		t.Fatal(err)
	}
	if err := s.eng.Gaps(ctx, "maria", logs, info.Start); err != nil {
		t.Fatalf("gaps: %v", err)
	}
	for _, tc := range []struct {
		name    string
		to      pitr.Position
		want    []int
		written [2]int64
		big     int
	}{
		{"cut1, in the base's binlog", cut1, seq(1, 6), atCut1, 0},
		{"cut2, across a rotation and a 20 MB transaction", cut2, seq(1, 12), atCut2, 20},
		{"the base's own position", info.Start, seq(1, 3), atBase, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, written, big := restoredIDs(t, s, base.Bytes(), info, logs, tc.to)
			if !slices.Equal(got, tc.want) || len(big) != tc.big {
				t.Fatalf("restored ids %v and %d big rows, want %v and %d", got, len(big), tc.want, tc.big)
			}
			n := int64(len(written))
			if lo, hi := tc.written[0], tc.written[1]; !slices.Equal(written, seq(1, int(n))) || n < lo || n > hi {
				t.Fatalf("restored the writer's ids %v: want 1..k with %d (acknowledged before) <= k <= %d (begun before it returned)", written, lo, hi)
			}
			t.Logf("under concurrent commits: restored the writer's 1..%d, acknowledged before %d, begun before return %d", n, tc.written[0], tc.written[1])
		})
	}
}

// TestArchiver: a restarted archiver resumes from what the archive
// holds, storing each binlog once and missing none; a binlog purged
// before it was archived is a gap, from the archiver and from Gaps.
func TestArchiver(t *testing.T) {
	ctx := context.Background()
	s := startSource(t)
	s.insert(t, 1, 3)
	flush := func() {
		t.Helper()
		if err := mariadb.Flush(ctx, s.st); err != nil {
			t.Fatal(err)
		}
	}
	flush()
	first := s.closedBinlogs(t)[0]
	logs := pitrtest.NewMemLogs()
	copied, err := mariadb.ArchiveOnce(ctx, s.sc, logs)
	if err != nil || !slices.Equal(copied, s.closedBinlogs(t)) {
		t.Fatalf("first pass copied %v (%v), want %v", copied, err, s.closedBinlogs(t))
	}
	s.insert(t, 4, 6)
	flush()

	// Restarted as the long-running archiver: it copies the file closed
	// while it was down, then each one as it rotates.
	mariadb.ArchiveInterval = 10 * time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mariadb.Archive(runCtx, s.sc, logs) }()
	archived := func() bool {
		names, _ := logs.Names(ctx)
		return slices.Equal(names, s.closedBinlogs(t))
	}
	testenv.Await(t, "the binlog closed while the archiver was down", archived)
	s.insert(t, 7, 9)
	flush()
	testenv.Await(t, "the binlog that rotated while the archiver ran", archived)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("archiver stopped with %v, want a clean shutdown", err)
	}
	for name, n := range logs.PutCounts() {
		if n != 1 {
			t.Errorf("%s stored %d times", name, n)
		}
	}
	e, _ := pitr.EngineFor("mysql")
	from := pitr.Position{File: first}
	if err := e.Gaps(ctx, "maria", logs, from); err != nil {
		t.Fatalf("gaps after resuming: %v", err)
	}

	// Two binlogs close; the server purges the first before it is archived.
	flush()
	lost := s.closedBinlogs(t)[len(s.closedBinlogs(t))-1]
	flush()
	kept := s.closedBinlogs(t)[len(s.closedBinlogs(t))-1]
	// The server keeps a binlog until its binlog checkpoint has passed it
	// (crash recovery may need it), so purging it can take a few tries.
	testenv.Await(t, "the server to purge "+lost, func() bool {
		s.exec(t, "PURGE BINARY LOGS TO '"+kept+"'")
		return s.closedBinlogs(t)[0] == kept
	})
	var gap *pitr.GapError
	copied, err = mariadb.ArchiveOnce(ctx, s.sc, logs)
	if !errors.As(err, &gap) || gap.Missing != lost || gap.Before != kept {
		t.Fatalf("archiving past a purged binlog: want a gap at %s before %s, got %v", lost, kept, err)
	}
	if !slices.Equal(copied, []string{kept}) {
		t.Fatalf("archived %v past the gap, want %s", copied, kept)
	}
	if err := e.Gaps(ctx, "maria", logs, from); !errors.As(err, &gap) || gap.Missing != lost {
		t.Fatalf("gaps across a purged binlog: want %s missing, got %v", lost, err)
	}
}

func TestGaps(t *testing.T) {
	ctx := context.Background()
	e, _ := pitr.EngineFor("mysql")
	from := pitr.Position{Engine: "mysql", File: "mysql-bin.000003", Offset: 400}
	for _, tc := range []struct {
		name    string
		held    []string
		missing string // "" for no gap
	}{
		{"complete", []string{"mysql-bin.000002", "mysql-bin.000003", "mysql-bin.000004"}, ""},
		{"start only", []string{"mysql-bin.000003"}, ""},
		{"hole", []string{"mysql-bin.000003", "mysql-bin.000004", "mysql-bin.000006"}, "mysql-bin.000005"},
		{"start missing", []string{"mysql-bin.000002", "mysql-bin.000004"}, "mysql-bin.000003"},
		{"empty", nil, "mysql-bin.000003"},
		{"another server's files only", []string{"other-bin.000003"}, "mysql-bin.000003"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := pitrtest.NewMemLogs()
			for _, n := range tc.held {
				logs.Put(ctx, n, strings.NewReader(n))
			}
			err := e.Gaps(ctx, "maria", logs, from)
			var gap *pitr.GapError
			switch {
			case tc.missing == "" && err != nil:
				t.Fatalf("want no gap, got %v", err)
			case tc.missing != "" && (!errors.As(err, &gap) || gap.Missing != tc.missing || gap.Store != "maria"):
				t.Fatalf("want store maria missing %s, got %v", tc.missing, err)
			}
		})
	}
}

// TestRestoreRefuses: bad input is refused before anything is written.
func TestRestoreRefuses(t *testing.T) {
	ctx := context.Background()
	e, _ := pitr.EngineFor("mysql")
	info := pitr.BaseInfo{Start: pitr.Position{File: "mysql-bin.000002", Offset: 500}, Format: mariadb.Format}
	cut := pitr.Position{File: "mysql-bin.000003", Offset: 300}
	for _, tc := range []struct {
		name     string
		info     pitr.BaseInfo
		to       pitr.Position
		occupied bool
		want     string
	}{
		{"non-empty target", info, cut, true, "is not empty"},
		{"cut before the base", info, pitr.Position{File: "mysql-bin.000002", Offset: 499}, false, "before the base backup"},
		{"not a binlog position", info, pitr.Position{LSN: "0/3000060"}, false, "not binlog positions"},
		{"not an xbstream base", pitr.BaseInfo{Start: info.Start, Format: "tar"}, cut, false, "not a mariadb-backup stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if tc.occupied {
				if err := os.MkdirAll(filepath.Join(dir, "shop"), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			err := e.Restore(ctx, strings.NewReader("not read"), tc.info, pitrtest.NewMemLogs(), tc.to, pitr.Target{DataDir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error saying %q, got %v", tc.want, err)
			}
			entries, _ := os.ReadDir(dir)
			if tc.occupied != (len(entries) == 1) || tc.occupied && entries[0].Name() != "shop" {
				t.Fatalf("the target directory changed: %v", entries)
			}
		})
	}
}

// TestLeastPrivileges: the grants docs/pitr-mariadb.md lists are enough
// for a mark, a flush, a base backup and archiving.
func TestLeastPrivileges(t *testing.T) {
	ctx := context.Background()
	s := startSource(t)
	s.exec(t, "CREATE USER 'operator'@'127.0.0.1' IDENTIFIED BY 'op'",
		"GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, REPLICATION SLAVE ON *.* TO 'operator'@'127.0.0.1'")
	sc := s.sc
	sc.DSN = strings.Replace(sc.DSN, "stillpoint:stillpoint@", "operator:op@", 1)
	st, err := mysql.Open(ctx, "maria", sc.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if p, err := s.eng.Mark(ctx, st, "cut"); err != nil || p.GTID == "" {
		t.Errorf("mark on a quiet store: %+v, %v (want a GTID)", p, err)
	}
	if err := mariadb.Flush(ctx, st); err != nil {
		t.Errorf("flush: %v", err)
	}
	if _, err := s.eng.Base(ctx, sc, io.Discard); err != nil {
		t.Errorf("base: %v", err)
	}
	if copied, err := mariadb.ArchiveOnce(ctx, sc, pitrtest.NewMemLogs()); err != nil || len(copied) == 0 {
		t.Errorf("archive: copied %v, %v", copied, err)
	}
}
