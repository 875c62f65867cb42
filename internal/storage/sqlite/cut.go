package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// Fence holds the database's write lock (BEGIN IMMEDIATE): commit
// decisions, like every write, wait for it.
type Fence struct{ conn *sql.Conn }

// AcquireFence takes the write lock, giving up after timeout.
func AcquireFence(ctx context.Context, st *sqlstore.Store, timeout time.Duration) (*Fence, error) {
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: fence: %w", st.Name(), err)
	}
	_, err = conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", max(timeout.Milliseconds(), 1)))
	if err == nil {
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	}
	conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeout.Milliseconds()))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("store %s: fence not granted within %v: %w", st.Name(), timeout, err)
	}
	return &Fence{conn: conn}, nil
}

// Release ends the write transaction, having written nothing.
func (f *Fence) Release() error {
	_, err := f.conn.ExecContext(context.Background(), "ROLLBACK")
	f.conn.Close()
	return err
}

// Snapshot is a read transaction: in WAL mode it sees the database as of
// its first read, while writers go on.
type Snapshot struct {
	st   *sqlstore.Store
	conn *sql.Conn
	mu   sync.Mutex
}

// OpenSnapshot fixes the database's state as of now.
func OpenSnapshot(ctx context.Context, st *sqlstore.Store) (*Snapshot, error) {
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: snapshot: %w", st.Name(), err)
	}
	_, err = conn.ExecContext(ctx, "BEGIN DEFERRED")
	if err == nil {
		var n int
		err = conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n)
	}
	if err != nil {
		conn.ExecContext(ctx, "ROLLBACK")
		conn.Close()
		return nil, fmt.Errorf("store %s: open read transaction: %w", st.Name(), err)
	}
	return &Snapshot{st: st, conn: conn}, nil
}

// Point says what the snapshot is.
func (s *Snapshot) Point() string { return "read transaction" }

// ReadTable reads a table in the snapshot.
func (s *Snapshot) ReadTable(ctx context.Context, m *storage.TableMetadata, fn func(storage.Record) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.ReadTable(ctx, s.conn, m, fn)
}

// Close ends the read transaction.
func (s *Snapshot) Close() error {
	_, err := s.conn.ExecContext(context.Background(), "ROLLBACK")
	s.conn.Close()
	return err
}
