package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestQueryExecMode: statements are prepared once per connection unless the
// DSN chooses its own mode (a pooler without prepared statements needs
// cache_describe or simple_protocol).
func TestQueryExecMode(t *testing.T) {
	for _, tc := range []struct {
		dsn  string
		want pgx.QueryExecMode
	}{
		{"postgres://u@127.0.0.1:5432/db", pgx.QueryExecModeCacheStatement},
		{"postgres://u@127.0.0.1:5432/db?default_query_exec_mode=cache_describe", pgx.QueryExecModeCacheDescribe},
		{"host=127.0.0.1 dbname=db default_query_exec_mode=simple_protocol", pgx.QueryExecModeSimpleProtocol},
	} {
		cfg, err := pgxConfig(tc.dsn)
		if err != nil {
			t.Fatalf("%s: %v", tc.dsn, err)
		}
		if cfg.DefaultQueryExecMode != tc.want {
			t.Errorf("%s: mode %v, want %v", tc.dsn, cfg.DefaultQueryExecMode, tc.want)
		}
	}
}
