// Package mysql is the MariaDB and MySQL engine, through
// go-sql-driver/mysql. A namespace is a database.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// Open connects to the server a DSN (user:pass@tcp(host:port)/) names.
func Open(ctx context.Context, name, dsn string) (*sqlstore.Store, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s (mysql): bad dsn (want user:password@tcp(host:port)/): %w", name, err)
	}
	// Conditional writes count matched rows, not changed ones: an update
	// that rewrites the same values still proves its condition held.
	cfg.ClientFoundRows = true
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("store %s (mysql): bad dsn: %w", name, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(16)
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s (mysql at %s): cannot connect: %w; check the store's dsn in the config file or its environment override", name, cfg.Addr, err)
	}
	return sqlstore.New(db, Dialect{}, name), nil
}

// Dialect is MariaDB's and MySQL's SQL.
type Dialect struct{}

func (Dialect) Engine() string { return "mysql" }

func (Dialect) Quote(ident string) string { return "`" + strings.ReplaceAll(ident, "`", "``") + "`" }

func (d Dialect) Table(namespace, table string) string {
	return d.Quote(namespace) + "." + d.Quote(table)
}

func (Dialect) Placeholder(int) string { return "?" }

// keyLength bounds indexed text and binary columns, as ScalarDB's default
// key column size does.
const keyLength = 128

func (Dialect) ColumnType(t storage.DataType, key, indexed bool) string {
	switch t {
	case storage.Boolean:
		return "BOOLEAN"
	case storage.Int:
		return "INT"
	case storage.BigInt:
		return "BIGINT"
	case storage.Float:
		return "FLOAT"
	case storage.Double:
		return "DOUBLE"
	case storage.Text:
		if key || indexed {
			return fmt.Sprintf("VARCHAR(%d)", keyLength)
		}
		return "LONGTEXT"
	case storage.Blob:
		if key || indexed {
			return fmt.Sprintf("VARBINARY(%d)", keyLength)
		}
		return "LONGBLOB"
	case storage.Date:
		return "DATE"
	case storage.Time:
		return "TIME(6)"
	case storage.Timestamp, storage.TimestampTZ:
		return "DATETIME(3)"
	}
	panic(fmt.Sprintf("mysql: no column type for %v", t))
}

// CreateNamespace uses a binary collation: keys compare by bytes, as on
// every other engine, and "a" and "A" are different keys.
func (d Dialect) CreateNamespace(ns string) []string {
	return []string{"CREATE DATABASE IF NOT EXISTS " + d.Quote(ns) + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"}
}

func (d Dialect) DropNamespace(ns string) []string { return []string{"DROP DATABASE " + d.Quote(ns)} }

func (Dialect) Upsert(table string, cols, keyCols, update []string) string {
	q := insert(table, cols) + " ON DUPLICATE KEY UPDATE "
	if len(update) == 0 {
		return q + keyCols[0] + " = " + keyCols[0]
	}
	as := make([]string, len(update))
	for i, c := range update {
		as[i] = c + " = VALUES(" + c + ")"
	}
	return q + strings.Join(as, ", ")
}

// InsertIfNotExists is a plain INSERT: INSERT IGNORE would also swallow
// truncation and other errors.
func (Dialect) InsertIfNotExists(table string, cols, keyCols []string) (string, bool) {
	return insert(table, cols), true
}

func insert(table string, cols []string) string {
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + sqlstore.Placeholders(Dialect{}, len(cols)) + ")"
}

func errNumber(err error) uint16 {
	var e *driver.MySQLError
	if errors.As(err, &e) {
		return e.Number
	}
	return 0
}

func (Dialect) IsDuplicateKey(err error) bool { return errNumber(err) == 1062 }

func (Dialect) IsRetriable(err error) bool {
	switch errNumber(err) {
	case 1213, 1205: // deadlock, lock wait timeout
		return true
	}
	return false
}

func (Dialect) ToDriver(t storage.DataType, v any) any { return sqlstore.TemporalToDriver(t, v) }

func (Dialect) ScanTarget(t storage.DataType) (any, func() (any, error)) {
	if sqlstore.IsTemporal(t) {
		return sqlstore.TemporalScanTarget(t)
	}
	return sqlstore.StandardScanTarget(t)
}

func (Dialect) Version(ctx context.Context, db *sql.DB) (string, error) {
	var v string
	err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v)
	return v, err
}

func (Dialect) BeginMutate(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
	return db.BeginTx(ctx, nil)
}
