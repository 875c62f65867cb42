package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
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
	dests := make([]any, len(m.Columns))
	values := make([]func() (any, error), len(m.Columns))
	for i, c := range m.Columns {
		cols[i] = c.Name
		dests[i], values[i] = s.dialect.ScanTarget(c.Type)
	}
	keys := quoteAll(s.dialect, m.KeyColumns())
	query := "SELECT " + strings.Join(quoteAll(s.dialect, cols), ", ") + " FROM " + s.Table(m.Namespace, m.Table) + " ORDER BY " + strings.Join(keys, ", ")
	rows, closeRows, err := s.queryRows(ctx, q, query)
	if err != nil {
		return s.wrap(err, "read "+m.FullName())
	}
	defer closeRows()
	row := make([]any, len(cols))
	for rows.Next() {
		if err := rows.Scan(dests...); err != nil {
			return s.wrap(err, "read "+m.FullName())
		}
		for i, value := range values {
			if row[i], err = value(); err != nil {
				return s.wrap(fmt.Errorf("column %s: %w", cols[i], err), "read "+m.FullName())
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return s.wrap(rows.Err(), "read "+m.FullName())
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
