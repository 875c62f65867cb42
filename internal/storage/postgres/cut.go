package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

func init() {
	cut.Register("postgres", cut.Methods{AcquireFence: AcquireFence, OpenSnapshot: OpenSnapshot})
}

// Fence blocks new commit decisions: coordinator inserts wait behind a
// SHARE lock on coordinator.state, which itself waits for uncommitted
// inserts to finish (DESIGN.md section 5).
type Fence struct {
	conn *sql.Conn
	tx   *sql.Tx
}

// AcquireFence takes the fence, giving up after timeout.
func AcquireFence(ctx context.Context, st *sqlstore.Store, table string, timeout time.Duration) (cut.Fence, error) {
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: fence: %w", st.Name(), err)
	}
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err == nil {
		_, err = tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", max(timeout.Milliseconds(), 1)))
	}
	if err == nil {
		_, err = tx.ExecContext(ctx, "LOCK TABLE "+table+" IN SHARE MODE")
	}
	if err != nil {
		if tx != nil {
			tx.Rollback()
		}
		conn.Close()
		return nil, fmt.Errorf("store %s: fence on %s not granted within %v: %w", st.Name(), table, timeout, err)
	}
	return &Fence{conn: conn, tx: tx}, nil
}

// Release lets commit decisions through again.
func (f *Fence) Release() error {
	err := f.tx.Rollback()
	f.conn.Close()
	return err
}

// Snapshot is an exported snapshot, held open by its transaction so that
// any number of readers can import it and read the tables in parallel.
type Snapshot struct {
	st   *sqlstore.Store
	conn *sql.Conn
	tx   *sql.Tx
	id   string
	lsn  string
}

// OpenSnapshot fixes the store's state as of now.
func OpenSnapshot(ctx context.Context, st *sqlstore.Store) (cut.Snapshot, error) {
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: snapshot: %w", st.Name(), err)
	}
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	s := &Snapshot{st: st, conn: conn, tx: tx}
	if err == nil {
		err = tx.QueryRowContext(ctx, "SELECT pg_export_snapshot(), pg_current_wal_lsn()::text").Scan(&s.id, &s.lsn)
	}
	if err != nil {
		if tx != nil {
			tx.Rollback()
		}
		conn.Close()
		return nil, fmt.Errorf("store %s: export snapshot: %w", st.Name(), err)
	}
	return s, nil
}

// Point names the snapshot and the WAL position it was taken at.
func (s *Snapshot) Point() string { return fmt.Sprintf("snapshot %s, WAL %s", s.id, s.lsn) }

// ReadTable reads a table in the snapshot, on a connection of its own.
func (s *Snapshot) ReadTable(ctx context.Context, m *storage.TableMetadata, fn func(storage.Record) error) error {
	return s.in(ctx, func(tx *sql.Tx) error { return s.st.ReadTable(ctx, tx, m, fn) })
}

// ReadRows reads a table's rows in the snapshot (cut.RowSnapshot).
func (s *Snapshot) ReadRows(ctx context.Context, m *storage.TableMetadata, fn func([]any) error) error {
	return s.in(ctx, func(tx *sql.Tx) error { return s.st.ReadRows(ctx, tx, m, fn) })
}

// Catalog reads definitions with the catalog's rows as of the snapshot
// (format_type and pg_get_indexdef deparse from the current catalog).
func (s *Snapshot) Catalog(ctx context.Context, fn func(storage.Catalog) error) error {
	return s.in(ctx, func(tx *sql.Tx) error { return fn(s.st.Catalog(tx)) })
}

// in runs fn in a read-only transaction that imports the snapshot.
func (s *Snapshot) in(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.st.DB().BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store %s: %w", s.st.Name(), err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SET TRANSACTION SNAPSHOT '"+s.id+"'"); err != nil {
		return fmt.Errorf("store %s: import snapshot %s: %w", s.st.Name(), s.id, err)
	}
	return fn(tx)
}

// Close ends the snapshot.
func (s *Snapshot) Close() error {
	err := s.tx.Rollback()
	s.conn.Close()
	return err
}
