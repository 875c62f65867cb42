package postgres

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

func pgxConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	// Our statements are built per table shape and repeat: prepared once per
	// connection (pgx's statement cache), PostgreSQL parses and plans each
	// only once instead of on every execution, about a quarter less server
	// CPU per transfer (docs/performance-transactions.md, "Where the time
	// goes"). A DSN that names its own default_query_exec_mode (e.g.
	// cache_describe behind a pooler without prepared statements) keeps it.
	if !strings.Contains(dsn, "default_query_exec_mode") {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	}
	return cfg, nil
}
