// Package postgres is the PostgreSQL engine, through pgx. A namespace is a
// schema.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

func init() {
	storage.RegisterEngine(storage.Engine{Name: "postgres", Limits: limits,
		Open: storage.Opener(func(ctx context.Context, name string, c storage.Connection) (*sqlstore.Store, error) {
			return open(ctx, name, c.DSN, c.Layout)
		})})
}

// limits: PostgreSQL truncates identifiers to NAMEDATALEN-1 = 63 bytes,
// which would make two long names one, so longer ones are refused. The
// metadata's full_table_name is VARCHAR(128). The clustering order has an
// index of its own.
func limits(v storage.ScalarDBVersion) storage.Limits {
	return storage.Limits{MaxName: 63, MaxFullTableName: sqlstore.MetadataNameWidth, ClusteringOrderIndex: true, ScalarDB: v}
}

// Open connects to the database a DSN (URL or key=value form) names, with
// ScalarDB's default layout.
func Open(ctx context.Context, name, dsn string) (*sqlstore.Store, error) {
	return open(ctx, name, dsn, storage.Layout{})
}

func open(ctx context.Context, name, dsn string, layout storage.Layout) (*sqlstore.Store, error) {
	cfg, err := pgxConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s (postgres): bad dsn: %w", name, err)
	}
	schema := &schemaGeneration{}
	db := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(schema.connected), stdlib.OptionResetSession(schema.reset))
	db.SetMaxOpenConns(64)
	// As many idle as open: a pool that closes connections it has just
	// used reopens them under load, a backend start and every statement's
	// preparation each time (docs/performance-transactions.md). Idle ones
	// close after a minute once the load drops.
	db.SetMaxIdleConns(64)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s (postgres at %s:%d/%s): cannot connect: %w; check the store's dsn in the config file or its environment override",
			name, cfg.Host, cfg.Port, cfg.Database, err)
	}
	d := Dialect{schema: schema}
	if err := db.QueryRowContext(ctx, byteOrderQuery).Scan(&d.ByteOrder); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s (postgres at %s:%d/%s): read the database's collation: %w", name, cfg.Host, cfg.Port, cfg.Database, err)
	}
	return sqlstore.New(db, d, name, layout), nil
}

// byteOrderQuery tells whether the database's default collation orders
// text by code point, so by UTF-8 bytes: libc's C, POSIX and C.UTF-8
// (datlocprovider, from PostgreSQL 15, is 'c' for libc).
const byteOrderQuery = `SELECT datcollate IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8') AND COALESCE(to_jsonb(d)->>'datlocprovider', 'c') = 'c'
	FROM pg_database d WHERE datname = current_database()`

// Dialect is PostgreSQL's SQL.
type Dialect struct {
	sqlstore.NativeTemporal
	// ByteOrder: the database's default collation orders text by bytes.
	ByteOrder bool
	schema    *schemaGeneration // nil: no pool of the store's own
}

// SchemaChanged: the store's DDL changed a table (sqlstore.SchemaWatcher).
func (d Dialect) SchemaChanged() {
	if d.schema != nil {
		d.schema.n.Add(1)
	}
}

// schemaGeneration counts the DDL the store ran. A pooled connection keeps
// its prepared statements (pgx's statement cache) with the parameter and
// result types of the tables as they were; a table dropped and re-created
// with other column types would fail each such statement once per
// connection. So a connection that prepared before the last DDL
// deallocates its statements before its next use
// (docs/performance-transactions.md).
type schemaGeneration struct{ n atomic.Uint64 }

// schemaSeen is the key, in a connection's CustomData, of the generation
// its statements were prepared in.
const schemaSeen = "stillpoint.schema"

func (g *schemaGeneration) connected(_ context.Context, conn *pgx.Conn) error {
	conn.PgConn().CustomData()[schemaSeen] = g.n.Load()
	return nil
}

func (g *schemaGeneration) reset(ctx context.Context, conn *pgx.Conn) error {
	n := g.n.Load()
	if conn.PgConn().CustomData()[schemaSeen] == n {
		return nil
	}
	if err := conn.DeallocateAll(ctx); err != nil {
		return err
	}
	conn.PgConn().CustomData()[schemaSeen] = n
	return nil
}

func (Dialect) Engine() string { return "postgres" }

func (Dialect) Quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

func (d Dialect) Table(namespace, table string) string {
	return d.Quote(namespace) + "." + d.Quote(table)
}

func (Dialect) TextType(n int) string { return fmt.Sprintf("VARCHAR(%d)", n) }

func (Dialect) Placeholder(n int) string { return fmt.Sprintf("$%d", n) }

// ColumnType is RdbEnginePostgresql's mapping. Text takes the database's
// collation, as ScalarDB's does, where that orders keys by bytes, as on
// every engine; elsewhere (en_US, ICU) it states the "C" collation
// (docs/layout.md).
func (d Dialect) ColumnType(t storage.DataType, key bool, v storage.ScalarDBVersion) string {
	typ := scalarDBType(t, key, v)
	if t == storage.Text && !d.ByteOrder {
		typ += ` COLLATE "C"`
	}
	return typ
}

func scalarDBType(t storage.DataType, key bool, v storage.ScalarDBVersion) string {
	switch t {
	case storage.Boolean:
		return "BOOLEAN"
	case storage.Int:
		return "INT"
	case storage.BigInt:
		return "BIGINT"
	case storage.Float:
		if v.RealFloat() {
			return "REAL"
		}
		return "FLOAT"
	case storage.Double:
		return "DOUBLE PRECISION"
	case storage.Text:
		if key {
			return "VARCHAR(10485760)"
		}
		return "TEXT"
	case storage.Blob:
		return "BYTEA"
	case storage.Date:
		return "DATE"
	case storage.Time:
		return "TIME"
	case storage.Timestamp:
		return "TIMESTAMP"
	case storage.TimestampTZ:
		return "TIMESTAMP WITH TIME ZONE"
	}
	panic(fmt.Sprintf("postgres: no column type for %v", t))
}

// CreateNamespace is ScalarDB's CREATE SCHEMA, in every release.
func (d Dialect) CreateNamespace(ns string, _ storage.ScalarDBVersion) []string {
	return []string{"CREATE SCHEMA IF NOT EXISTS " + d.Quote(ns)}
}

func (d Dialect) CreateMetadataSchema(schema string) []string {
	return d.CreateNamespace(schema, storage.ScalarDBVersion{})
}

func (Dialect) OrderedPrimaryKey() bool    { return false }
func (Dialect) ClusteringOrderIndex() bool { return true }

// Unquoted folds ASCII letters to lower case, as PostgreSQL does with an
// unquoted identifier.
func (Dialect) Unquoted(name string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, name)
}

func (d Dialect) DropNamespace(ns string) []string { return []string{"DROP SCHEMA " + d.Quote(ns)} }

func (Dialect) Upsert(table string, cols, keyCols, update []string) string {
	q := sqlstore.Insert(Dialect{}, table, cols) + " ON CONFLICT (" + strings.Join(keyCols, ", ") + ")"
	if len(update) == 0 {
		return q + " DO NOTHING"
	}
	return q + " DO UPDATE SET " + sqlstore.AssignExcluded(update, "EXCLUDED")
}

// InsertIfNotExists avoids a duplicate-key error, which would abort the
// surrounding transaction of a Mutate.
func (Dialect) InsertIfNotExists(table string, cols, keyCols []string) (string, bool) {
	return sqlstore.Insert(Dialect{}, table, cols) + " ON CONFLICT (" + strings.Join(keyCols, ", ") + ") DO NOTHING", false
}

// ExecPipeline sends the queries as one pgx batch: one round trip, run by
// PostgreSQL in one implicit transaction.
func (Dialect) ExecPipeline(ctx context.Context, db *sql.DB, queries []string, args [][]any) ([]int64, error) {
	affected := make([]int64, len(queries))
	err := batch(ctx, db, queries, args, func(i int, br pgx.BatchResults) error {
		tag, err := br.Exec()
		affected[i] = tag.RowsAffected()
		if err != nil {
			return &sqlstore.PipelineError{Index: i, Err: err}
		}
		return nil
	})
	return affected, err
}

// AssertWrote divides by the number of rows the write returned: zero
// raises division_by_zero, which aborts the pipeline's implicit
// transaction. The statements it wraps do no arithmetic of their own.
func (Dialect) AssertWrote(query string) string {
	return "WITH w AS (" + query + " RETURNING 1) SELECT 1 / COUNT(*) FROM w"
}

func (Dialect) IsAssertion(err error) bool { return sqlState(err) == "22012" }

// QueryPipeline sends the queries as one pgx batch.
func (Dialect) QueryPipeline(ctx context.Context, db *sql.DB, queries []string, args [][]any, scan func(i int, rows sqlstore.Rows) error) error {
	return batch(ctx, db, queries, args, func(i int, br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		return errors.Join(scan(i, rows), rows.Err())
	})
}

// batch sends the queries as one pgx batch on a connection of the pool and
// hands each result to read, in order.
func batch(ctx context.Context, db *sql.DB, queries []string, args [][]any, read func(i int, br pgx.BatchResults) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		var b pgx.Batch
		for i, q := range queries {
			b.Queue(q, args[i]...)
		}
		br := dc.(*stdlib.Conn).Conn().SendBatch(ctx, &b)
		for i := range queries {
			if err := read(i, br); err != nil {
				return errors.Join(err, br.Close())
			}
		}
		return br.Close()
	})
}

func (Dialect) IsDuplicateKey(err error) bool { return sqlState(err) == "23505" }

func (Dialect) IsRetriable(err error) bool {
	switch sqlState(err) {
	case "40001", "40P01", "55P03": // serialization failure, deadlock, lock not available
		return true
	}
	return false
}

func sqlState(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func (Dialect) VersionQuery() string { return "SHOW server_version" }
