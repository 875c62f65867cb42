package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Querier is a connection or transaction to read through: a snapshot's.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// PreparedReader is a Dialect whose bulk reads go faster through a
// prepared statement: MariaDB's binary protocol sends numbers and times as
// such, where its text protocol prints them for the client to parse.
type PreparedReader interface {
	PreparedReads() bool
}

// Preparer is a Querier that can prepare statements (a connection or a
// transaction).
type Preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// ReadTable streams every record of a table through q, in primary-key
// order (so that unchanged data reads back byte for byte the same).
func (s *Store) ReadTable(ctx context.Context, q Querier, m *storage.TableMetadata, fn func(storage.Record) error) error {
	return s.ReadRows(ctx, q, m, func(row []any) error { return fn(m.Record(row)) })
}

// ReadRows streams every row of a table through q in primary-key order,
// as canonical values in the order of m.Columns: the backup's path, with
// one set of scan targets per table and no map per row (docs/performance.md).
// The row slice is reused: fn must not keep it.
func (s *Store) ReadRows(ctx context.Context, q Querier, m *storage.TableMetadata, fn func(row []any) error) error {
	cols := make([]string, len(m.Columns))
	conv := make([]column, len(m.Columns))
	for i, c := range m.Columns {
		cols[i] = c.Name
		if err := conv[i].init(s.dialect, c.Type); err != nil {
			return s.wrap(fmt.Errorf("column %s: %w", c.Name, err), "read "+m.FullName())
		}
	}
	keys := quoteAll(s.dialect, m.KeyColumns())
	query := "SELECT " + strings.Join(quoteAll(s.dialect, cols), ", ") + " FROM " + s.Table(m.Namespace, m.Table) + " ORDER BY " + strings.Join(keys, ", ")
	rows, closeRows, err := s.queryRows(ctx, q, query)
	if err != nil {
		return s.wrap(err, "read "+m.FullName())
	}
	defer closeRows()
	// The driver's values land in src as they are; column converts them.
	src := make([]any, len(cols))
	dests := make([]any, len(cols))
	for i := range src {
		dests[i] = &src[i]
	}
	row := make([]any, len(cols))
	for rows.Next() {
		if err := rows.Scan(dests...); err != nil {
			return s.wrap(err, "read "+m.FullName())
		}
		for i := range conv {
			if row[i], err = conv[i].canonical(src[i]); err != nil {
				return s.wrap(fmt.Errorf("column %s: %w", cols[i], err), "read "+m.FullName())
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return s.wrap(rows.Err(), "read "+m.FullName())
}

// column turns the driver's value of one column into its canonical value:
// the values every driver gives alike directly (database/sql's reflective
// conversions were a fifth of a backup's CPU), anything else through the
// dialect's scan target, as a scan into it would.
type column struct {
	t     storage.DataType
	dest  sql.Scanner
	value func() (any, error)
}

func (c *column) init(d Dialect, t storage.DataType) error {
	dest, value := d.ScanTarget(t)
	scanner, ok := dest.(sql.Scanner)
	if !ok {
		return fmt.Errorf("the %s dialect's scan target for %v is a %T, not a sql.Scanner", d.Engine(), t, dest)
	}
	*c = column{t: t, dest: scanner, value: value}
	return nil
}

func (c *column) canonical(src any) (any, error) {
	switch v := src.(type) {
	case nil:
		return nil, nil
	case int64:
		if c.t == storage.BigInt {
			return v, nil
		}
		if c.t == storage.Int && v >= math.MinInt32 && v <= math.MaxInt32 {
			return int32(v), nil
		}
	case float64:
		if c.t == storage.Double {
			return v, nil
		}
		if c.t == storage.Float {
			return float32(v), nil
		}
	case bool:
		if c.t == storage.Boolean {
			return v, nil
		}
	case string:
		if c.t == storage.Text {
			return v, nil
		}
	case []byte: // database/sql gives a copy to an *any
		if c.t == storage.Text {
			return string(v), nil
		}
		if c.t == storage.Blob {
			if v == nil { // an empty BLOB, which is not NULL
				v = []byte{}
			}
			return v, nil
		}
	}
	if err := c.dest.Scan(src); err != nil {
		return nil, err
	}
	return c.value()
}

// queryRows runs a bulk read, prepared where the dialect reads faster so;
// closeRows closes the rows, then the statement (a statement prepared on a
// connection closes at once, under rows still streaming).
func (s *Store) queryRows(ctx context.Context, q Querier, query string) (rows *sql.Rows, closeRows func(), err error) {
	pr, ok := s.dialect.(PreparedReader)
	p, can := q.(Preparer)
	if !ok || !can || !pr.PreparedReads() {
		rows, err = q.QueryContext(ctx, query)
		if err != nil {
			return nil, nil, err
		}
		return rows, func() { rows.Close() }, nil
	}
	stmt, err := p.PrepareContext(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	if rows, err = stmt.QueryContext(ctx); err != nil {
		stmt.Close()
		return nil, nil, err
	}
	return rows, func() { rows.Close(); stmt.Close() }, nil
}

// Name is the store's name in the configuration.
func (s *Store) Name() string { return s.name }
