package mysql

// RowEstimateQuery reads InnoDB's estimate from the data dictionary.
func (d Dialect) RowEstimateQuery(namespace, table string) (string, []any) {
	return "SELECT COALESCE(TABLE_ROWS, -1) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", []any{namespace, table}
}
