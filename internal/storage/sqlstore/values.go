package sqlstore

import (
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// nullBytes keeps NULL apart from an empty BLOB, which []byte cannot.
type nullBytes struct {
	b     []byte
	valid bool
}

func (n *nullBytes) Scan(src any) error {
	switch x := src.(type) {
	case nil:
		n.valid = false
	case []byte:
		n.b, n.valid = append([]byte{}, x...), true
	case string:
		n.b, n.valid = []byte(x), true
	default:
		return fmt.Errorf("cannot read %T as BLOB", src)
	}
	return nil
}

// StandardScanTarget reads the types every engine stores natively; the
// temporal types are the dialect's own business.
func StandardScanTarget(t storage.DataType) (any, func() (any, error)) {
	switch t {
	case storage.Boolean:
		var v sql.NullBool
		return &v, func() (any, error) { return nullable(v.Valid, v.Bool), nil }
	case storage.Int:
		var v sql.NullInt32
		return &v, func() (any, error) { return nullable(v.Valid, v.Int32), nil }
	case storage.BigInt:
		var v sql.NullInt64
		return &v, func() (any, error) { return nullable(v.Valid, v.Int64), nil }
	case storage.Float:
		var v sql.NullFloat64
		return &v, func() (any, error) { return nullable(v.Valid, float32(v.Float64)), nil }
	case storage.Double:
		var v sql.NullFloat64
		return &v, func() (any, error) { return nullable(v.Valid, v.Float64), nil }
	case storage.Text:
		var v sql.NullString
		return &v, func() (any, error) { return nullable(v.Valid, v.String), nil }
	case storage.Blob:
		var v nullBytes
		return &v, func() (any, error) { return nullable(v.valid, v.b), nil }
	}
	panic(fmt.Sprintf("StandardScanTarget: %v is not a standard type", t))
}

// TemporalScanTarget reads DATE, TIMESTAMP and TIMESTAMPTZ from engines that
// return time.Time, and TIME from engines that print it as text.
func TemporalScanTarget(t storage.DataType) (any, func() (any, error)) {
	if t == storage.Time {
		var v sql.NullString
		return &v, func() (any, error) {
			if !v.Valid {
				return nil, nil
			}
			return storage.ParseTimeOfDay(v.String)
		}
	}
	var v sql.NullTime
	return &v, func() (any, error) {
		if !v.Valid {
			return nil, nil
		}
		return storage.Normalize(t, v.Time)
	}
}

// TemporalToDriver passes time.Time through and prints TIME as text.
func TemporalToDriver(t storage.DataType, v any) any {
	if d, ok := v.(time.Duration); ok && t == storage.Time {
		return storage.FormatTimeOfDay(d)
	}
	return v
}

// IsTemporal reports whether a type is one of the date and time types.
func IsTemporal(t storage.DataType) bool {
	switch t {
	case storage.Date, storage.Time, storage.Timestamp, storage.TimestampTZ:
		return true
	}
	return false
}

func nullable[T any](valid bool, v T) any {
	if !valid {
		return nil
	}
	return v
}

// Placeholders lists n placeholders separated by commas.
func Placeholders(d Dialect, n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = d.Placeholder(i + 1)
	}
	return strings.Join(ps, ", ")
}

// AssignExcluded is "c = excluded.c, ..." for an upsert's update list.
func AssignExcluded(cols []string, excluded string) string {
	as := make([]string, len(cols))
	for i, c := range cols {
		as[i] = c + " = " + excluded + "." + c
	}
	return strings.Join(as, ", ")
}

// Insert is a plain INSERT of cols, for the dialects' upserts.
func Insert(d Dialect, table string, cols []string) string {
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + Placeholders(d, len(cols)) + ")"
}
