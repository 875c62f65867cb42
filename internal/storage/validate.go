package storage

import (
	"fmt"
	"slices"
)

// These checks are shared by every engine so that bad input gets the same
// clear error everywhere, before any I/O.

// NormalizeKey checks that key holds exactly the named columns and converts
// its values to their canonical types.
func NormalizeKey(m *TableMetadata, key Key, columns []string, what string) (Key, error) {
	out := make(Key, len(key))
	for _, c := range columns {
		v, ok := key[c]
		if !ok {
			return nil, fmt.Errorf("%s of %s is missing key column %q", what, m.FullName(), c)
		}
		if v == nil {
			return nil, fmt.Errorf("%s of %s: key column %q cannot be NULL", what, m.FullName(), c)
		}
		nv, err := normalizeColumn(m, c, v)
		if err != nil {
			return nil, err
		}
		out[c] = nv
	}
	for c := range key {
		if _, ok := out[c]; !ok {
			return nil, fmt.Errorf("%s of %s: %q is not one of its key columns %v", what, m.FullName(), c, columns)
		}
	}
	return out, nil
}

func normalizeColumn(m *TableMetadata, column string, v any) (any, error) {
	t, err := m.ColumnType(column)
	if err != nil {
		return nil, err
	}
	nv, err := Normalize(t, v)
	if err != nil {
		return nil, fmt.Errorf("%s column %q: %w", m.FullName(), column, err)
	}
	return nv, nil
}

// NormalizeRecord checks a Put's values: the full key, known columns only.
func NormalizeRecord(m *TableMetadata, values Record) (Record, error) {
	out := make(Record, len(values))
	for c, v := range values {
		nv, err := normalizeColumn(m, c, v)
		if err != nil {
			return nil, err
		}
		out[c] = nv
	}
	for _, k := range m.KeyColumns() {
		if out[k] == nil {
			return nil, fmt.Errorf("put into %s is missing key column %q", m.FullName(), k)
		}
	}
	return out, nil
}

// NormalizeExprs checks condition expressions against the table.
func NormalizeExprs(m *TableMetadata, exprs []Expr) ([]Expr, error) {
	out := make([]Expr, len(exprs))
	for i, e := range exprs {
		if _, ok := opNames[e.Op]; !ok {
			return nil, fmt.Errorf("condition on %s column %q: unknown operator %d", m.FullName(), e.Column, e.Op)
		}
		v := e.Value
		if e.Op == IsNull || e.Op == IsNotNull {
			v = nil
			if _, err := m.ColumnType(e.Column); err != nil {
				return nil, err
			}
		} else {
			if v == nil {
				return nil, fmt.Errorf("condition on %s column %q: %v needs a value (use IS_NULL to test for NULL)", m.FullName(), e.Column, e.Op)
			}
			nv, err := normalizeColumn(m, e.Column, v)
			if err != nil {
				return nil, err
			}
			v = nv
		}
		out[i] = Expr{Column: e.Column, Op: e.Op, Value: v}
	}
	return out, nil
}

// CheckProjection checks that every projected column exists.
func CheckProjection(m *TableMetadata, cols []string) error {
	for _, c := range cols {
		if _, err := m.ColumnType(c); err != nil {
			return err
		}
	}
	return nil
}

// NormalizeBound checks a scan bound holds a non-empty prefix of the
// clustering key.
func NormalizeBound(m *TableMetadata, b *Bound, what string) (*Bound, error) {
	if b == nil {
		return nil, nil
	}
	if len(b.Key) == 0 || len(b.Key) > len(m.ClusteringKey) {
		return nil, fmt.Errorf("scan %s of %s must name a prefix of the clustering key %v", what, m.FullName(), m.ClusteringKey)
	}
	prefix := make([]string, len(b.Key))
	for i := range prefix {
		prefix[i] = m.ClusteringKey[i].Name
	}
	k, err := NormalizeKey(m, b.Key, prefix, "scan "+what)
	if err != nil {
		return nil, err
	}
	return &Bound{Key: k, Inclusive: b.Inclusive}, nil
}

// CheckOrdering accepts orderings on clustering columns only.
func CheckOrdering(m *TableMetadata, ord []ClusteringKey) error {
	for _, o := range ord {
		if _, ok := m.ClusteringOrder(o.Name); !ok {
			return fmt.Errorf("scan of %s can only be ordered by clustering columns, not %q", m.FullName(), o.Name)
		}
	}
	return nil
}

// BoundColumns returns the clustering columns a bound's key covers, in order.
func BoundColumns(m *TableMetadata, b *Bound) []string {
	cols := make([]string, len(b.Key))
	for i := range cols {
		cols[i] = m.ClusteringKey[i].Name
	}
	return cols
}

// CheckedScan is a Scan whose partition and bounds are normalized.
type CheckedScan struct {
	Partition  Key
	Start, End *Bound
}

// CheckScan checks a scan against the table: partition key, bounds,
// ordering, projection and limit.
func CheckScan(m *TableMetadata, sc Scan) (CheckedScan, error) {
	var c CheckedScan
	var err error
	if c.Partition, err = NormalizeKey(m, sc.Partition, m.PartitionKey, "scan partition"); err != nil {
		return c, err
	}
	if c.Start, err = NormalizeBound(m, sc.Start, "start"); err != nil {
		return c, err
	}
	if c.End, err = NormalizeBound(m, sc.End, "end"); err != nil {
		return c, err
	}
	if err := CheckOrdering(m, sc.Ordering); err != nil {
		return c, err
	}
	if err := CheckProjection(m, sc.Projection); err != nil {
		return c, err
	}
	if sc.Limit < 0 {
		return c, fmt.Errorf("scan of %s: negative limit %d", m.FullName(), sc.Limit)
	}
	return c, nil
}

// SortRecords orders records by the given clustering columns (stable).
func SortRecords(recs []Record, ordering []ClusteringKey) {
	slices.SortStableFunc(recs, func(a, b Record) int {
		for _, o := range ordering {
			c := Compare(a[o.Name], b[o.Name])
			if o.Order == Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
}

// ScanOrdering completes a scan's ordering as ScalarDB does: clustering
// columns it does not name follow in the table's clustering order, all
// reversed when the first ordering given reverses the table's. Without it
// SQL leaves their order undefined.
func ScanOrdering(m *TableMetadata, ordering []ClusteringKey) []ClusteringKey {
	if len(ordering) == 0 {
		return m.ClusteringKey
	}
	first, _ := m.ClusteringOrder(ordering[0].Name)
	reverse := ordering[0].Order != first
	out := slices.Clone(ordering)
	for _, c := range m.ClusteringKey {
		if slices.ContainsFunc(ordering, func(o ClusteringKey) bool { return o.Name == c.Name }) {
			continue
		}
		if reverse && c.Order == Asc {
			c.Order = Desc
		} else if reverse {
			c.Order = Asc
		}
		out = append(out, c)
	}
	return out
}

// CheckScanAll checks a ScanAll's projection and limit.
func CheckScanAll(m *TableMetadata, sa ScanAll) error {
	if err := CheckProjection(m, sa.Projection); err != nil {
		return err
	}
	if sa.Limit < 0 {
		return fmt.Errorf("scan of %s: negative limit %d", m.FullName(), sa.Limit)
	}
	return nil
}

// CheckGet checks a Get's key and projection and returns its normalized key.
func CheckGet(m *TableMetadata, g Get) (Key, error) {
	key, err := NormalizeKey(m, g.Key, m.KeyColumns(), "get")
	if err != nil {
		return nil, err
	}
	return key, CheckProjection(m, g.Projection)
}
