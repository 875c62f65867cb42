package sqlstore

import (
	"context"
	"database/sql"
	"strings"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Querier is a connection or transaction to read through: a snapshot's.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ReadTable streams every record of a table through q, in primary-key
// order (so that unchanged data reads back byte for byte the same).
func (s *Store) ReadTable(ctx context.Context, q Querier, m *storage.TableMetadata, fn func(storage.Record) error) error {
	cols := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		cols[i] = c.Name
	}
	keys := quoteAll(s.dialect, m.KeyColumns())
	query := "SELECT " + strings.Join(quoteAll(s.dialect, cols), ", ") + " FROM " + s.Table(m.Namespace, m.Table) + " ORDER BY " + strings.Join(keys, ", ")
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return s.wrap(err, "read "+m.FullName())
	}
	defer rows.Close()
	for rows.Next() {
		rec, err := s.scanRow(rows, m, cols)
		if err != nil {
			return s.wrap(err, "read "+m.FullName())
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return s.wrap(rows.Err(), "read "+m.FullName())
}

// Name is the store's name in the configuration.
func (s *Store) Name() string { return s.name }
