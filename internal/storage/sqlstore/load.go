package sqlstore

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Copier is a dialect's fast path for bulk loads (PostgreSQL's COPY,
// MariaDB's LOAD DATA LOCAL INFILE). next returns rows (values in the
// order of m.Columns, the slice reused by the next call) and io.EOF after
// the last.
type Copier interface {
	Copy(ctx context.Context, s *Store, m *storage.TableMetadata, next func() ([]any, error)) (int64, error)
}

// loadBatch is how many records one multi-row INSERT carries; loadTx how
// many go into one local transaction.
const (
	loadBatch = 500
	loadTx    = 20000
)

// Load writes records into an empty table as fast as the engine allows;
// next returns io.EOF after the last record.
func (s *Store) Load(ctx context.Context, m *storage.TableMetadata, next func() (storage.Record, error)) (int64, error) {
	var row []any
	return s.LoadRows(ctx, m, func() ([]any, error) {
		rec, err := next()
		if err != nil {
			return nil, err
		}
		row = m.Row(rec, row)
		return row, nil
	})
}

// LoadRows writes rows (values in the order of m.Columns; next may reuse
// its slice) into an empty table: the dialect's Copier if it has one,
// else multi-row INSERTs in large transactions.
func (s *Store) LoadRows(ctx context.Context, m *storage.TableMetadata, next func() ([]any, error)) (int64, error) {
	if c, ok := s.dialect.(Copier); ok {
		n, err := c.Copy(ctx, s, m, next)
		return n, s.wrap(err, "load "+m.FullName())
	}
	n, err := s.InsertRows(ctx, m, next)
	return n, s.wrap(err, "load "+m.FullName())
}

// InsertRows loads rows with multi-row INSERTs in large transactions: the
// path of every engine, and the fallback of a Copier that cannot run.
func (s *Store) InsertRows(ctx context.Context, m *storage.TableMetadata, next func() ([]any, error)) (int64, error) {
	ncols := len(m.Columns)
	row := "(" + Placeholders(s.dialect, ncols) + ")"
	// Engines cap the parameters of one statement (SQLite 32766, MySQL 65535).
	perBatch := max(1, min(loadBatch, 30000/ncols))
	insert := "INSERT INTO " + s.Table(m.Namespace, m.Table) + " (" + ColumnList(s.dialect, m) + ") VALUES "
	var total int64
	for {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return total, err
		}
		inTx, done := 0, false
		for inTx < loadTx && !done {
			var args []any
			rows := 0
			for rows < perBatch {
				row, err := next()
				if errors.Is(err, io.EOF) {
					done = true
					break
				}
				if err != nil {
					tx.Rollback()
					return total, err
				}
				for i, c := range m.Columns {
					args = append(args, s.dialect.ToDriver(c.Type, row[i]))
				}
				rows++
			}
			if rows == 0 {
				break
			}
			q := insert + numbered(s.dialect, row, rows, ncols)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				tx.Rollback()
				return total, err
			}
			inTx += rows
		}
		if err := tx.Commit(); err != nil {
			return total, err
		}
		total += int64(inTx)
		if done {
			return total, nil
		}
	}
}

// numbered repeats a row of placeholders; dialects with numbered
// placeholders ($1, ?1) count on across the rows.
func numbered(d Dialect, row string, rows, cols int) string {
	if d.Placeholder(1) == d.Placeholder(2) {
		return strings.Repeat(row+", ", rows-1) + row
	}
	parts := make([]string, rows)
	for r := range rows {
		ps := make([]string, cols)
		for c := range cols {
			ps[c] = d.Placeholder(r*cols + c + 1)
		}
		parts[r] = "(" + strings.Join(ps, ", ") + ")"
	}
	return strings.Join(parts, ", ")
}
