package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage/mysql"
	"github.com/stillpoint/stillpoint/internal/storage/postgres"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestPoolKeepsConnections: connections returned after a burst of more
// clients than the old 16 idle stay open, so a steady load does not close
// and reopen them (a backend start and every statement's preparation each
// time: docs/performance-transactions.md, "Where the time goes"). Both SQL
// stores' pools, PostgreSQL's and MariaDB's.
func TestPoolKeepsConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(ctx context.Context, name, dsn string) (*sqlstore.Store, error)
		dsn  func(t testing.TB) string
	}{
		{"postgres", postgres.Open, testenv.PostgresDSN},
		{"mysql", mysql.Open, testenv.MySQLDSN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := tc.open(ctx, "pool", tc.dsn(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const burst = 32
			var conns []*sql.Conn
			for range burst {
				c, err := s.DB().Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			for _, c := range conns {
				c.Close()
			}
			if st := s.DB().Stats(); st.MaxIdleClosed != 0 || st.Idle != burst {
				t.Errorf("after %d connections returned: %d idle, %d closed as surplus idle; want %d and 0", burst, st.Idle, st.MaxIdleClosed, burst)
			}
		})
	}
}
