package postgres

// RowEstimateQuery reads the planner's estimate, which ANALYZE and
// autovacuum keep (-1 for a table never analyzed).
func (d Dialect) RowEstimateQuery(namespace, table string) (string, []any) {
	return "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2", []any{namespace, table}
}
