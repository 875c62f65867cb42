// Package sqlstore implements the storage contract once for every SQL
// engine; each engine package supplies a Dialect with its SQL differences.
package sqlstore

import (
	"github.com/stillpoint/stillpoint/internal/storage"
)

// Dialect is what differs between SQL engines.
type Dialect interface {
	// Engine is the engine's short name: sqlite, postgres, mysql.
	Engine() string
	Quote(ident string) string
	// Table is the quoted name of a table of a namespace.
	Table(namespace, table string) string
	Placeholder(n int) string // n counts from 1
	// ColumnType is the SQL type of a column as ScalarDB's engine declares
	// it in release v (getDataTypeForEngine); key (key and indexed columns)
	// may need a bounded type (getDataTypeForKey: MySQL cannot index
	// LONGTEXT, PostgreSQL's TEXT keys are VARCHAR(10485760)).
	ColumnType(t storage.DataType, key bool, v storage.ScalarDBVersion) string
	// CreateNamespace returns the DDL for a namespace as release v creates
	// it, if it does not exist (none where a namespace is only a
	// table-name prefix); DropNamespace drops it.
	CreateNamespace(namespace string, v storage.ScalarDBVersion) []string
	DropNamespace(namespace string) []string
	// OrderedPrimaryKey: with a DESC clustering key, the primary key lists
	// every key column's order (RdbEngineMysql), as the engine keeps it.
	OrderedPrimaryKey() bool
	// ClusteringOrderIndex: the clustering order is kept by a unique index
	// of its own (RdbEnginePostgresql), ScalarDB.ClusteringOrderIndex says
	// when.
	ClusteringOrderIndex() bool
	// Unquoted is the name the engine gives an unquoted identifier
	// (PostgreSQL folds it to lower case).
	Unquoted(name string) string
	// TextType is ScalarDB's getTextType: the metadata table's text column
	// of n characters (VARCHAR(n); TEXT on SQLite).
	TextType(n int) string
	// CreateMetadataSchema returns the DDL of the metadata table's schema,
	// ScalarDB's plain CREATE SCHEMA IF NOT EXISTS (none on SQLite).
	CreateMetadataSchema(schema string) []string
	// Upsert writes cols, updating update when the key exists.
	Upsert(table string, cols, keyCols, update []string) string
	// InsertIfNotExists inserts cols unless the key exists. When
	// duplicateIsError, a duplicate key surfaces as an error that
	// IsDuplicateKey recognises; otherwise as zero rows affected.
	InsertIfNotExists(table string, cols, keyCols []string) (query string, duplicateIsError bool)
	IsDuplicateKey(err error) bool
	// IsRetriable recognises deadlocks, serialization failures and busy errors.
	IsRetriable(err error) bool
	// ToDriver converts a canonical value into a query argument.
	ToDriver(t storage.DataType, v any) any
	// ScanTarget returns a scan destination for a column and a function
	// giving the canonical value after the scan.
	ScanTarget(t storage.DataType) (dest any, value func() (any, error))
	// VersionQuery returns the server's version as one text value.
	VersionQuery() string
	// RowEstimateQuery returns a query for about how many rows a table
	// holds, cheap enough to ask before a backup (one integer; negative:
	// not known).
	RowEstimateQuery(namespace, table string) (query string, args []any)
	CatalogDialect
}

// NativeTemporal is the value handling of engines with native date and time
// types (PostgreSQL, MariaDB/MySQL); their dialects embed it.
type NativeTemporal struct{}

func (NativeTemporal) ToDriver(t storage.DataType, v any) any { return TemporalToDriver(t, v) }

func (NativeTemporal) ScanTarget(t storage.DataType) (any, func() (any, error)) {
	if IsTemporal(t) {
		return TemporalScanTarget(t)
	}
	return StandardScanTarget(t)
}
