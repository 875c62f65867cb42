package sqlstore

import "context"

// EstimateRows says about how many rows a table holds, from the engine's
// statistics where it keeps them: for progress, never for correctness
// (negative: not known).
func (s *Store) EstimateRows(ctx context.Context, namespace, table string) (int64, error) {
	q, args := s.dialect.RowEstimateQuery(s.PhysicalNamespace(namespace), table)
	var n int64
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return -1, s.wrap(err, "estimate the rows of "+namespace+"."+table)
	}
	return n, nil
}
