package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

func init() {
	cut.Register("sqlite", cut.Methods{AcquireFence: AcquireFence, OpenSnapshot: OpenSnapshot})
}

// AcquireFence holds the database's write lock (BEGIN IMMEDIATE): commit
// decisions, like every write, wait for it, whichever table they write.
// It gives up after timeout.
func AcquireFence(ctx context.Context, st *sqlstore.Store, _ string, timeout time.Duration) (cut.Fence, error) {
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
	return sqlstore.Hold(conn, "ROLLBACK"), nil // it wrote nothing
}

// OpenSnapshot fixes the database's state as of now: a read transaction,
// which in WAL mode sees the database as of its first read while writers
// go on.
func OpenSnapshot(ctx context.Context, st *sqlstore.Store) (cut.Snapshot, error) {
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
	return sqlstore.NewConnSnapshot(st, conn, "ROLLBACK", "read transaction"), nil
}
