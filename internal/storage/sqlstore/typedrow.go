package sqlstore

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Values is one row in typed slots, values in the order of Cols, reused
// by the next row: a loader that knows the types reads them without an
// `any` (an allocation) per value (docs/performance.md, "PostgreSQL
// restore"). Slot i of a non-NULL value is, by Cols[i].Type:
//   - Int[i]: BOOLEAN (0 or 1), INT, BIGINT, DATE (days since 1970-01-01
//     of the date as written), TIME (microseconds), TIMESTAMP (the wall
//     clock as written) and TIMESTAMPTZ (the instant), microseconds since
//     1970-01-01 UTC;
//   - Float[i]: FLOAT, DOUBLE (a FLOAT's exact double);
//   - Bytes[i]: TEXT, BLOB, valid until the next row and never written
//     to (Set points it at a string's bytes).
type Values struct {
	Cols  []storage.Column
	Null  []bool
	Int   []int64
	Float []float64
	Bytes [][]byte
}

// NewValues makes the slots of a row of cols.
func NewValues(cols []storage.Column) *Values {
	n := len(cols)
	return &Values{Cols: cols, Null: make([]bool, n), Int: make([]int64, n), Float: make([]float64, n), Bytes: make([][]byte, n)}
}

// Value is value i as its canonical Go value (storage's), nil for NULL.
func (v *Values) Value(i int) any {
	if v.Null[i] {
		return nil
	}
	x := v.Int[i]
	switch v.Cols[i].Type {
	case storage.Boolean:
		return x == 1
	case storage.Int:
		return int32(x)
	case storage.BigInt:
		return x
	case storage.Float:
		return float32(v.Float[i])
	case storage.Double:
		return v.Float[i]
	case storage.Text:
		return string(v.Bytes[i])
	case storage.Blob:
		return append([]byte{}, v.Bytes[i]...)
	case storage.Date:
		return time.Unix(x*86400, 0).UTC()
	case storage.Time:
		return time.Duration(x) * time.Microsecond
	case storage.Timestamp, storage.TimestampTZ:
		return time.UnixMicro(x).UTC()
	}
	return nil
}

// Set puts a non-NULL canonical Go value into slot i: the inverse of
// Value, down to microseconds.
func (v *Values) Set(i int, x any) error {
	ok := true
	v.Null[i] = false
	switch t := v.Cols[i].Type; t {
	case storage.Boolean:
		v.Int[i] = 0
		if as[bool](x, &ok) {
			v.Int[i] = 1
		}
	case storage.Int:
		v.Int[i] = int64(as[int32](x, &ok))
	case storage.BigInt:
		v.Int[i] = as[int64](x, &ok)
	case storage.Float:
		v.Float[i] = float64(as[float32](x, &ok))
	case storage.Double:
		v.Float[i] = as[float64](x, &ok)
	case storage.Text:
		s := as[string](x, &ok)
		v.Bytes[i] = unsafe.Slice(unsafe.StringData(s), len(s)) // read only, as Bytes always is
	case storage.Blob:
		v.Bytes[i] = as[[]byte](x, &ok)
	case storage.Time:
		v.Int[i] = as[time.Duration](x, &ok).Microseconds()
	case storage.Date:
		tm := as[time.Time](x, &ok)
		v.Int[i] = time.Date(tm.Year(), tm.Month(), tm.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400
	case storage.Timestamp, storage.TimestampTZ:
		tm := as[time.Time](x, &ok)
		if t == storage.Timestamp && tm.Location() != time.UTC {
			tm = time.Date(tm.Year(), tm.Month(), tm.Day(), tm.Hour(), tm.Minute(), tm.Second(), tm.Nanosecond(), time.UTC)
		}
		v.Int[i] = tm.Unix()*1_000_000 + int64(tm.Nanosecond())/1000
	default:
		return fmt.Errorf("cannot load a value of type %v", t)
	}
	if !ok {
		return fmt.Errorf("a %T value where a %T was expected", x, v.Value(i)) // Value: the canonical type
	}
	return nil
}

// SetRow puts a row of canonical Go values (nil for NULL) into the slots:
// how rows of Go values reach an encoder that reads slots, so that there
// is one encoder per engine.
func (v *Values) SetRow(row []any) error {
	if len(row) != len(v.Cols) {
		return fmt.Errorf("a row of %d values for %d columns", len(row), len(v.Cols))
	}
	for i, x := range row {
		v.Null[i] = x == nil
		if x != nil {
			if err := v.Set(i, x); err != nil {
				return fmt.Errorf("column %s: %w", v.Cols[i].Name, err)
			}
		}
	}
	return nil
}

// as is x as a T; *ok becomes false where it is not one.
func as[T any](x any, ok *bool) T {
	t, is := x.(T)
	*ok = is
	return t
}

// Row appends the values to row[:0] as canonical Go values.
func (v *Values) Row(row []any) []any {
	row = row[:0]
	for i := range v.Cols {
		row = append(row, v.Value(i))
	}
	return row
}

// ValuesCopier is a Copier that also takes typed rows.
type ValuesCopier interface {
	CopyValues(ctx context.Context, s *Store, m *storage.TableMetadata, next func() (*Values, error)) (int64, error)
}

// LoadValues is LoadRows of typed rows: the dialect's ValuesCopier if it
// has one, else LoadRows of the values boxed.
func (s *Store) LoadValues(ctx context.Context, m *storage.TableMetadata, next func() (*Values, error)) (int64, error) {
	if c, ok := s.dialect.(ValuesCopier); ok {
		n, err := c.CopyValues(ctx, s, m, next)
		return n, s.wrap(err, "load "+m.FullName())
	}
	return s.LoadRows(ctx, m, Boxed(next))
}

// Boxed is next's rows as canonical Go values (one slice, reused), for a
// loader that takes those.
func Boxed(next func() (*Values, error)) func() ([]any, error) {
	var row []any
	return func() ([]any, error) {
		v, err := next()
		if err != nil {
			return nil, err
		}
		row = v.Row(row)
		return row, nil
	}
}
