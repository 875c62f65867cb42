package backup

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
)

// Restore progress is kept in stillpoint.restore_state (schema.RestoreState),
// so an interrupted restore resumes where it stopped, and a store holding a
// half-finished restore is recognisable as such: verify refuses it.
const (
	wholeRestore    = schema.RestoreWhole
	StateInProgress = schema.RestoreInProgress
	StateComplete   = schema.RestoreComplete
	tableDone       = schema.RestoreTableDone
)

// RestoreOptions control a restore.
type RestoreOptions struct {
	// Force restores over tables that hold data, or over another backup's
	// unfinished restore, replacing them.
	Force    bool
	Parallel int
	// Progress is told of records loaded.
	Progress func(records int64)
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	Backup  string `json:"backup"`
	Tables  int    `json:"tables"`
	Resumed int    `json:"tables_already_restored"`
	Rows    int64  `json:"rows"`
}

// loader is the bulk-load fast path of a store.
type loader interface {
	Load(ctx context.Context, m *storage.TableMetadata, next func() (storage.Record, error)) (int64, error)
	Truncate(ctx context.Context, m *storage.TableMetadata) error
}

// Restore loads every table of a backup into the stores its namespaces map
// to in target, in parallel, with each engine's fast path. Run again after
// an interruption, it finishes the tables that were not done.
func Restore(ctx context.Context, r *repo.Repository, m *Manifest, target *multistorage.Storage, opts RestoreOptions) (*RestoreResult, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	res := &RestoreResult{Backup: m.ID}
	var tables []TableBackup
	for _, s := range m.Stores {
		tables = append(tables, s.Tables...)
	}
	stores := map[string]bool{}
	for _, t := range tables {
		name, err := target.StoreName(t.Metadata.Namespace)
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		stores[name] = true
	}
	names := make([]string, 0, len(stores))
	for n := range stores {
		names = append(names, n)
	}
	if err := target.Ping(ctx, names); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	// A damaged backup must restore nothing: check every chunk first.
	referenced := map[string]bool{}
	m.Referenced(referenced)
	problems, err := r.CheckChunks(ctx, referenced, true, nil)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("restore: backup %s is damaged, nothing was restored: %w", m.ID, err)
	}
	state, err := restoreState(ctx, target)
	if err != nil {
		return nil, err
	}
	whole := state[wholeRestore]
	switch {
	case whole.state == StateComplete && whole.backup == m.ID && !opts.Force:
		return nil, fmt.Errorf("restore: backup %s is already restored into these stores (use --force to restore it again)", m.ID)
	case whole.state == StateInProgress && whole.backup != m.ID && !opts.Force:
		return nil, fmt.Errorf("restore: these stores hold an unfinished restore of backup %s; finish it (stillpoint restore %s) or pass --force to replace it", whole.backup, whole.backup)
	case whole.state == StateInProgress && whole.backup == m.ID && !opts.Force:
		// Resume: tables marked done stay, the others are reloaded.
	default:
		state = map[string]restoreItem{}
		if err := checkEmpty(ctx, target, tables, opts.Force); err != nil {
			return nil, err
		}
	}
	if err := setState(ctx, target, wholeRestore, m.ID, StateInProgress, 0); err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallel)
	var mu sync.Mutex
	for _, t := range tables {
		full := t.Metadata.FullName()
		if it := state[full]; it.state == tableDone && it.backup == m.ID {
			res.Resumed++
			res.Rows += it.rows
			continue
		}
		g.Go(func() error {
			n, err := restoreTable(gctx, r, t, target, opts.Progress)
			if err != nil {
				return fmt.Errorf("restore %s: %w", full, err)
			}
			mu.Lock()
			res.Rows += n
			mu.Unlock()
			return setState(gctx, target, full, m.ID, tableDone, n)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res.Tables = len(tables)
	// Only now does the restore look finished.
	if err := setState(ctx, target, wholeRestore, m.ID, StateComplete, res.Rows); err != nil {
		return nil, err
	}
	return res, nil
}

// checkEmpty refuses tables that exist and hold data, unless force, in
// which case they are dropped.
func checkEmpty(ctx context.Context, target *multistorage.Storage, tables []TableBackup, force bool) error {
	var errs []error
	for _, t := range tables {
		meta := t.Metadata
		existing, err := target.TableMetadata(ctx, meta.Namespace, meta.Table)
		if err != nil || existing == nil {
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if force {
			if err := target.DropTable(ctx, meta.Namespace, meta.Table); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		recs, err := target.ScanAll(ctx, storage.ScanAll{Namespace: meta.Namespace, Table: meta.Table, Limit: 1})
		if err != nil {
			errs = append(errs, err)
		} else if len(recs) > 0 {
			errs = append(errs, fmt.Errorf("restore: table %s already holds data; restore into empty stores, or pass --force to replace it", meta.FullName()))
		}
	}
	return errors.Join(errs...)
}

func restoreTable(ctx context.Context, r *repo.Repository, t TableBackup, target *multistorage.Storage, progress func(int64)) (int64, error) {
	meta := t.Metadata
	existing, err := target.TableMetadata(ctx, meta.Namespace, meta.Table)
	if err != nil {
		return 0, err
	}
	st, err := target.ForNamespace(ctx, meta.Namespace)
	if err != nil {
		return 0, err
	}
	l, ok := st.(loader)
	if !ok {
		return 0, fmt.Errorf("store of %s cannot bulk-load", meta.FullName())
	}
	if existing == nil {
		if err := target.CreateTable(ctx, &meta); err != nil {
			return 0, err
		}
	} else if err := l.Truncate(ctx, &meta); err != nil { // a load that was interrupted
		return 0, err
	}
	rc := r.OpenStream(ctx, t.Chunks)
	defer rc.Close()
	rr, err := NewRowReader(rc, meta.Columns)
	if err != nil {
		return 0, err
	}
	var read int64
	n, err := l.Load(ctx, &meta, func() (storage.Record, error) {
		rec, err := rr.Next()
		if err == nil {
			read++
			if progress != nil && read%1000 == 0 {
				progress(1000)
			}
		}
		return rec, err
	})
	if err != nil {
		return n, err
	}
	if progress != nil {
		progress(read % 1000)
	}
	if n != t.Rows {
		return n, fmt.Errorf("loaded %d records, the manifest says %d", n, t.Rows)
	}
	return n, nil
}

type restoreItem struct {
	backup, state string
	rows          int64
}

// restoreState reads stillpoint.restore_state (empty when there is none).
func restoreState(ctx context.Context, target *multistorage.Storage) (map[string]restoreItem, error) {
	out := map[string]restoreItem{}
	meta, err := target.TableMetadata(ctx, schema.StillpointNamespace, schema.RestoreStateTable)
	if err != nil || meta == nil {
		return out, err
	}
	recs, err := target.ScanAll(ctx, storage.ScanAll{Namespace: schema.StillpointNamespace, Table: schema.RestoreStateTable})
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		it := restoreItem{}
		it.backup, _ = r["backup_id"].(string)
		it.state, _ = r["state"].(string)
		it.rows, _ = r["rows"].(int64)
		out[r["item"].(string)] = it
	}
	return out, nil
}

func setState(ctx context.Context, target *multistorage.Storage, item, backupID, state string, rows int64) error {
	meta, err := target.TableMetadata(ctx, schema.StillpointNamespace, schema.RestoreStateTable)
	if err != nil {
		return err
	}
	if meta == nil {
		if err := target.CreateTable(ctx, schema.RestoreState()); err != nil {
			return err
		}
	}
	return target.Put(ctx, storage.Put{Namespace: schema.StillpointNamespace, Table: schema.RestoreStateTable,
		Values: storage.Record{"item": item, "backup_id": backupID, "state": state, "rows": rows}})
}
