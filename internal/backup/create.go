package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
)

// Options control a backup.
type Options struct {
	Mode Mode
	// FenceTimeout bounds the wait for the fence; the backup fails (and
	// releases everything) rather than block commits longer.
	FenceTimeout time.Duration
	// FenceMaxHold bounds how long the fence blocks commit decisions (in
	// pause mode, how long the paused servers wait) while the snapshots
	// open (0: cut.DefaultMaxHold); past it the backup releases the fence
	// (unpauses), fails naming the slow stores, and records nothing.
	FenceMaxHold time.Duration
	// Parallel is how many tables stream at once.
	Parallel int
	// Fleet and PauseWait are the servers to pause in pause mode, and how
	// long they may take to drain; PauseRenew how often their pause leases
	// are renewed while the snapshots open (0: never).
	Fleet      *admin.Fleet
	PauseWait  time.Duration
	PauseRenew time.Duration
	// Expect is told, before the tables stream, about how many rows they
	// hold, from the engines' statistics (an estimate: the count streamed
	// may differ). Progress is told of rows streamed, as they go.
	Expect   func(rows int64)
	Progress func(rows int64)
	// RetryLock: how long to wait for the repository's lock while another
	// process holds it (0: fail at once).
	RetryLock time.Duration
	// LimitMemory sets the process's soft memory limit and garbage
	// collection target for the backup (limitMemory), unless GOMEMLIMIT or
	// GOGC set them. For a process that runs one backup at a time (the
	// command line); a server leaves it off.
	LimitMemory bool
}

// job is one table to stream.
type job struct {
	store string
	table *storage.TableMetadata
}

// Create takes a backup of every store into the repository and returns
// its manifest. A backup that fails leaves no manifest: it is not listed,
// and the chunks it wrote are removed by the next prune.
func Create(ctx context.Context, st *multistorage.Storage, r *repo.Repository, opts Options) (*Manifest, error) {
	if opts.FenceTimeout <= 0 {
		opts.FenceTimeout = 5 * time.Second
	}
	if opts.FenceMaxHold <= 0 {
		opts.FenceMaxHold = cut.DefaultMaxHold
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	host, _ := os.Hostname()
	// Held until the manifest is saved, which checks it is still ours: a
	// prune that ran meanwhile may have deleted chunks deduplicated against.
	lk, err := r.LockWaiting(ctx, fmt.Sprintf("stillpoint backup create (%s, pid %d)", host, os.Getpid()), opts.RetryLock)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	m := &Manifest{ID: NewID(time.Now(), randomSuffix()), Mode: opts.Mode, Started: time.Now().UTC(), Encrypted: r.Encrypted()}
	if m.Coordinator, err = st.StoreName("coordinator"); err != nil {
		return nil, err
	}
	stores, jobs, err := inventory(ctx, st, m)
	if err != nil {
		return nil, err
	}
	slog.Info("backup: started", "id", m.ID, "mode", m.Mode, "stores", len(stores), "tables", len(jobs))
	if opts.LimitMemory {
		restore, err := limitMemory(ctx, r, min(opts.Parallel, len(jobs)))
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	if opts.Expect != nil {
		opts.Expect(estimateRows(ctx, stores, jobs))
	}
	engines := map[string]cut.Engine{}
	for name, s := range stores {
		if engines[name], err = cut.EngineOf(s); err != nil {
			return nil, err
		}
	}
	results := map[job]TableBackup{}
	defs := map[job]*storage.TableDefinition{}
	switch opts.Mode {
	case Fence, Pause:
		c, err := takeCut(ctx, m, engines, opts)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		for i := range m.Stores {
			s := &m.Stores[i]
			s.CutPoint = c.Snapshots[s.Name].Point()
			if err := capture(ctx, c.Snapshots[s.Name], s, jobsOf(jobs, s.Name), defs); err != nil {
				return nil, err
			}
		}
		if err := stream(ctx, r, c.Snapshots, jobs, opts, results); err != nil {
			return nil, err
		}
	case Independent:
		// One store after another, each at its own moment: no cut.
		for i, s := range m.Stores {
			c, err := cut.Open(ctx, map[string]cut.Engine{s.Name: engines[s.Name]}, 0)
			if err != nil {
				return nil, err
			}
			m.Stores[i].CutPoint = c.Snapshots[s.Name].Point()
			err = capture(ctx, c.Snapshots[s.Name], &m.Stores[i], jobsOf(jobs, s.Name), defs)
			if err == nil {
				err = stream(ctx, r, c.Snapshots, jobsOf(jobs, s.Name), opts, results)
			}
			c.Close()
			if err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("unknown backup mode %q", opts.Mode)
	}
	for i := range m.Stores {
		s := &m.Stores[i]
		for _, j := range jobsOf(jobs, s.Name) {
			tb := results[j]
			tb.Definition = defs[j]
			if tb.Definition != nil {
				m.DDLFormat = storage.DefinitionFormat
			}
			s.Tables = append(s.Tables, tb)
			s.Rows += tb.Rows
			s.Bytes += tb.Bytes
			m.NewBytes += tb.NewBytes
		}
		m.Rows += s.Rows
		m.Bytes += s.Bytes
	}
	m.Finished = time.Now().UTC()
	data, err := m.Encode()
	if err != nil {
		return nil, err
	}
	// The manifest goes last: until it is written, the backup does not exist.
	if err := r.SaveManifest(ctx, lk, m.ID, data); err != nil {
		return nil, err
	}
	slog.Info("backup: recorded", "id", m.ID, "rows", m.Rows, "bytes", m.Bytes, "new_bytes", m.NewBytes, "took", m.Finished.Sub(m.Started))
	return m, nil
}

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// inventory lists the stores and the tables each holds.
func inventory(ctx context.Context, st *multistorage.Storage, m *Manifest) (map[string]storage.Store, []job, error) {
	namespaces, err := st.Namespaces(ctx)
	if err != nil {
		return nil, nil, err
	}
	stores := map[string]storage.Store{}
	var jobs []job
	for _, ns := range namespaces {
		if ns == config.StillpointNamespace { // bookkeeping of this installation, not data
			continue
		}
		name, err := st.StoreName(ns)
		if err != nil {
			return nil, nil, err
		}
		s, err := st.Store(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		if _, ok := stores[name]; !ok {
			info, err := s.Info(ctx)
			if err != nil {
				return nil, nil, err
			}
			stores[name] = s
			m.Stores = append(m.Stores, StoreBackup{Name: name, Engine: info.Engine, Version: info.Version})
		}
		tables, err := s.Tables(ctx, ns)
		if err != nil {
			return nil, nil, err
		}
		for _, t := range tables {
			meta, err := s.TableMetadata(ctx, ns, t)
			if err != nil {
				return nil, nil, err
			}
			if meta != nil {
				jobs = append(jobs, job{store: name, table: meta})
			}
		}
	}
	if _, ok := stores[m.Coordinator]; !ok {
		return nil, nil, fmt.Errorf("the coordinator store %s holds no coordinator.state: load a schema with transactional tables first", m.Coordinator)
	}
	slices.SortFunc(m.Stores, func(a, b StoreBackup) int { return cmpString(a.Name, b.Name) })
	return stores, jobs, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func jobsOf(jobs []job, store string) []job {
	var out []job
	for _, j := range jobs {
		if j.store == store {
			out = append(out, j)
		}
	}
	return out
}

// takeCut cuts every store: under the coordinator fence, or while every
// server is paused.
func takeCut(ctx context.Context, m *Manifest, engines map[string]cut.Engine, opts Options) (*cut.Cut, error) {
	if opts.Mode == Fence {
		c, err := cut.Take(ctx, m.Coordinator, engines, opts.FenceTimeout, opts.FenceMaxHold)
		if err != nil {
			return nil, err
		}
		m.CutAt, m.FenceWait, m.FenceHold = c.At.UTC(), c.FenceWait, c.FenceHold
		return c, nil
	}
	if opts.Fleet == nil {
		return nil, errors.New("pause mode needs the servers to pause (--servers or -s)")
	}
	p, err := opts.Fleet.PauseAll(ctx, true, opts.PauseWait)
	if err != nil {
		return nil, err
	}
	// The same window as admin pause --duration: the snapshots open while
	// the pause is held, and the window counts only if every server stayed
	// paused through it.
	var c *cut.Cut
	w, err := opts.Fleet.Hold(ctx, p, opts.PauseRenew, func(ctx context.Context) error {
		var err error
		c, err = cut.Open(ctx, engines, opts.FenceMaxHold)
		return err
	})
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("pause mode: %w", err)
	}
	m.CutAt = w.End.UTC()
	m.PausedWindow = &Window{Start: w.Start.UTC(), End: w.End.UTC(), Targets: w.Targets}
	return c, nil
}

// capture records the definitions of a store's namespaces, tables and
// metadata table as its catalog has them, read in its snapshot (see
// docs/ddl.md for what each engine's catalog shows there). Engines that
// cannot read their catalog through the snapshot record none, and restore
// as before.
func capture(ctx context.Context, snap cut.Snapshot, s *StoreBackup, jobs []job, defs map[job]*storage.TableDefinition) error {
	cs, ok := snap.(storage.CatalogSnapshot)
	if !ok {
		return nil
	}
	err := cs.Catalog(ctx, func(c storage.Catalog) error {
		var err error
		if s.MetadataTable, s.MetadataSchema, err = c.DescribeMetadata(ctx); err != nil {
			return err
		}
		s.Namespaces = map[string]*storage.NamespaceDefinition{}
		for _, j := range jobs {
			ns := j.table.Namespace
			if _, ok := s.Namespaces[ns]; !ok {
				if s.Namespaces[ns], err = c.DescribeNamespace(ctx, ns); err != nil {
					return err
				}
			}
			if defs[j], err = c.DescribeTable(ctx, ns, j.table.Table); err != nil {
				return err
			}
			if defs[j] == nil {
				return fmt.Errorf("table %s has metadata rows but does not exist", j.table.FullName())
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("back up store %s: capture its DDL: %w", s.Name, err)
	}
	return nil
}

// stream writes every job's table from its snapshot into the repository.
func stream(ctx context.Context, r *repo.Repository, snaps map[string]cut.Snapshot, jobs []job, opts Options, results map[job]TableBackup) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallel)
	var mu sync.Mutex
	for _, j := range jobs {
		g.Go(func() error {
			began := time.Now()
			slog.Info("backup: streaming table", "table", j.table.FullName(), "store", j.store)
			tb, err := streamTable(gctx, r, snaps[j.store], j.table, opts.Progress)
			if err != nil {
				return fmt.Errorf("back up %s from store %s: %w", j.table.FullName(), j.store, err)
			}
			slog.Info("backup: table streamed", "table", j.table.FullName(), "store", j.store, "rows", tb.Rows, "bytes", tb.Bytes, "new_bytes", tb.NewBytes, "chunks", len(tb.Chunks), "took", time.Since(began))
			mu.Lock()
			results[j] = tb
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// progressEvery is how many rows a table streams between progress reports.
const progressEvery = 1000

// estimateRows sums the engines' row estimates of the tables (a table
// whose engine keeps none counts 0): a total for progress only.
func estimateRows(ctx context.Context, stores map[string]storage.Store, jobs []job) int64 {
	type estimator interface {
		EstimateRows(ctx context.Context, namespace, table string) (int64, error)
	}
	var total int64
	for _, j := range jobs {
		e, ok := stores[j.store].(estimator)
		if !ok {
			continue
		}
		n, err := e.EstimateRows(ctx, j.table.Namespace, j.table.Table)
		if err != nil {
			slog.Debug("backup: no row estimate", "table", j.table.FullName(), "err", err)
		}
		total += max(n, 0)
	}
	return total
}

func streamTable(ctx context.Context, r *repo.Repository, snap cut.Snapshot, m *storage.TableMetadata, progress func(int64)) (TableBackup, error) {
	pr, pw := io.Pipe()
	rows := make(chan int64, 1)
	keys := NewKeyLengths(m)
	go func() {
		var n int64
		rw, err := NewRowWriter(pw, m.Columns)
		if err == nil {
			var unreported int64
			err = readRows(ctx, snap, m, func(row []any) error {
				keys.Add(row)
				if unreported++; progress != nil && unreported == progressEvery {
					progress(unreported)
					unreported = 0
				}
				return rw.WriteRow(row)
			})
			if progress != nil && unreported > 0 {
				progress(unreported)
			}
		}
		if err == nil {
			err = rw.Close()
			n = rw.Rows()
		}
		pw.CloseWithError(err)
		rows <- n
	}()
	s, err := r.SaveStream(ctx, pr, nil)
	pr.CloseWithError(err) // unblock the reading goroutine if saving failed
	n := <-rows
	if err != nil {
		return TableBackup{}, err
	}
	return TableBackup{Metadata: *m, Rows: n, Bytes: s.Bytes, NewBytes: s.NewBytes, Chunks: s.Chunks, KeyLengths: keys.Max}, nil
}

// readRows streams a table's rows from a snapshot: positionally where the
// snapshot can (cut.RowSnapshot), else from its records.
func readRows(ctx context.Context, snap cut.Snapshot, m *storage.TableMetadata, fn func(row []any) error) error {
	if rs, ok := snap.(cut.RowSnapshot); ok {
		return rs.ReadRows(ctx, m, fn)
	}
	row := make([]any, 0, len(m.Columns))
	return snap.ReadTable(ctx, m, func(rec storage.Record) error { return fn(m.Row(rec, row)) })
}

// streamMemory is what each table stream holds on the backup's side: the
// row writer's buffer, the pipe, the driver's read buffers and a row.
const streamMemory = 1 << 20

// limitMemory loads the repository's known chunks, which the backup
// keeps, then limits the process's memory to what streams table streams
// and the repository's pipeline need (repo.LimitMemory).
func limitMemory(ctx context.Context, r *repo.Repository, streams int) (func(), error) {
	if err := r.LoadKnown(ctx); err != nil {
		return nil, err
	}
	return repo.LimitMemory("backup", r.SaveMemory(streams)+int64(streams)*streamMemory), nil
}
