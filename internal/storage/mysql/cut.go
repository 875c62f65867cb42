package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// Fence blocks new commit decisions with LOCK TABLES ... READ on
// coordinator.state, granted once uncommitted inserts have finished.
type Fence struct{ conn *sql.Conn }

// AcquireFence takes the fence, giving up after timeout (rounded up to a
// second: lock_wait_timeout counts whole seconds).
func AcquireFence(ctx context.Context, st *sqlstore.Store, table string, timeout time.Duration) (*Fence, error) {
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: fence: %w", st.Name(), err)
	}
	secs := int64((timeout + time.Second - 1) / time.Second)
	_, err = conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", max(secs, 1)))
	if err == nil {
		_, err = conn.ExecContext(ctx, "LOCK TABLES "+table+" READ")
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("store %s: fence on %s not granted within %v: %w", st.Name(), table, timeout, err)
	}
	return &Fence{conn: conn}, nil
}

// Release unlocks the table.
func (f *Fence) Release() error {
	_, err := f.conn.ExecContext(context.Background(), "UNLOCK TABLES")
	f.conn.Close()
	return err
}

// Snapshot is an InnoDB consistent-snapshot transaction. MariaDB cannot
// share it between connections, so its tables are read one at a time.
type Snapshot struct {
	st    *sqlstore.Store
	conn  *sql.Conn
	mu    sync.Mutex
	point string
}

// OpenSnapshot fixes the store's state as of now.
func OpenSnapshot(ctx context.Context, st *sqlstore.Store) (*Snapshot, error) {
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: snapshot: %w", st.Name(), err)
	}
	s := &Snapshot{st: st, conn: conn, point: "consistent snapshot"}
	_, err = conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
	if err == nil {
		_, err = conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("store %s: start consistent snapshot: %w", st.Name(), err)
	}
	// MariaDB reports the binlog position the snapshot corresponds to.
	var file, pos string
	if rows, err := conn.QueryContext(ctx, "SHOW STATUS WHERE Variable_name IN ('binlog_snapshot_file', 'binlog_snapshot_position')"); err == nil {
		for rows.Next() {
			var k, v string
			if rows.Scan(&k, &v) == nil {
				if k == "Binlog_snapshot_file" {
					file = v
				} else {
					pos = v
				}
			}
		}
		rows.Close()
	}
	if file != "" {
		s.point = fmt.Sprintf("consistent snapshot at binlog %s:%s", file, pos)
	}
	return s, nil
}

// Point names the snapshot and its binlog position.
func (s *Snapshot) Point() string { return s.point }

// ReadTable reads a table in the snapshot.
func (s *Snapshot) ReadTable(ctx context.Context, m *storage.TableMetadata, fn func(storage.Record) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.ReadTable(ctx, s.conn, m, fn)
}

// Close ends the snapshot.
func (s *Snapshot) Close() error {
	_, err := s.conn.ExecContext(context.Background(), "COMMIT")
	s.conn.Close()
	return err
}
