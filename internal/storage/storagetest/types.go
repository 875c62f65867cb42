package storagetest

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// typesTable has a column of every type besides its key.
func typesTable() *storage.TableMetadata {
	return &storage.TableMetadata{
		Table: "types",
		Columns: []storage.Column{
			col("id", storage.Int),
			col("c_bool", storage.Boolean), col("c_int", storage.Int), col("c_bigint", storage.BigInt),
			col("c_float", storage.Float), col("c_double", storage.Double), col("c_text", storage.Text),
			col("c_blob", storage.Blob), col("c_date", storage.Date), col("c_time", storage.Time),
			col("c_ts", storage.Timestamp), col("c_tstz", storage.TimestampTZ),
		},
		PartitionKey: []string{"id"},
	}
}

func utc(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

func clock(h, m, s, us int) time.Duration {
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second + time.Duration(us)*time.Microsecond
}

// valueCase is a value given to Put (in) and the canonical value Get must
// return (want).
type valueCase struct {
	name     string
	column   string
	in, want any
}

func same(name, column string, v any) valueCase { return valueCase{name, column, v, v} }

func dataTypeCases() []valueCase {
	tokyo := time.FixedZone("UTC+9", 9*3600)
	newYork := time.FixedZone("UTC-5", -5*3600)
	long := strings.Repeat("0123456789abcdef", 70000/16) // beyond 64 KiB
	bigBlob := make([]byte, 100_000)
	for i := range bigBlob {
		bigBlob[i] = byte(i * 7)
	}
	cases := []valueCase{
		same("true", "c_bool", true),
		same("false", "c_bool", false),

		same("zero", "c_int", int32(0)),
		same("max", "c_int", int32(math.MaxInt32)),
		same("min", "c_int", int32(math.MinInt32)),
		{"from int", "c_int", -42, int32(-42)},
		{"from int64", "c_int", int64(7), int32(7)},

		same("zero", "c_bigint", int64(0)),
		same("max 2^53-1", "c_bigint", int64(storage.MaxBigInt)),
		same("min -(2^53-1)", "c_bigint", int64(storage.MinBigInt)),
		{"from int", "c_bigint", 1 << 40, int64(1 << 40)},
		{"from int32", "c_bigint", int32(-5), int64(-5)},

		same("zero", "c_float", float32(0)),
		same("pi", "c_float", float32(math.Pi)),
		same("tiny negative", "c_float", float32(-1.5e-30)),
		same("max", "c_float", float32(math.MaxFloat32)),
		same("smallest normal", "c_float", float32(1.17549435e-38)),
		{"from float64", "c_float", 0.1, float32(0.1)},
		{"from int", "c_float", 3, float32(3)},

		same("zero", "c_double", float64(0)),
		same("pi", "c_double", math.Pi),
		same("0.1", "c_double", 0.1),
		same("max", "c_double", math.MaxFloat64),
		same("smallest normal", "c_double", 2.2250738585072014e-308),
		same("-1e100", "c_double", -1e100),
		same("2^53+1", "c_double", float64(1<<53+1)),
		{"from float32", "c_double", float32(0.5), float64(0.5)},

		same("empty", "c_text", ""),
		same("ascii", "c_text", "hello, world"),
		same("unicode", "c_text", "日本語 ünïcödé ñ 😀 𝄞"),
		same("trailing space", "c_text", "padded  "),
		same("quotes and backslashes", "c_text", `it's "quoted" \ and ; -- not sql`),
		same("control characters", "c_text", "tab\tnewline\ncr\r"),
		same("long", "c_text", long),

		same("empty", "c_blob", []byte{}),
		same("all bytes", "c_blob", allBytes()),
		same("nul", "c_blob", []byte{0}),
		same("trailing zeros", "c_blob", []byte{1, 0, 0}),
		same("large", "c_blob", bigBlob),
		{"from string", "c_blob", "raw", []byte("raw")},

		same("leap day", "c_date", utc(2024, 2, 29, 0, 0, 0, 0)),
		same("first", "c_date", utc(1000, 1, 1, 0, 0, 0, 0)),
		same("last", "c_date", utc(9999, 12, 31, 0, 0, 0, 0)),
		same("before the epoch", "c_date", utc(1969, 12, 31, 0, 0, 0, 0)),
		{"from string", "c_date", "2000-01-01", utc(2000, 1, 1, 0, 0, 0, 0)},
		{"from time of day elsewhere", "c_date", time.Date(2024, 3, 10, 23, 30, 0, 0, newYork), utc(2024, 3, 10, 0, 0, 0, 0)},

		same("midnight", "c_time", time.Duration(0)),
		same("last microsecond", "c_time", clock(23, 59, 59, 999999)),
		same("microseconds", "c_time", clock(12, 34, 56, 789012)),
		same("one microsecond", "c_time", time.Microsecond),
		{"from string", "c_time", "01:02:03.5", clock(1, 2, 3, 500000)},
		{"nanoseconds truncated", "c_time", clock(1, 0, 0, 1) + 999*time.Nanosecond, clock(1, 0, 0, 1)},

		same("milliseconds", "c_ts", utc(2024, 5, 6, 7, 8, 9, 123_000_000)),
		same("first", "c_ts", utc(1000, 1, 1, 0, 0, 0, 0)),
		same("last", "c_ts", utc(9999, 12, 31, 23, 59, 59, 999_000_000)),
		same("before the epoch", "c_ts", utc(1969, 12, 31, 23, 59, 59, 1_000_000)),
		{"wall clock of another zone kept", "c_ts", time.Date(2024, 1, 2, 3, 4, 5, 6_789_000, tokyo), utc(2024, 1, 2, 3, 4, 5, 6_000_000)},
		{"sub-millisecond truncated", "c_ts", utc(2024, 1, 1, 0, 0, 0, 999_999), utc(2024, 1, 1, 0, 0, 0, 0)},

		same("milliseconds", "c_tstz", utc(2024, 5, 6, 7, 8, 9, 123_000_000)),
		same("first", "c_tstz", utc(1000, 1, 1, 0, 0, 0, 0)),
		same("last", "c_tstz", utc(9999, 12, 31, 23, 59, 59, 999_000_000)),
		same("before the epoch", "c_tstz", utc(1969, 12, 31, 23, 59, 59, 1_000_000)),
		{"instant of another zone", "c_tstz", time.Date(2024, 1, 2, 3, 4, 5, 6_789_000, tokyo), utc(2024, 1, 1, 18, 4, 5, 6_000_000)},
		{"sub-millisecond truncated", "c_tstz", utc(2024, 1, 1, 0, 0, 0, 999_999), utc(2024, 1, 1, 0, 0, 0, 0)},
	}
	for _, c := range typesTable().Columns[1:] {
		cases = append(cases, same("null", c.Name, nil))
	}
	return cases
}

func testDataTypes(t *testing.T, h Harness) {
	f := newFixture(t, h)
	m := f.createTable(typesTable())
	allNull := storage.Record{}
	for _, c := range m.Columns[1:] {
		allNull[c.Name] = nil
	}
	recordWith := func(id int32, column string, v any) storage.Record {
		r := storage.Record{"id": id}
		for c := range allNull {
			r[c] = nil
		}
		r[column] = v
		return r
	}

	t.Run("RoundTrip", func(t *testing.T) {
		// Each value alone in its own record, written then read back, in a
		// new store too (no state of the writer helps).
		cases := dataTypeCases()
		for i, c := range cases {
			if h.refuses(c.column, c.in) {
				err := f.s.Put(f.ctx, storage.Put{Namespace: m.Namespace, Table: m.Table, Values: storage.Record{"id": i, c.column: c.in}})
				wantError(t, fmt.Sprintf("put of %s, which the engine refuses, into %s", show(c.in), c.column), err, c.column)
				continue
			}
			mustPut(t, f.ctx, f.s, m, storage.Record{"id": i, c.column: c.in})
		}
		reader := f.open()
		for i, c := range cases {
			if h.refuses(c.column, c.in) {
				continue
			}
			t.Run(c.column+"/"+c.name, func(t *testing.T) {
				want := recordWith(int32(i), c.column, c.want)
				checkGet(t, f.ctx, f.s, m, storage.Key{"id": i}, want)
				checkGet(t, f.ctx, reader, m, storage.Key{"id": i}, want)
				// Projected alone, and compared by a condition (the value
				// is stored exactly as given, so EQ holds).
				got := mustGet(t, f.ctx, reader, m, storage.Key{"id": i}, c.column)
				checkRecord(t, "projection", got, storage.Record{c.column: c.want})
				cond := storage.Expr{Column: c.column, Op: storage.EQ, Value: c.in}
				if c.want == nil {
					cond = storage.Expr{Column: c.column, Op: storage.IsNull}
				}
				err := f.s.Put(f.ctx, storage.Put{Namespace: m.Namespace, Table: m.Table,
					Values:    storage.Record{"id": i, c.column: c.in},
					Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{cond}}})
				if err != nil {
					t.Errorf("PutIf %s %v %s: %v", c.column, cond.Op, show(c.in), err)
				}
			})
		}
	})

	t.Run("WholeRecord", func(t *testing.T) {
		full := storage.Record{
			"id": int32(1000), "c_bool": true, "c_int": int32(-7), "c_bigint": int64(storage.MaxBigInt),
			"c_float": float32(2.5), "c_double": -0.125, "c_text": "ü", "c_blob": []byte{0, 0xff},
			"c_date": utc(2020, 2, 2, 0, 0, 0, 0), "c_time": clock(1, 2, 3, 4),
			"c_ts": utc(2020, 2, 2, 1, 2, 3, 4_000_000), "c_tstz": utc(2021, 3, 4, 5, 6, 7, 8_000_000),
		}
		mustPut(t, f.ctx, f.s, m, full)
		checkGet(t, f.ctx, f.s, m, storage.Key{"id": 1000}, full)
		// Every column back to NULL explicitly.
		nulls := recordWith(1000, "c_bool", nil)
		mustPut(t, f.ctx, f.s, m, nulls)
		checkGet(t, f.ctx, f.s, m, storage.Key{"id": 1000}, nulls)
	})

	t.Run("Invalid", func(t *testing.T) {
		cases := []struct {
			column string
			value  any
		}{
			{"c_bool", 1},
			{"c_bool", "true"},
			{"c_int", int64(math.MaxInt32) + 1},
			{"c_int", int64(math.MinInt32) - 1},
			{"c_int", "1"},
			{"c_int", 1.5},
			{"c_int", uint64(1)},
			{"c_bigint", int64(storage.MaxBigInt) + 1},
			{"c_bigint", int64(storage.MinBigInt) - 1},
			{"c_bigint", int64(math.MaxInt64)},
			{"c_bigint", "1"},
			{"c_float", "1.5"},
			{"c_float", 1e300},
			{"c_float", -1e300},
			{"c_float", float32(math.NaN())},
			{"c_float", math.Inf(1)},
			{"c_float", float32(math.Inf(-1))},
			{"c_double", "1.5"},
			{"c_double", math.NaN()},
			{"c_double", math.Inf(1)},
			{"c_double", math.Inf(-1)},
			{"c_double", float32(math.Inf(1))},
			{"c_double", true},
			{"c_text", 5},
			{"c_text", []byte("bytes")},
			{"c_text", "invalid utf-8 \xff\xfe"},
			{"c_blob", 5},
			{"c_blob", true},
			{"c_date", "2024-13-01"},
			{"c_date", "yesterday"},
			{"c_date", 5},
			{"c_time", -time.Second},
			{"c_time", 24 * time.Hour},
			{"c_time", "25:00:00"},
			{"c_time", 5},
			{"c_ts", "2024-01-01 00:00:00"},
			{"c_ts", 5},
			{"c_tstz", "2024-01-01T00:00:00Z"},
			{"c_tstz", int64(5)},
			{"no_such_column", 1},
		}
		for i, c := range cases {
			id := 5000 + i
			t.Run(fmt.Sprintf("%s=%s", c.column, show(c.value)), func(t *testing.T) {
				// A valid column besides the bad one: nothing may be written.
				err := f.s.Put(f.ctx, storage.Put{Namespace: m.Namespace, Table: m.Table,
					Values: storage.Record{"id": id, "c_text": "must not be written", c.column: c.value}})
				wantError(t, "put", err, m.FullName(), c.column)
				checkGet(t, f.ctx, f.s, m, storage.Key{"id": id}, nil)
				// The same value in a condition is rejected too.
				mustPut(t, f.ctx, f.s, m, storage.Record{"id": id})
				err = f.s.Put(f.ctx, storage.Put{Namespace: m.Namespace, Table: m.Table,
					Values: storage.Record{"id": id, "c_text": "must not be written"},
					Condition: storage.Condition{Kind: storage.PutIf,
						Exprs: []storage.Expr{{Column: c.column, Op: storage.NE, Value: c.value}}}})
				wantError(t, "condition", err, m.FullName(), c.column)
				checkGet(t, f.ctx, f.s, m, storage.Key{"id": id}, recordWith(int32(id), "c_text", nil))
			})
		}
	})
}

// testKeyTypes uses every type as a partition key and as a clustering key.
func testKeyTypes(t *testing.T, h Harness) {
	f := newFixture(t, h)
	ns := f.namespace("keys")
	type keyCase struct {
		typ    storage.DataType
		values []any // canonical, strictly increasing
	}
	cases := []keyCase{
		{storage.Boolean, []any{false, true}},
		{storage.Int, []any{int32(math.MinInt32), int32(-1), int32(0), int32(1), int32(math.MaxInt32)}},
		{storage.BigInt, []any{int64(storage.MinBigInt), int64(-1), int64(0), int64(storage.MaxBigInt)}},
		{storage.Float, []any{float32(-2.5), float32(0), float32(0.1), float32(1e20)}},
		{storage.Double, []any{-1e100, 0.0, 0.1, math.Pi, 1e100}},
		{storage.Text, []any{"", "A", "B", "a", "a ", "ab", "é", "日本", "😀"}},
		{storage.Blob, []any{[]byte{}, []byte{0}, []byte{0, 0}, []byte{1}, []byte{0x7f}, []byte{0x80}, []byte{0xff}}},
		{storage.Date, []any{utc(1000, 1, 1, 0, 0, 0, 0), utc(1969, 12, 31, 0, 0, 0, 0), utc(2024, 2, 29, 0, 0, 0, 0), utc(9999, 12, 31, 0, 0, 0, 0)}},
		{storage.Time, []any{time.Duration(0), time.Microsecond, clock(12, 0, 0, 1), clock(23, 59, 59, 999999)}},
		{storage.Timestamp, []any{utc(1000, 1, 1, 0, 0, 0, 0), utc(1969, 12, 31, 23, 59, 59, 999_000_000), utc(2024, 1, 1, 0, 0, 0, 1_000_000), utc(9999, 12, 31, 23, 59, 59, 999_000_000)}},
		{storage.TimestampTZ, []any{utc(1000, 1, 1, 0, 0, 0, 0), utc(1970, 1, 1, 0, 0, 0, 0), utc(2024, 1, 1, 0, 0, 0, 1_000_000), utc(9999, 12, 31, 23, 59, 59, 999_000_000)}},
	}
	for _, c := range cases {
		t.Run(c.typ.String(), func(t *testing.T) {
			m := f.createTable(&storage.TableMetadata{
				Namespace: ns, Table: "k_" + strings.ToLower(c.typ.String()),
				Columns:       []storage.Column{col("p", c.typ), col("c", c.typ), col("v", storage.Int)},
				PartitionKey:  []string{"p"},
				ClusteringKey: []storage.ClusteringKey{asc("c")},
			})
			// Every pair of values is a distinct record.
			partitions := 0
			for i, p := range c.values {
				if h.refuses("p", p) {
					err := f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: m.Table, Values: storage.Record{"p": p, "c": c.values[0], "v": 0}})
					wantError(t, fmt.Sprintf("put with the partition key %s, which the engine refuses", show(p)), err, `"p"`)
					continue
				}
				partitions++
				for j, ck := range c.values {
					mustPut(t, f.ctx, f.s, m, storage.Record{"p": p, "c": ck, "v": i*100 + j})
				}
			}
			for i, p := range c.values {
				if h.refuses("p", p) {
					continue
				}
				for j, ck := range c.values {
					checkGet(t, f.ctx, f.s, m, storage.Key{"p": p, "c": ck},
						storage.Record{"p": p, "c": ck, "v": int32(i*100 + j)})
				}
				recs := mustScan(t, f.ctx, f.s, storage.Scan{Namespace: ns, Table: m.Table, Partition: storage.Key{"p": p}})
				if len(recs) != len(c.values) {
					t.Fatalf("scan of partition %s: %d records, want %d: %v", show(p), len(recs), len(c.values), recs)
				}
				for j, r := range recs {
					checkRecord(t, fmt.Sprintf("scan of partition %s, record %d", show(p), j), r,
						storage.Record{"p": p, "c": c.values[j], "v": int32(i*100 + j)})
				}
			}
			all, err := f.s.ScanAll(f.ctx, storage.ScanAll{Namespace: ns, Table: m.Table})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != partitions*len(c.values) {
				t.Errorf("ScanAll: %d records, want %d", len(all), partitions*len(c.values))
			}
		})
	}
}
