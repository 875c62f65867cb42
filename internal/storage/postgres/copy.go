package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// Copy loads rows into an empty table as pg_restore does, in one
// transaction (docs/performance.md, "PostgreSQL restore"): the table is
// truncated (so that COPY can FREEZE its rows: no hint-bit or freezing
// work later), its keys and indexes are dropped, the heap is loaded with
// COPY FROM STDIN in the binary format (encoded here, copyenc.go), and the
// keys and indexes are built again, each once, from the definitions the
// catalog gave for them. Until the commit nothing of it is visible: an
// interrupted load leaves the table as created, empty, with its keys. A
// duplicate key fails the build of the key, so the load.
func (Dialect) Copy(ctx context.Context, s *sqlstore.Store, m *storage.TableMetadata, next func() ([]any, error)) (int64, error) {
	return copyTable(ctx, s, m, rowsOf(next))
}

// CopyValues is Copy of rows in typed slots: no value boxed into an any
// on the way from the backup's stream to COPY's (docs/performance.md).
func (Dialect) CopyValues(ctx context.Context, s *sqlstore.Store, m *storage.TableMetadata, next func() (*sqlstore.Values, error)) (int64, error) {
	return copyTable(ctx, s, m, valuesOf(next))
}

func copyTable(ctx context.Context, s *sqlstore.Store, m *storage.TableMetadata, rows func(*rowEncoder) rowSource) (int64, error) {
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var n int64
	err = conn.Raw(func(dc any) error {
		n, err = load(ctx, dc.(*stdlib.Conn).Conn(), s.Table(m.Namespace, m.Table), m, rows)
		return err
	})
	if errors.Is(err, driver.ErrBadConn) {
		err = errors.New("connection lost during COPY")
	}
	return n, err
}

// indexBuildKB is the least maintenance_work_mem, in kB (its unit in
// pg_settings), the key and index builds of a load run with, set for the
// load's transaction only: a larger setting of the server is kept
// (docs/performance.md).
const indexBuildKB = 256 << 10

func load(ctx context.Context, c *pgx.Conn, table string, m *storage.TableMetadata, rows func(*rowEncoder) rowSource) (int64, error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	p, err := planLoad(ctx, tx, table)
	if err != nil {
		return 0, err
	}
	for _, q := range p.before() {
		if _, err := tx.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("prepare the load: %s: %w", q, err)
		}
	}
	enc, err := newRowEncoder(ctx, tx, table, m)
	if err != nil {
		return 0, err
	}
	opts := "FORMAT binary"
	if p.freeze {
		opts += ", FREEZE"
	}
	began := time.Now()
	n, err := copyRows(ctx, tx.Conn().PgConn(), "COPY "+table+" ("+sqlstore.ColumnList(Dialect{}, m)+") FROM STDIN ("+opts+")", rows(enc))
	if err != nil {
		return 0, err
	}
	copied := time.Now()
	if len(p.keys) > 0 {
		if _, err := tx.Exec(ctx, "SELECT set_config('maintenance_work_mem', greatest(setting::bigint, $1)::text || 'kB', true) FROM pg_settings WHERE name = 'maintenance_work_mem'", int64(indexBuildKB)); err != nil {
			return 0, err
		}
	}
	for _, k := range p.keys {
		if _, err := tx.Exec(ctx, k.create); err != nil {
			return 0, keyError(k, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	slog.Debug("postgres: table loaded", "table", table, "rows", n, "freeze", p.freeze, "keys_after_rows", len(p.keys),
		"copy", copied.Sub(began), "keys", time.Since(copied))
	return n, nil
}

// keyError names the key or index whose build failed; a duplicate key
// means the backup holds two rows with one key, which PostgreSQL's detail
// names.
func keyError(k key, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("build %s after the load: the backup holds more than one row with one key (%s): %w", k.name, pe.Detail, err)
	}
	return fmt.Errorf("build %s after the load: %w", k.name, err)
}
