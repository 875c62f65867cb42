package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// Copy loads records with COPY FROM STDIN (binary), PostgreSQL's fast path.
func (Dialect) Copy(ctx context.Context, s *sqlstore.Store, m *storage.TableMetadata, next func() ([]any, error)) (int64, error) {
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	cols := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		cols[i] = c.Name
	}
	var n int64
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		n, err = pc.CopyFrom(ctx, pgx.Identifier{s.PhysicalNamespace(m.Namespace), m.Table}, cols, &copySource{next: next})
		return err
	})
	if errors.Is(err, driver.ErrBadConn) {
		err = errors.New("connection lost during COPY")
	}
	return n, err
}

// copySource feeds COPY from a row stream. pgx encodes each row before it
// asks for the next, so one values slice serves every row.
type copySource struct {
	next   func() ([]any, error)
	values []any
	err    error
}

func (c *copySource) Next() bool {
	row, err := c.next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			c.err = err
		}
		return false
	}
	c.values = append(c.values[:0], row...)
	for i, v := range c.values {
		if d, ok := v.(time.Duration); ok {
			c.values[i] = pgtype.Time{Microseconds: d.Microseconds(), Valid: true}
		}
	}
	return true
}

func (c *copySource) Values() ([]any, error) { return c.values, nil }
func (c *copySource) Err() error             { return c.err }
