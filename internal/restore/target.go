package restore

import (
	"context"
	"fmt"
	"sync"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// Target is the stores a restore writes into, routed by namespace.
type Target interface {
	// Store reads and writes records of any namespace: the journal, the
	// checks, and the recovery that finishes the cut.
	storage.Store
	// Target routes namespaces to stores and knows their engines' limits,
	// so the names a backup brings are checked as a schema load checks them.
	schema.Target
	// Destination returns the store that will hold a namespace, and its
	// name (stores are shared by namespaces; writer locks are per store).
	Destination(ctx context.Context, namespace string) (name string, d Destination, err error)
}

// Destination is what restore needs of one store.
type Destination interface {
	TableAdmin
	BulkLoader
	// DefinitionAdmin replays the DDL a backup captured on the same engine.
	storage.DefinitionAdmin
}

// TableAdmin creates namespaces and tables with their metadata, and gets
// rid of what an interrupted creation left.
type TableAdmin interface {
	CreateNamespace(ctx context.Context, namespace string) error
	DropNamespace(ctx context.Context, namespace string) error
	Namespaces(ctx context.Context) ([]string, error)
	CreateTable(ctx context.Context, m *storage.TableMetadata) error
	DropTable(ctx context.Context, namespace, table string) error
	// TableMetadata returns what the metadata rows say (nil: none).
	TableMetadata(ctx context.Context, namespace, table string) (*storage.TableMetadata, error)
	// HasTable tells whether the table exists, whatever its metadata says.
	HasTable(ctx context.Context, namespace, table string) (bool, error)
	// PurgeTable drops the table and its metadata rows, in any state.
	PurgeTable(ctx context.Context, namespace, table string) error
}

// BulkLoader writes records into an empty table with the engine's fast
// path; next returns io.EOF after the last record.
type BulkLoader interface {
	Load(ctx context.Context, m *storage.TableMetadata, next func() (storage.Record, error)) (int64, error)
}

// RowLoader is a BulkLoader that also takes rows (values in the order of
// m.Columns; next may reuse its slice): no map per record. Restore uses it
// when a store has it, Load otherwise.
type RowLoader interface {
	LoadRows(ctx context.Context, m *storage.TableMetadata, next func() ([]any, error)) (int64, error)
}

// ValuesLoader is a RowLoader that also takes rows in typed slots, read
// from the backup's stream without an any per value; restore prefers it
// (docs/performance.md, "PostgreSQL restore").
type ValuesLoader interface {
	LoadValues(ctx context.Context, m *storage.TableMetadata, next func() (*sqlstore.Values, error)) (int64, error)
}

// Stores is the Target of a configuration's stores.
func Stores(st *multistorage.Storage) Target { return stores{st} }

type stores struct{ *multistorage.Storage }

func (s stores) Destination(ctx context.Context, namespace string) (string, Destination, error) {
	name, err := s.StoreName(namespace)
	if err != nil {
		return "", nil, err
	}
	st, err := s.Store(ctx, name)
	if err != nil {
		return "", nil, err
	}
	d, ok := st.(Destination)
	if !ok {
		return "", nil, fmt.Errorf("store %s cannot be restored into: it has no bulk load or table purge", name)
	}
	return name, d, nil
}

// writers serialises the writers of stores whose engine takes one writer
// at a time, so parallel loaders queue here instead of failing busy.
type writers struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// lock takes the writer lock of a store if its engine needs one, and
// returns its release.
func (w *writers) lock(name string, limits storage.Limits) (unlock func()) {
	if !limits.SingleWriter {
		return func() {}
	}
	w.mu.Lock()
	if w.locks == nil {
		w.locks = map[string]*sync.Mutex{}
	}
	l, ok := w.locks[name]
	if !ok {
		l = &sync.Mutex{}
		w.locks[name] = l
	}
	w.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// retried runs a DDL step again if it fails once. The database session of
// a killed earlier run can still be finishing its last statement (a server
// notices its client is gone only after the statement) and commit it
// beside ours; ours then fails on what it created ("already exists", a
// duplicate catalog key), and a second attempt sees it.
func retried(ctx context.Context, step func() error) error {
	err := step()
	if err != nil && ctx.Err() == nil {
		err = step()
	}
	return err
}
