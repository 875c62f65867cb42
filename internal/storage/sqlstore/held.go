package sqlstore

import (
	"context"
	"database/sql"
	"sync"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// HeldConn is a session kept open for a lock (a fence); end is the
// statement that lets go of it.
type HeldConn struct {
	conn *sql.Conn
	end  string
}

// Hold keeps conn until Release runs end on it.
func Hold(conn *sql.Conn, end string) *HeldConn { return &HeldConn{conn: conn, end: end} }

// Release runs the ending statement and gives the connection back.
func (h *HeldConn) Release() error {
	_, err := h.conn.ExecContext(context.Background(), h.end)
	h.conn.Close()
	return err
}

// ConnSnapshot is a snapshot held by one session (a MariaDB consistent
// snapshot, an SQLite read transaction): it cannot be shared between
// connections, so its tables are read one at a time.
type ConnSnapshot struct {
	st    *Store
	held  *HeldConn
	mu    sync.Mutex
	point string
}

// NewConnSnapshot wraps a session whose transaction holds the snapshot;
// end finishes it.
func NewConnSnapshot(st *Store, conn *sql.Conn, end, point string) *ConnSnapshot {
	return &ConnSnapshot{st: st, held: Hold(conn, end), point: point}
}

// Point says where the store was cut.
func (s *ConnSnapshot) Point() string { return s.point }

// ReadTable reads a table in the snapshot.
func (s *ConnSnapshot) ReadTable(ctx context.Context, m *storage.TableMetadata, fn func(storage.Record) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.ReadTable(ctx, s.held.conn, m, fn)
}

// ReadRows reads a table's rows in the snapshot (cut.RowSnapshot).
func (s *ConnSnapshot) ReadRows(ctx context.Context, m *storage.TableMetadata, fn func([]any) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.ReadRows(ctx, s.held.conn, m, fn)
}

// Catalog reads definitions in the snapshot's session: in its transaction
// where the engine's catalog is transactional (SQLite), else as the
// catalog is at the moment of the read (MariaDB's data dictionary).
func (s *ConnSnapshot) Catalog(ctx context.Context, fn func(storage.Catalog) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(s.st.Catalog(s.held.conn))
}

// Close ends the snapshot.
func (s *ConnSnapshot) Close() error { return s.held.Release() }
