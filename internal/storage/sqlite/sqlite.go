// Package sqlite is the embedded default engine: one SQLite database file
// per store, through the pure-Go modernc.org/sqlite driver.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

func init() {
	storage.RegisterEngine(storage.Engine{Name: "sqlite", Limits: limits,
		Open: storage.Opener(func(ctx context.Context, name string, c storage.Connection) (*sqlstore.Store, error) {
			return open(ctx, name, c.Path, c.Layout, c.MustExist)
		})})
}

// limits: no length limit worth the name, but table and column names are
// compared without case, and a namespace is a prefix of its tables' names.
func limits(v storage.ScalarDBVersion) storage.Limits {
	return storage.Limits{FoldsCase: true, NamespaceSeparator: separator, SingleWriter: true, ScalarDB: v}
}

// separator joins namespace and table, as ScalarDB names SQLite tables.
const separator = "$"

// busyTimeout is how long a writer waits for the write lock.
const busyTimeout = 30 * time.Second

// Open opens (creating it if needed) the database file at path, with
// ScalarDB's default layout.
func Open(ctx context.Context, name, path string) (*sqlstore.Store, error) {
	return open(ctx, name, path, storage.Layout{}, false)
}

func open(ctx context.Context, name, path string, layout storage.Layout, mustExist bool) (*sqlstore.Store, error) {
	if mustExist {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("store %s (sqlite): %s: %w", name, path, storage.ErrNoDatabase)
		}
	} else if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		// Only the file's own directory is made: a missing parent is more
		// likely a typo than a wish for a new tree.
		return nil, fmt.Errorf("store %s (sqlite): create the directory of %s: %w (create its parent first)", name, path, err)
	}
	// WAL lets readers run beside the writer; IMMEDIATE transactions take
	// the write lock up front, so two writers queue on busy_timeout instead
	// of deadlocking on a lock upgrade.
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(OFF)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store %s (sqlite): open %s: %w", name, path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s (sqlite): open %s: %w", name, path, err)
	}
	return sqlstore.New(db, Dialect{}, name, layout), nil
}

// Dialect is SQLite's SQL. SQLite has no schemas, so, as in ScalarDB, a
// namespace is a table-name prefix: namespace$table.
type Dialect struct{}

func (Dialect) Engine() string { return "sqlite" }

func (Dialect) Quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

func (d Dialect) Table(namespace, table string) string { return d.Quote(namespace + separator + table) }

// TextType is TEXT, as in ScalarDB's SQLite engine (RdbEngineSqlite).
func (Dialect) TextType(int) string { return "TEXT" }

// Placeholder is the anonymous "?": the statements bind their arguments in
// order, and modernc.org/sqlite looks up every numbered parameter's name
// when binding, a linear search per parameter (quadratic in a multi-row
// INSERT: a 300,000-row SQLite restore spent 95% of its CPU there).
func (Dialect) Placeholder(int) string { return "?" }

// ColumnType follows ScalarDB's SQLite mapping (RdbEngineSqlite, the same
// for keys and in every release): dates and times are integers (epoch day,
// microsecond of day, epoch milliseconds).
func (Dialect) ColumnType(t storage.DataType, _ bool, _ storage.ScalarDBVersion) string {
	switch t {
	case storage.Boolean:
		return "BOOLEAN"
	case storage.Int, storage.Date:
		return "INT"
	case storage.BigInt, storage.Time, storage.Timestamp, storage.TimestampTZ:
		return "BIGINT"
	case storage.Float:
		return "FLOAT"
	case storage.Double:
		return "DOUBLE"
	case storage.Text:
		return "TEXT"
	case storage.Blob:
		return "BLOB"
	}
	panic(fmt.Sprintf("sqlite: no column type for %v", t))
}

func (Dialect) CreateNamespace(string, storage.ScalarDBVersion) []string { return nil }
func (Dialect) DropNamespace(string) []string                            { return nil }

// RdbEngineSqlite's primary key is a plain list and it creates no
// clustering-order index: SQLite keeps no key order.
func (Dialect) OrderedPrimaryKey() bool     { return false }
func (Dialect) ClusteringOrderIndex() bool  { return false }
func (Dialect) Unquoted(name string) string { return name }

// CreateMetadataSchema: none, the metadata table is scalardb$metadata.
func (Dialect) CreateMetadataSchema(string) []string { return nil }

func (Dialect) Upsert(table string, cols, keyCols, update []string) string {
	q := sqlstore.Insert(Dialect{}, table, cols) + " ON CONFLICT (" + strings.Join(keyCols, ", ") + ")"
	if len(update) == 0 {
		return q + " DO NOTHING"
	}
	return q + " DO UPDATE SET " + sqlstore.AssignExcluded(update, "excluded")
}

func (Dialect) InsertIfNotExists(table string, cols, keyCols []string) (string, bool) {
	return sqlstore.Insert(Dialect{}, table, cols) + " ON CONFLICT (" + strings.Join(keyCols, ", ") + ") DO NOTHING", false
}

func (Dialect) IsDuplicateKey(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE)
}

func (Dialect) IsRetriable(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code()&0xff == sqlite3.SQLITE_BUSY || e.Code()&0xff == sqlite3.SQLITE_LOCKED)
}

const day = 24 * time.Hour

func (Dialect) ToDriver(t storage.DataType, v any) any {
	if v == nil {
		return nil
	}
	switch t {
	case storage.Date:
		return v.(time.Time).Unix() / int64(day/time.Second)
	case storage.Time:
		return v.(time.Duration).Microseconds()
	case storage.Timestamp, storage.TimestampTZ:
		return v.(time.Time).UnixMilli()
	}
	return v
}

func (Dialect) ScanTarget(t storage.DataType) (any, func() (any, error)) {
	if !sqlstore.IsTemporal(t) {
		return sqlstore.StandardScanTarget(t)
	}
	var n sql.NullInt64
	return &n, func() (any, error) {
		if !n.Valid {
			return nil, nil
		}
		switch t {
		case storage.Date:
			return time.Unix(n.Int64*int64(day/time.Second), 0).UTC(), nil
		case storage.Time:
			return time.Duration(n.Int64) * time.Microsecond, nil
		}
		return time.UnixMilli(n.Int64).UTC(), nil
	}
}

func (Dialect) VersionQuery() string { return "SELECT sqlite_version()" }
