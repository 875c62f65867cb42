// Package restore is the restore stage: it recreates a backup's tables and
// metadata in the target stores (any engine), loads them in parallel with
// each engine's fast path, and finishes the cut by lazy recovery, so that
// a restore that says it is done left a complete, settled state. Progress
// is kept in a journal (journal.go): a run that was stopped at any moment
// is finished by the next one.
package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/hint"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/txn"
)

// Options control a restore.
type Options struct {
	// Force restores over tables that hold data (or exist in any other
	// state), or over another backup's unfinished restore, replacing them.
	Force    bool
	Parallel int
	// Progress is told of records loaded.
	Progress func(records int64)
	// LimitMemory bounds the process's memory to what the loads need
	// (repo.LimitMemory), unless GOMEMLIMIT or GOGC say otherwise. For a
	// process that runs one restore at a time (the command line).
	LimitMemory bool
}

// loadMemory is what each table load holds besides its chunks: the row
// reader's buffer and row, the driver's COPY buffers or MariaDB's LOAD DATA
// batches (three of at most 4 MiB).
const loadMemory = 13 << 20

// Result says what a restore did.
type Result struct {
	Backup  string `json:"backup"`
	Tables  int    `json:"tables"`
	Resumed int    `json:"tables_already_restored"`
	Rows    int64  `json:"rows"`
	// Recovery is what finishing the cut settled. A rerun after a stop
	// during recovery reports what it settled itself.
	Recovery txn.Settled `json:"recovery"`
	// AlreadyComplete: an earlier run completed this restore and was
	// stopped while it removed its journal; this run only removed it.
	AlreadyComplete bool `json:"already_complete,omitempty"`
	// DDL says how the backup's tables are created (docs/ddl.md).
	DDL DDLCounts `json:"ddl"`
}

// DDLCounts counts the tables created from the DDL the backup captured
// (same engine), by the type mapping (another engine), and from the
// metadata alone (a manifest written before DDL was captured).
type DDLCounts struct {
	Replayed     int `json:"replayed"`
	Mapped       int `json:"mapped"`
	FromMetadata int `json:"from_metadata"`
}

// table is one table of the backup and the store it goes to.
type table struct {
	backup backup.TableBackup
	full   string
	store  string
	d      Destination
	limits storage.Limits
	// namespace is the definition of the table's namespace in the backup;
	// replay says the table and its namespace are recreated from the
	// captured DDL (same engine), else from the metadata.
	namespace *storage.NamespaceDefinition
	replay    bool
	// pending are the keys of the pending records this run loaded (nil:
	// not loaded by this run, or not transactional).
	pending *pendingRows
}

// plan is a restore's tables and the journal's store.
type plan struct {
	tables  []*table
	journal *journal
	// metadata is, per target store, the metadata table's captured DDL to
	// create it with (from a source store of the same engine).
	metadata map[string]metadataDDL
}

type metadataDDL struct {
	d      Destination
	table  *storage.TableDefinition
	schema *storage.NamespaceDefinition
}

func newPlan(ctx context.Context, t Target, m *backup.Manifest, w *writers) (*plan, error) {
	if m.DDLFormat > storage.DefinitionFormat {
		return nil, fmt.Errorf("restore: backup %s records its DDL in format %d; this Stillpoint reads up to %d: restore it with a newer Stillpoint", m.ID, m.DDLFormat, storage.DefinitionFormat)
	}
	p := &plan{metadata: map[string]metadataDDL{}}
	var errs []error
	for _, s := range m.Stores {
		for _, tb := range s.Tables {
			name, d, err := t.Destination(ctx, tb.Metadata.Namespace)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			limits, err := t.Limits(tb.Metadata.Namespace)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ns := s.Namespaces[tb.Metadata.Namespace]
			replay := tb.Definition != nil && tb.Definition.Engine == d.Engine() && (ns == nil || ns.Engine == d.Engine())
			p.tables = append(p.tables, &table{backup: tb, full: tb.Metadata.FullName(), store: name, d: d, limits: limits, namespace: ns, replay: replay})
			// The first source store of the same engine gives the metadata
			// table's DDL.
			if _, ok := p.metadata[name]; !ok && s.MetadataTable != nil && s.MetadataTable.Engine == d.Engine() {
				p.metadata[name] = metadataDDL{d: d, table: s.MetadataTable, schema: s.MetadataSchema}
			}
		}
	}
	name, d, err := t.Destination(ctx, config.StillpointNamespace)
	if err != nil {
		errs = append(errs, err)
	}
	limits, err := t.Limits(config.StillpointNamespace)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	p.journal = &journal{st: t, name: name, d: d, limits: limits, writers: w, backup: m.ID}
	return p, nil
}

// Run restores backup m from r into t. Run again after an interruption at
// any point, it finishes what the earlier run started.
func Run(ctx context.Context, r *repo.Repository, m *backup.Manifest, t Target, opts Options) (*Result, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	w := &writers{}
	p, err := newPlan(ctx, t, m, w)
	if err != nil {
		return nil, err
	}
	// Every chunk must be there before anything is created; each is read
	// once, verified while it loads (docs/restore.md, step 2).
	referenced := map[string]bool{}
	m.Referenced(referenced)
	problems, err := r.CheckChunks(ctx, referenced, false, nil)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("restore: backup %s is damaged, nothing was restored: %w", m.ID, err)
	}
	slog.Info("restore: every chunk of the backup is in the repository", "id", m.ID, "chunks", len(referenced))
	if err := validateTargetTables(ctx, r, t, p); err != nil {
		return nil, err
	}
	res := &Result{Backup: m.ID, Tables: len(p.tables)}
	for _, t := range p.tables {
		switch {
		case t.replay:
			res.DDL.Replayed++
		case t.backup.Definition != nil:
			res.DDL.Mapped++
		default:
			res.DDL.FromMetadata++
		}
	}
	j, err := readJournal(ctx, t)
	if err != nil {
		return nil, err
	}
	whole := j[wholeItem]
	switch {
	case whole.state == stateComplete && whole.backup == m.ID && !opts.Force:
		res.AlreadyComplete, res.Resumed, res.Rows = true, len(p.tables), whole.rows
		return res, p.journal.remove(ctx)
	case whole.state == stateInProgress && whole.backup != m.ID && !opts.Force:
		return nil, hint.Run(fmt.Errorf("restore: these stores hold an unfinished restore of backup %s: finish it, or pass --force to replace it", whole.backup), "restore", whole.backup)
	case whole.state == stateInProgress && !opts.Force:
		// Resume: tables marked done stay, if they still are what the
		// backup holds; every other one is purged and loaded again.
	default:
		if whole.state == "" { // no journal, or the remains of one
			if err := p.journal.clear(ctx); err != nil {
				return nil, err
			}
		}
		j = nil
		if err := checkTargets(ctx, t, p, opts.Force); err != nil {
			return nil, err
		}
		// Before the journal, which would create the metadata table with
		// Stillpoint's own DDL.
		if err := createMetadataTables(ctx, p); err != nil {
			return nil, err
		}
		if err := p.journal.start(ctx); err != nil {
			return nil, err
		}
	}
	slog.Info("restore: journal started; creating the tables", "id", m.ID, "tables", len(p.tables))
	todo, err := createTables(ctx, p, j, res)
	if err != nil {
		return nil, err
	}
	slog.Info("restore: tables created", "id", m.ID, "to_load", len(todo), "already_loaded", res.Resumed)
	if opts.LimitMemory {
		loads := min(opts.Parallel, len(todo))
		defer repo.LimitMemory("restore", r.LoadMemory(loads)+int64(loads)*loadMemory)()
	}
	if err := loadTables(ctx, r, p, w, todo, opts, res); err != nil {
		if damaged(err) {
			return nil, fmt.Errorf("restore: backup %s is damaged: %w; the restore is left unfinished (its journal says so, and verify and restore refuse these stores until it is replaced): restore another backup with --force", m.ID, err)
		}
		return nil, err
	}
	if res.Recovery, err = settle(ctx, t, p); err != nil {
		return nil, err
	}
	slog.Info("restore: cut finished", "id", m.ID, "rolled_forward", res.Recovery.RolledForward, "rolled_back", res.Recovery.RolledBack)
	// Only now is the restore complete; the journal goes after.
	if err := p.journal.mark(ctx, wholeItem, stateComplete, res.Rows); err != nil {
		return nil, err
	}
	return res, p.journal.remove(ctx)
}

// createTables makes every table not yet loaded, one at a time (DDL is
// quick, and engines race on concurrent namespace creation): the table and
// its metadata are purged, in whatever state an interrupted run left them,
// and created again. A table the journal says is loaded stays only if its
// metadata is still the backup's. It returns the tables to load.
func createTables(ctx context.Context, p *plan, j map[string]entry, res *Result) ([]*table, error) {
	namespaces := map[string]bool{}
	var todo []*table
	for _, t := range p.tables {
		meta := &t.backup.Metadata
		if e := j[t.full]; e.state == stateDone {
			existing, err := t.d.TableMetadata(ctx, meta.Namespace, meta.Table)
			if err != nil {
				return nil, err
			}
			if existing != nil && sameLayout(existing, meta) {
				res.Resumed++
				res.Rows += e.rows
				continue
			}
		}
		err := retried(ctx, func() error {
			if !namespaces[meta.Namespace] {
				if err := createNamespace(ctx, t); err != nil {
					return err
				}
				namespaces[meta.Namespace] = true
			}
			if err := t.d.PurgeTable(ctx, meta.Namespace, meta.Table); err != nil {
				return err
			}
			if t.replay {
				return t.d.CreateTableFrom(ctx, meta, t.backup.Definition)
			}
			return t.d.CreateTable(ctx, meta)
		})
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", t.full, err)
		}
		todo = append(todo, t)
	}
	return todo, nil
}

// createNamespace creates a table's namespace as the backup's DDL says on
// the same engine, else as Stillpoint creates namespaces.
func createNamespace(ctx context.Context, t *table) error {
	if t.replay && t.namespace != nil {
		return t.d.CreateNamespaceFrom(ctx, t.backup.Metadata.Namespace, t.namespace)
	}
	return t.d.CreateNamespace(ctx, t.backup.Metadata.Namespace)
}

// createMetadataTables creates each target store's metadata table with the
// DDL the backup captured on the same engine, unless it exists.
func createMetadataTables(ctx context.Context, p *plan) error {
	for name, md := range p.metadata {
		if err := retried(ctx, func() error { return md.d.CreateMetadataFrom(ctx, md.table, md.schema) }); err != nil {
			return fmt.Errorf("restore: the metadata table of store %s: %w", name, err)
		}
	}
	return nil
}

// loadTables loads tables in parallel, one writer at a time in stores
// whose engine takes one, and marks each done in the journal.
func loadTables(ctx context.Context, r *repo.Repository, p *plan, w *writers, todo []*table, opts Options, res *Result) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallel)
	var mu sync.Mutex
	for _, t := range todo {
		g.Go(func() error {
			unlock := w.lock(t.store, t.limits)
			began := time.Now()
			slog.Info("restore: loading table", "table", t.full, "store", t.store)
			n, err := loadTable(gctx, r, t, opts.Progress)
			unlock()
			if err != nil {
				return fmt.Errorf("restore %s: %w", t.full, err)
			}
			slog.Info("restore: table loaded", "table", t.full, "store", t.store, "rows", n, "took", time.Since(began))
			mu.Lock()
			res.Rows += n
			mu.Unlock()
			return p.journal.mark(gctx, t.full, stateDone, n)
		})
	}
	return g.Wait()
}

func loadTable(ctx context.Context, r *repo.Repository, t *table, progress func(int64)) (int64, error) {
	rr, closeStream, err := backup.OpenTableReader(ctx, r, t.backup)
	if err != nil {
		return 0, err
	}
	defer closeStream()
	m := &t.backup.Metadata
	var read int64
	count := func() {
		read++
		if progress != nil && read%1000 == 0 {
			progress(1000)
		}
	}
	pending := newPendingRows(m)
	var n int64
	if vl, ok := t.d.(ValuesLoader); ok {
		n, err = vl.LoadValues(ctx, m, watched(rr.NextValues, func(v *sqlstore.Values) { pending.addValues(v); count() }))
	} else {
		n, err = loadRows(ctx, t.d, m, watched(rr.NextRow, func(row []any) { pending.add(row); count() }))
	}
	if err != nil {
		return n, err
	}
	if progress != nil {
		progress(read % 1000)
	}
	if n != t.backup.Rows {
		return n, fmt.Errorf("loaded %d records, the manifest says %d", n, t.backup.Rows)
	}
	t.pending = pending
	return n, nil
}

// watched calls seen with each row next gives.
func watched[T any](next func() (T, error), seen func(T)) func() (T, error) {
	return func() (T, error) {
		x, err := next()
		if err == nil {
			seen(x)
		}
		return x, err
	}
}

// loadRows loads rows into a table: positionally where the store can
// (RowLoader), else as records.
func loadRows(ctx context.Context, d Destination, m *storage.TableMetadata, next func() ([]any, error)) (int64, error) {
	if rl, ok := d.(RowLoader); ok {
		return rl.LoadRows(ctx, m, next)
	}
	return d.Load(ctx, m, func() (storage.Record, error) {
		row, err := next()
		if err != nil {
			return nil, err
		}
		return m.Record(row), nil
	})
}

// damaged reports whether a load failed on the backup itself: a chunk
// missing or not matching its name, or a table stream that does not decode.
func damaged(err error) bool {
	var ce *repo.CorruptError
	var me *repo.MissingError
	return errors.As(err, &ce) || errors.As(err, &me) || errors.Is(err, backup.ErrTruncated) || errors.Is(err, backup.ErrCorrupt)
}
