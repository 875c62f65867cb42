// Package mysql is the MariaDB and MySQL engine, through
// go-sql-driver/mysql. A namespace is a database.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

func init() {
	storage.RegisterEngine(storage.Engine{Name: "mysql", Limits: limits,
		Open: storage.Opener(func(ctx context.Context, name string, c storage.Connection) (*sqlstore.Store, error) {
			return open(ctx, name, c.DSN, c.Layout)
		})})
}

// limits: identifiers of at most 64 characters; column names never
// compare case, and database and table names do not on servers with
// lower_case_table_names (the default on Windows and macOS), so names are
// held to be case-insensitive wherever the backup may be restored. Keys
// are as wide as release v makes them (MySQLKeySize), the metadata's
// full_table_name VARCHAR(128).
func limits(v storage.ScalarDBVersion) storage.Limits {
	return storage.Limits{MaxName: 64, FoldsCase: true, MaxFullTableName: sqlstore.MetadataNameWidth, MaxKeyLength: v.MySQLKeySize(), ScalarDB: v}
}

// Open connects to the server a DSN (user:pass@tcp(host:port)/) names,
// with ScalarDB's default layout.
func Open(ctx context.Context, name, dsn string) (*sqlstore.Store, error) {
	return open(ctx, name, dsn, storage.Layout{})
}

func open(ctx context.Context, name, dsn string, layout storage.Layout) (*sqlstore.Store, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s (mysql): bad dsn (want user:password@tcp(host:port)/): %w", name, err)
	}
	// Conditional writes count matched rows, not changed ones: an update
	// that rewrites the same values still proves its condition held.
	cfg.ClientFoundRows = true
	// The driver escapes arguments into the statement text: one round trip
	// per statement instead of a server-side prepare and execute
	// (docs/performance-transactions.md). Only over the driver's own
	// utf8mb4 connection, which that escaping is safe for: a DSN that
	// names a charset, a collation or interpolateParams keeps its choice.
	cfg.InterpolateParams = cfg.InterpolateParams || !namesParam(dsn, "interpolateParams", "charset", "collation")
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("store %s (mysql): bad dsn: %w", name, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(64)
	// As many idle as open: a pool that closes connections it has just
	// used reopens them under load, a backend start and every statement's
	// preparation each time (docs/performance-transactions.md). Idle ones
	// close after a minute once the load drops.
	db.SetMaxIdleConns(64)
	db.SetConnMaxIdleTime(time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s (mysql at %s): cannot connect: %w; check the store's dsn in the config file or its environment override", name, cfg.Addr, err)
	}
	d, err := dialect(ctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s (mysql at %s): read the server's collations: %w", name, cfg.Addr, err)
	}
	// The transactions' statements are prepared once per connection and
	// reused: mariadbd no longer parses each one (docs/
	// performance-transactions.md). A DSN naming interpolateParams keeps
	// its choice for them too.
	d.Prepare = !namesParam(dsn, "interpolateParams")
	return sqlstore.New(db, d, name, layout), nil
}

// namesParam reports whether a DSN's parameters name any of params.
func namesParam(dsn string, params ...string) bool {
	_, query, _ := strings.Cut(dsn[strings.LastIndex(dsn, "/")+1:], "?")
	for _, kv := range strings.Split(query, "&") {
		if k, _, _ := strings.Cut(kv, "="); slices.Contains(params, k) {
			return true
		}
	}
	return false
}

// dialect reads what the Dialect needs to know of the server: its binary
// collation and its default one.
func dialect(ctx context.Context, db *sql.DB) (Dialect, error) {
	collation, err := binaryCollation(ctx, db)
	if err != nil {
		return Dialect{}, err
	}
	d := Dialect{Collation: collation}
	var charset, serverCollation string
	if err := db.QueryRowContext(ctx, "SELECT @@character_set_server, @@collation_server").Scan(&charset, &serverCollation); err != nil {
		return Dialect{}, err
	}
	d.ServerBinary = charset == "utf8mb4" && serverCollation == collation
	return d, nil
}

// binaryCollation picks the utf8mb4 collation of namespaces: one comparing
// code points (so UTF-8 bytes) without padding, so that "a" and "a " are
// different keys and "a\t" sorts after "a", as on every other engine:
// MariaDB's utf8mb4_nopad_bin or MySQL 8's utf8mb4_0900_bin. utf8mb4_bin
// pads with spaces; it is the fallback for servers that have neither.
func binaryCollation(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, "SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return "", err
		}
		have[c] = true
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	for _, c := range []string{"utf8mb4_nopad_bin", "utf8mb4_0900_bin"} {
		if have[c] {
			return c, nil
		}
	}
	return "utf8mb4_bin", nil
}

// Dialect is MariaDB's and MySQL's SQL.
type Dialect struct {
	sqlstore.NativeTemporal
	// Collation is the utf8mb4 collation comparing keys by their bytes;
	// empty means utf8mb4_bin. Open picks one without padding.
	Collation string
	// ServerBinary: the server's default character set and collation are
	// utf8mb4 and Collation.
	ServerBinary bool
	// Prepare: the store runs its cached statement texts as prepared
	// statements (sqlstore.StatementPreparer).
	Prepare bool
}

func (d Dialect) PrepareStatements() bool { return d.Prepare }

// IsPrepareLimit: ER_MAX_PREPARED_STMT_COUNT_REACHED.
func (Dialect) IsPrepareLimit(err error) bool { return errNumber(err) == 1461 }

func (Dialect) Engine() string { return "mysql" }

func (Dialect) Quote(ident string) string { return "`" + strings.ReplaceAll(ident, "`", "``") + "`" }

func (d Dialect) Table(namespace, table string) string {
	return d.Quote(namespace) + "." + d.Quote(table)
}

func (Dialect) TextType(n int) string { return fmt.Sprintf("VARCHAR(%d)", n) }

func (Dialect) Placeholder(int) string { return "?" }

// ColumnType is RdbEngineMysql's mapping in release v.
func (Dialect) ColumnType(t storage.DataType, key bool, v storage.ScalarDBVersion) string {
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
		return "DOUBLE"
	case storage.Double:
		return "DOUBLE"
	case storage.Text:
		if key {
			return Dialect{}.TextType(v.MySQLKeySize())
		}
		return "LONGTEXT"
	case storage.Blob:
		if key {
			return fmt.Sprintf("VARBINARY(%d)", v.MySQLKeySize())
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

// CreateNamespace is ScalarDB's CREATE SCHEMA of release v: "character
// set utf8 COLLATE utf8_bin" up to 3.12.0 (that release's layout, kept as
// it is), the server's defaults after. Where those defaults would make
// keys that differ in case or in trailing spaces one key
// (utf8mb4_general_ci, utf8mb4_bin's padding) or could not hold every
// character, the namespace states utf8mb4 and the binary collation
// instead, so that a Put never overwrites another key's record
// (docs/layout.md).
func (d Dialect) CreateNamespace(ns string, v storage.ScalarDBVersion) []string {
	stmt := "CREATE SCHEMA IF NOT EXISTS " + d.Quote(ns)
	switch {
	case v.MySQLNamespaceCharset():
		stmt += " character set utf8 COLLATE utf8_bin"
	case !d.ServerBinary:
		collation := d.Collation
		if collation == "" {
			collation = "utf8mb4_bin"
		}
		stmt += " CHARACTER SET utf8mb4 COLLATE " + collation
	}
	return []string{stmt}
}

func (Dialect) OrderedPrimaryKey() bool     { return true }
func (Dialect) ClusteringOrderIndex() bool  { return false }
func (Dialect) Unquoted(name string) string { return name }

func (d Dialect) DropNamespace(ns string) []string { return []string{"DROP DATABASE " + d.Quote(ns)} }

// CreateMetadataSchema has no character set clause: ScalarDB never gives
// the metadata schema one, whatever it gives namespaces.
func (d Dialect) CreateMetadataSchema(schema string) []string {
	return []string{"CREATE SCHEMA IF NOT EXISTS " + d.Quote(schema)}
}

func (Dialect) Upsert(table string, cols, keyCols, update []string) string {
	q := sqlstore.Insert(Dialect{}, table, cols) + " ON DUPLICATE KEY UPDATE "
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
	return sqlstore.Insert(Dialect{}, table, cols), true
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

func (Dialect) VersionQuery() string { return "SELECT VERSION()" }
