package sqlite

// RowEstimateQuery counts: SQLite keeps no estimate, and counting an
// embedded database's table is quick next to backing it up.
func (d Dialect) RowEstimateQuery(namespace, table string) (string, []any) {
	return "SELECT count(*) FROM " + d.Table(namespace, table), nil
}
