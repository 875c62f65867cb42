package mysql

import (
	"context"
	"fmt"
	"time"

	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

func init() {
	cut.Register("mysql", cut.Methods{AcquireFence: AcquireFence, OpenSnapshot: OpenSnapshot})
}

// AcquireFence blocks new commit decisions with LOCK TABLES ... READ on
// coordinator.state, granted once uncommitted inserts have finished. It
// gives up after timeout (rounded up to a second: lock_wait_timeout counts
// whole seconds).
func AcquireFence(ctx context.Context, st *sqlstore.Store, table string, timeout time.Duration) (cut.Fence, error) {
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
	return sqlstore.Hold(conn, "UNLOCK TABLES"), nil
}

// OpenSnapshot fixes the store's state as of now in an InnoDB
// consistent-snapshot transaction, and records its binlog position.
func OpenSnapshot(ctx context.Context, st *sqlstore.Store) (cut.Snapshot, error) {
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: snapshot: %w", st.Name(), err)
	}
	point := "consistent snapshot"
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
		point = fmt.Sprintf("consistent snapshot at binlog %s:%s", file, pos)
	}
	return sqlstore.NewConnSnapshot(st, conn, "COMMIT", point), nil
}
