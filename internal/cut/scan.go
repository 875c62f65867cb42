package cut

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// ScanStore is a store without snapshots (DynamoDB, Cassandra) as the cut
// reads it. Such a store is cut by reading all of it while the coordinator
// fence holds: no cheaper capture is exact (docs/no-snapshot-cut.md).
type ScanStore interface {
	// ScanTables lists every table the store holds: all are captured.
	ScanTables(ctx context.Context) ([]*storage.TableMetadata, error)
	// ScanSegment streams the raw records of one segment of a table, every
	// column (the user's, tx_* and before_*) as stored. The segments
	// 0..total-1 partition the table; read in that order, each in its own
	// order, they are the table's order. Every record must be read as it
	// is at some moment during the call (a strongly consistent read:
	// DynamoDB's ConsistentRead), never from a stale replica.
	ScanSegment(ctx context.Context, m *storage.TableMetadata, segment, total int, fn func(storage.Record) error) error
}

// ScanOptions tune how a store without snapshots is read under the fence.
type ScanOptions struct {
	// Segments each table is split into (0: DefaultSegments).
	Segments int
	// Parallel is how many segments are read at once (0: Segments).
	Parallel int
	// SpoolDir receives the records until the backup streams them (""
	// the system's temporary directory): the fence is held for the read
	// only, not for the repository's writes. The spool is a plain copy of
	// the store in a directory only this user can read (no-snapshot-cut.md).
	SpoolDir string
}

// ScanTuned is a ScanStore configured with its own ScanOptions (a
// DynamoDB DSN's scan_segments and spool_dir): EngineOf reads it with
// them, and a store without them with the defaults.
type ScanTuned interface {
	ScanOptions() ScanOptions
}

// ScanSizer is a ScanStore that can say about how many records a table
// holds by its own count (DynamoDB's ItemCount), so that a read that
// outlasts the max hold can say the --fence-max-hold it needs.
type ScanSizer interface {
	EstimateRecords(ctx context.Context, m *storage.TableMetadata) (int64, error)
}

// DefaultSegments splits each table so that a scan is not one sequential
// stream of pages: the fence holds for as long as the slowest segment.
const DefaultSegments = 8

// ScanEngine is the cut engine of a store without snapshots: its
// "snapshot" is a full read of the store, spooled, which Take runs while
// the fence holds, so Take's max hold must allow the read
// (--fence-max-hold). It cannot fence: the coordinator must live in a store
// that can, or the backup runs in pause mode.
func ScanEngine(s ScanStore, o ScanOptions) Engine {
	if o.Segments <= 0 {
		o.Segments = DefaultSegments
	}
	if o.Parallel <= 0 {
		o.Parallel = o.Segments
	}
	return scanEngine{s, o, &scanProgress{}}
}

type scanEngine struct {
	s ScanStore
	o ScanOptions
	p *scanProgress
}

// scanProgress is how far a read has gone, for the advice of one that
// outlasts the max hold.
type scanProgress struct {
	began    atomic.Int64 // when, in Unix nanoseconds
	records  atomic.Int64
	estimate atomic.Int64 // records the store holds by its own count; 0: unknown
}

// slowAdvice says, when the read outlasted the max hold, how fast it went
// and what bound it needs (docs/dynamodb.md, sizing the max hold).
func (e scanEngine) slowAdvice() string {
	n, took := e.p.records.Load(), time.Since(time.Unix(0, e.p.began.Load()))
	if n == 0 {
		return fmt.Sprintf("it read no record in %v: check that it is reachable and not throttled", took.Round(time.Millisecond))
	}
	rate := float64(n) / took.Seconds()
	msg := fmt.Sprintf("it read %d records in %v (%.0f records/s)", n, took.Round(time.Millisecond), rate)
	if est := e.p.estimate.Load(); est > n {
		need := time.Duration(float64(est) / rate * float64(time.Second))
		// Half as long again, rounded up to the second: a read under load
		// goes slower than its first second.
		bound := (need*3/2 + time.Second - 1).Truncate(time.Second)
		return msg + fmt.Sprintf(" of about %d (the store's own count): at that rate the read takes about %v; set --fence-max-hold to %v or more, or read in more segments",
			est, need.Round(100*time.Millisecond), bound)
	}
	return msg + ": set --fence-max-hold to the store's records divided by that rate, and half as long again"
}

func (scanEngine) AcquireFence(context.Context, time.Duration) (Fence, error) {
	return nil, errors.New("a store without snapshots cannot hold the coordinator fence: put the coordinator namespace on a store that can (PostgreSQL, MariaDB, SQLite), or back up in pause mode")
}

// scannedTable is one table's spool: a file per segment.
type scannedTable struct {
	m     *storage.TableMetadata
	files []string
}

// scanSnapshot serves a store read under the fence from its spool.
type scanSnapshot struct {
	dir    string
	tables map[string]*scannedTable
	point  string
}

// spooled is one record in a spool: its non-NULL values by column index
// (gob cannot carry a nil in an interface).
type spooled struct {
	Cols []int
	Vals []any
}

func init() { gob.Register(time.Time{}) }

// OpenSnapshot reads every table of the store, segments in parallel, into
// the spool. Cancelling ctx (Take's max hold) stops the read and removes
// the spool.
func (e scanEngine) OpenSnapshot(ctx context.Context) (Snapshot, error) {
	began := time.Now()
	tables, err := e.s.ScanTables(ctx)
	if err != nil {
		return nil, err
	}
	for i, m := range tables {
		if m == nil {
			return nil, fmt.Errorf("the store listed table %d of %d without its metadata", i+1, len(tables))
		}
	}
	e.p.began.Store(began.UnixNano())
	e.p.records.Store(0)
	e.p.estimate.Store(0)
	if sz, ok := e.s.(ScanSizer); ok {
		// Beside the read, not before it: only a slow read's advice needs it.
		go func() {
			var total int64
			for _, m := range tables {
				n, err := sz.EstimateRecords(ctx, m)
				if err != nil {
					return
				}
				total += n
			}
			e.p.estimate.Store(total)
		}()
	}
	dir, err := os.MkdirTemp(e.o.SpoolDir, "stillpoint-scan-")
	if err != nil {
		return nil, fmt.Errorf("scan spool: %w", err)
	}
	snap := &scanSnapshot{dir: dir, tables: map[string]*scannedTable{}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.o.Parallel)
	var mu sync.Mutex
	var records int64
	for i, m := range tables {
		t := &scannedTable{m: m}
		snap.tables[m.FullName()] = t
		for seg := range e.o.Segments {
			file := filepath.Join(dir, fmt.Sprintf("%d-%d", i, seg))
			t.files = append(t.files, file)
			g.Go(func() error {
				n, err := e.spool(gctx, m, seg, file)
				mu.Lock()
				records += n
				mu.Unlock()
				if err != nil {
					return fmt.Errorf("scan %s segment %d of %d: %w", m.FullName(), seg, e.o.Segments, err)
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		snap.Close()
		return nil, err
	}
	took := time.Since(began)
	// The rate is what --fence-max-hold is sized from (docs/dynamodb.md).
	snap.point = fmt.Sprintf("read whole: %d tables, %d records, %d segments each, in %v (%.0f records/s)",
		len(tables), records, e.o.Segments, took.Round(time.Millisecond), float64(records)/took.Seconds())
	return snap, nil
}

// spool writes one segment's records to file.
func (e scanEngine) spool(ctx context.Context, m *storage.TableMetadata, seg int, file string) (n int64, err error) {
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w := bufio.NewWriter(f)
	enc := gob.NewEncoder(w)
	err = e.s.ScanSegment(ctx, m, seg, e.o.Segments, func(rec storage.Record) error {
		var s spooled
		for i, c := range m.Columns {
			if v := rec[c.Name]; v != nil {
				s.Cols, s.Vals = append(s.Cols, i), append(s.Vals, v)
			}
		}
		n++
		e.p.records.Add(1)
		return enc.Encode(&s)
	})
	if err != nil {
		return n, err
	}
	return n, w.Flush()
}

func (s *scanSnapshot) Point() string { return s.point }

// ReadTable streams a table from the spool, segment after segment.
func (s *scanSnapshot) ReadTable(ctx context.Context, m *storage.TableMetadata, fn func(storage.Record) error) error {
	t, ok := s.tables[m.FullName()]
	if !ok {
		return fmt.Errorf("table %s was not in the store when it was read under the fence", m.FullName())
	}
	if len(t.m.Columns) != len(m.Columns) {
		return fmt.Errorf("table %s has %d columns, but had %d when it was read under the fence: back up again", m.FullName(), len(m.Columns), len(t.m.Columns))
	}
	for _, file := range t.files {
		if err := readSpool(ctx, file, t.m.Columns, fn); err != nil {
			return fmt.Errorf("read the spool of %s: %w", m.FullName(), err)
		}
	}
	return nil
}

func readSpool(ctx context.Context, file string, cols []storage.Column, fn func(storage.Record) error) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := gob.NewDecoder(f)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var sp spooled
		if err := dec.Decode(&sp); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		rec := storage.Record{}
		for i, c := range sp.Cols {
			rec[cols[c].Name] = sp.Vals[i]
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// Close removes the spool.
func (s *scanSnapshot) Close() error { return os.RemoveAll(s.dir) }
