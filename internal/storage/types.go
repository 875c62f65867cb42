package storage

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// DataType is one of ScalarDB's column types.
type DataType int

const (
	Boolean DataType = iota + 1
	Int
	BigInt
	Float
	Double
	Text
	Blob
	Date
	Time
	Timestamp
	TimestampTZ
)

var typeNames = map[DataType]string{
	Boolean: "BOOLEAN", Int: "INT", BigInt: "BIGINT", Float: "FLOAT", Double: "DOUBLE",
	Text: "TEXT", Blob: "BLOB", Date: "DATE", Time: "TIME", Timestamp: "TIMESTAMP",
	TimestampTZ: "TIMESTAMPTZ",
}

func (d DataType) String() string {
	if s, ok := typeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int(d))
}

// AllTypes lists every type, in ScalarDB's order.
func AllTypes() []DataType {
	return []DataType{Boolean, Int, BigInt, Float, Double, Text, Blob, Date, Time, Timestamp, TimestampTZ}
}

// ParseDataType accepts a ScalarDB type name in any case.
func ParseDataType(s string) (DataType, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	for t, n := range typeNames {
		if n == u {
			return t, nil
		}
	}
	names := make([]string, 0, len(typeNames))
	for _, t := range AllTypes() {
		names = append(names, t.String())
	}
	return 0, fmt.Errorf("unknown data type %q (use one of %s)", s, strings.Join(names, ", "))
}

// The Go representation of each type, as stores return it:
//
//	BOOLEAN bool, INT int32, BIGINT int64, FLOAT float32, DOUBLE float64,
//	TEXT string, BLOB []byte, DATE time.Time (UTC midnight),
//	TIME time.Duration (since midnight, microsecond precision),
//	TIMESTAMP time.Time (wall clock kept as UTC, millisecond precision),
//	TIMESTAMPTZ time.Time (UTC instant, millisecond precision).
//
// nil is NULL.

// ScalarDB limits BIGINT to what a double holds exactly, so values survive
// every storage it supports; we keep the same bound for compatibility.
const (
	MaxBigInt = 1<<53 - 1
	MinBigInt = -(1<<53 - 1)
)

// Normalize converts a Go value given by a caller into the canonical
// representation of t, or explains why it cannot.
func Normalize(t DataType, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t {
	case Boolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case Int:
		if i, ok := toInt64(v); ok {
			if i < math.MinInt32 || i > math.MaxInt32 {
				return nil, fmt.Errorf("value %d out of range for INT", i)
			}
			return int32(i), nil
		}
	case BigInt:
		if i, ok := toInt64(v); ok {
			if i < MinBigInt || i > MaxBigInt {
				return nil, fmt.Errorf("value %d out of range for BIGINT (ScalarDB allows ±2^53-1)", i)
			}
			return i, nil
		}
	case Float:
		switch x := v.(type) {
		case float32:
			if err := finite(t, float64(x)); err != nil {
				return nil, err
			}
			return x, nil
		case float64:
			if err := finite(t, x); err != nil {
				return nil, err
			}
			if math.Abs(x) > math.MaxFloat32 {
				return nil, fmt.Errorf("value %g out of range for FLOAT", x)
			}
			return float32(x), nil
		}
		if i, ok := toInt64(v); ok {
			return float32(i), nil
		}
	case Double:
		switch x := v.(type) {
		case float32:
			if err := finite(t, float64(x)); err != nil {
				return nil, err
			}
			return float64(x), nil
		case float64:
			if err := finite(t, x); err != nil {
				return nil, err
			}
			return x, nil
		}
		if i, ok := toInt64(v); ok {
			return float64(i), nil
		}
	case Text:
		if s, ok := v.(string); ok {
			if !utf8.ValidString(s) {
				return nil, fmt.Errorf("TEXT value is not valid UTF-8 (at byte %d; use a BLOB for bytes)", invalidUTF8At(s))
			}
			return s, nil
		}
	case Blob:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case Date:
		switch x := v.(type) {
		case time.Time:
			y, m, d := x.Date()
			return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
		case string:
			tm, err := time.Parse(time.DateOnly, x)
			if err != nil {
				return nil, fmt.Errorf("DATE %q: want YYYY-MM-DD", x)
			}
			return tm, nil
		}
	case Time:
		switch x := v.(type) {
		case time.Duration:
			if x < 0 || x >= 24*time.Hour {
				return nil, fmt.Errorf("TIME %v outside one day", x)
			}
			return x.Truncate(time.Microsecond), nil
		case string:
			return ParseTimeOfDay(x)
		}
	case Timestamp:
		if x, ok := v.(time.Time); ok {
			y, mo, d := x.Date()
			h, mi, s := x.Clock()
			return time.Date(y, mo, d, h, mi, s, x.Nanosecond(), time.UTC).Truncate(time.Millisecond), nil
		}
	case TimestampTZ:
		if x, ok := v.(time.Time); ok {
			return x.UTC().Truncate(time.Millisecond), nil
		}
	default:
		return nil, fmt.Errorf("unknown data type %v", t)
	}
	return nil, fmt.Errorf("a %T value cannot be stored in a %v column", v, t)
}

// finite rejects NaN and infinities, which not every storage holds (SQLite
// reads NaN back as NULL, MySQL refuses both).
func finite(t DataType, x float64) error {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return fmt.Errorf("%v value %v is not a finite number", t, x)
	}
	return nil
}

func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return len(s)
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	}
	return 0, false
}

// ParseTimeOfDay reads HH:MM:SS[.ffffff], as SQL engines print a TIME.
func ParseTimeOfDay(s string) (time.Duration, error) {
	var h, m int
	var sec float64
	if _, err := fmt.Sscanf(s, "%d:%d:%f", &h, &m, &sec); err != nil || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return 0, fmt.Errorf("TIME %q: want HH:MM:SS[.ffffff]", s)
	}
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(math.Round(sec*1e6))*time.Microsecond
	return d, nil
}

// FormatTimeOfDay prints a TIME value as HH:MM:SS.ffffff.
func FormatTimeOfDay(d time.Duration) string {
	us := d.Microseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%06d", us/3_600_000_000, us/60_000_000%60, us/1_000_000%60, us%1_000_000)
}

// Compare orders two canonical values of the same type; NULL sorts first.
func Compare(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	switch x := a.(type) {
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case int32:
		return cmp3(x, b.(int32))
	case int64:
		return cmp3(x, b.(int64))
	case float32:
		return cmp3(x, b.(float32))
	case float64:
		return cmp3(x, b.(float64))
	case string:
		return strings.Compare(x, b.(string))
	case []byte:
		return strings.Compare(string(x), string(b.([]byte)))
	case time.Duration:
		return cmp3(x, b.(time.Duration))
	case time.Time:
		return x.Compare(b.(time.Time))
	}
	panic(fmt.Sprintf("storage.Compare: unsupported %T", a))
}

func cmp3[T int32 | int64 | float32 | float64 | time.Duration](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Equal reports whether two canonical values are the same.
func Equal(a, b any) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	return Compare(a, b) == 0
}

// MarshalText writes the type's ScalarDB name, so manifests stay readable.
func (d DataType) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a ScalarDB type name.
func (d *DataType) UnmarshalText(b []byte) error {
	t, err := ParseDataType(string(b))
	*d = t
	return err
}
