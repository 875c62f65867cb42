package sqlstore

import (
	"context"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// ScanAllWhere is ScanAll with a WHERE clause: the database filters
// (storage.FilteredScanner). ScanAll is it with none.
func (s *Store) ScanAllWhere(ctx context.Context, sc storage.ScanAll, exprs []storage.Expr) ([]storage.Record, error) {
	m, err := s.meta(ctx, sc.Namespace, sc.Table)
	if err != nil {
		return nil, err
	}
	if err := storage.CheckScanAll(m, sc); err != nil {
		return nil, err
	}
	if exprs, err = storage.NormalizeExprs(m, exprs); err != nil {
		return nil, err
	}
	var w where
	w.exprs(s.dialect, m, exprs)
	return s.query(ctx, m, sc.Projection, w, nil, sc.Limit)
}
