package storage

import "context"

// FilteredScanner is a store that returns only the records of a table
// whose values satisfy every expression of where, as ScanAll returns them
// all. Finishing a cut needs the few records left in flight of tables that
// may hold millions: read whole, they would be held in memory at once.
type FilteredScanner interface {
	ScanAllWhere(ctx context.Context, sc ScanAll, where []Expr) ([]Record, error)
}
