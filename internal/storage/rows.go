package storage

// A row is a record's values in the order of its table's columns: the
// bulk paths (backup, restore) carry rows, not maps (docs/performance.md).

// Record makes a record of a row of m's columns.
func (m *TableMetadata) Record(row []any) Record {
	rec := make(Record, len(m.Columns))
	for i, c := range m.Columns {
		rec[c.Name] = row[i]
	}
	return rec
}

// Row puts a record's values in the order of m's columns, into row if it
// is long enough.
func (m *TableMetadata) Row(rec Record, row []any) []any {
	row = row[:0]
	for _, c := range m.Columns {
		row = append(row, rec[c.Name])
	}
	return row
}
