package postgres

import "github.com/jackc/pgx/v5"

func pgxConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	// Our statements are built per table shape; caching their descriptions
	// is what makes repeated reads and writes cheap.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	return cfg, nil
}
