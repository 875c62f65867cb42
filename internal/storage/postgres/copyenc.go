package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// COPY's binary format (PostgreSQL's "COPY", "Binary Format"): a header,
// then per row the number of fields and each field as its length (-1:
// NULL) and its bytes in the type's binary send format, then -1.
var (
	copyHeader  = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	copyTrailer = []byte{0xff, 0xff}
	null        = []byte{0xff, 0xff, 0xff, 0xff}
)

// encodeFunc appends a non-NULL value of a column, length first.
type encodeFunc func(buf []byte, v any) ([]byte, error)

// column is a storage type and the PostgreSQL type of the column it goes
// into (a domain's base type).
type column struct {
	t   storage.DataType
	oid uint32
}

// y2k is PostgreSQL's epoch for dates and times, in Unix seconds.
const y2k = 946_684_800

// encoders write the canonical Go value of each storage type (storage
// docs) as the column's type receives it, the same bytes pgx writes.
var encoders = map[column]encodeFunc{
	{storage.Boolean, pgtype.BoolOID}: fixed(func(b []byte, x bool) []byte {
		if x {
			return append(b, 0, 0, 0, 1, 1)
		}
		return append(b, 0, 0, 0, 1, 0)
	}),
	{storage.Int, pgtype.Int4OID}:    fixed(func(b []byte, x int32) []byte { return be32(append(b, 0, 0, 0, 4), uint32(x)) }),
	{storage.Int, pgtype.Int8OID}:    fixed(func(b []byte, x int32) []byte { return be64(append(b, 0, 0, 0, 8), uint64(x)) }),
	{storage.BigInt, pgtype.Int8OID}: fixed(func(b []byte, x int64) []byte { return be64(append(b, 0, 0, 0, 8), uint64(x)) }),
	{storage.Float, pgtype.Float4OID}: fixed(func(b []byte, x float32) []byte {
		return be32(append(b, 0, 0, 0, 4), math.Float32bits(x))
	}),
	{storage.Float, pgtype.Float8OID}: fixed(func(b []byte, x float32) []byte {
		return be64(append(b, 0, 0, 0, 8), math.Float64bits(float64(x)))
	}),
	{storage.Double, pgtype.Float8OID}: fixed(func(b []byte, x float64) []byte {
		return be64(append(b, 0, 0, 0, 8), math.Float64bits(x))
	}),
	{storage.Text, pgtype.TextOID}:    fixed(text),
	{storage.Text, pgtype.VarcharOID}: fixed(text),
	{storage.Blob, pgtype.ByteaOID}: fixed(func(b []byte, x []byte) []byte {
		return append(be32(b, uint32(len(x))), x...)
	}),
	// The day of the date as written (pgx's DateCodec).
	{storage.Date, pgtype.DateOID}: fixed(func(b []byte, x time.Time) []byte {
		day := time.Date(x.Year(), x.Month(), x.Day(), 0, 0, 0, 0, time.UTC).Unix()
		return be32(append(b, 0, 0, 0, 4), uint32(int32((day-y2k)/86400)))
	}),
	{storage.Time, pgtype.TimeOID}: fixed(func(b []byte, x time.Duration) []byte {
		return be64(append(b, 0, 0, 0, 8), uint64(x.Microseconds()))
	}),
	// TIMESTAMP takes the wall clock as written, TIMESTAMPTZ the instant
	// (pgx's TimestampCodec and TimestamptzCodec).
	{storage.Timestamp, pgtype.TimestampOID}: fixed(func(b []byte, x time.Time) []byte {
		if x.Location() != time.UTC {
			x = time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), time.UTC)
		}
		return be64(append(b, 0, 0, 0, 8), uint64(micros(x)))
	}),
	{storage.TimestampTZ, pgtype.TimestamptzOID}: fixed(func(b []byte, x time.Time) []byte {
		return be64(append(b, 0, 0, 0, 8), uint64(micros(x)))
	}),
}

func text(b []byte, x string) []byte { return append(be32(b, uint32(len(x))), x...) }

func be32(b []byte, x uint32) []byte { return binary.BigEndian.AppendUint32(b, x) }
func be64(b []byte, x uint64) []byte { return binary.BigEndian.AppendUint64(b, x) }

// micros is microseconds since 2000-01-01 UTC, truncated as pgx does.
func micros(t time.Time) int64 {
	return (t.Unix()-y2k)*1_000_000 + int64(t.Nanosecond())/1000
}

// fixed makes an encodeFunc for values of Go type T.
func fixed[T any](put func([]byte, T) []byte) encodeFunc {
	return func(buf []byte, v any) ([]byte, error) {
		x, ok := v.(T)
		if !ok {
			var want T
			return buf, fmt.Errorf("a %T value where a %T was expected", v, want)
		}
		return put(buf, x), nil
	}
}

// planned encodes a column of any other type (NUMERIC, SMALLINT, CHAR(n),
// ...) with pgx's encode plan for it, looked up once per Go type instead
// of once per value.
func planned(tm *pgtype.Map, c column) encodeFunc {
	var plan pgtype.EncodePlan
	var planFor reflect.Type
	return func(buf []byte, v any) ([]byte, error) {
		if d, ok := v.(time.Duration); ok {
			v = pgtype.Time{Microseconds: d.Microseconds(), Valid: true}
		}
		if t := reflect.TypeOf(v); t != planFor {
			if plan = tm.PlanEncode(c.oid, pgtype.BinaryFormatCode, v); plan == nil {
				return buf, fmt.Errorf("PostgreSQL type oid %d cannot take a %v value (%T) in binary COPY", c.oid, c.t, v)
			}
			planFor = t
		}
		at := len(buf)
		out, err := plan.Encode(v, append(buf, 0, 0, 0, 0))
		if err != nil {
			return buf[:at], err
		}
		if out == nil {
			return append(buf[:at], null...), nil
		}
		binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
		return out, nil
	}
}

// rowEncoder writes rows of a table in COPY's binary format, with an
// encoder chosen once per column.
type rowEncoder struct {
	names []string
	enc   []encodeFunc
}

// columnTypesQuery gives each column's type, a domain's base type.
const columnTypesQuery = `SELECT a.attname, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END
 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`

func newRowEncoder(ctx context.Context, tx pgx.Tx, table string, m *storage.TableMetadata) (*rowEncoder, error) {
	oids := map[string]uint32{}
	rows, err := tx.Query(ctx, columnTypesQuery, table)
	if err != nil {
		return nil, err
	}
	var name string
	var oid uint32
	if _, err := pgx.ForEachRow(rows, []any{&name, &oid}, func() error {
		oids[name] = oid
		return nil
	}); err != nil {
		return nil, err
	}
	e := &rowEncoder{}
	for _, col := range m.Columns {
		oid, ok := oids[col.Name]
		if !ok {
			return nil, fmt.Errorf("table %s has no column %s", table, col.Name)
		}
		c := column{col.Type, oid}
		enc, ok := encoders[c]
		if !ok {
			enc = planned(tx.Conn().TypeMap(), c)
		}
		e.names = append(e.names, col.Name)
		e.enc = append(e.enc, enc)
	}
	return e, nil
}

func (e *rowEncoder) append(buf []byte, row []any) ([]byte, error) {
	if len(row) != len(e.enc) {
		return buf, fmt.Errorf("a row of %d values for %d columns", len(row), len(e.enc))
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(e.enc)))
	for i, v := range row {
		if v == nil {
			buf = append(buf, null...)
			continue
		}
		var err error
		if buf, err = e.enc[i](buf, v); err != nil {
			return buf, fmt.Errorf("column %s: %w", e.names[i], err)
		}
	}
	return buf, nil
}

// errCopyOver is what the reader says if pgconn reads on after the COPY
// it fed returned.
var errCopyOver = errors.New("the COPY is over")

// copyReader is the COPY's input: rows encoded as pgconn reads, from the
// goroutine pgconn reads in. The mutex keeps next from being called once
// copyRows has returned (pgconn can return before that goroutine stops).
type copyReader struct {
	mu   sync.Mutex
	over bool
	next func() ([]any, error)
	enc  *rowEncoder
	buf  []byte
	off  int
	eof  bool
	rows int64
	// err is the row stream's or the encoder's error: what the load
	// reports, rather than PostgreSQL's "COPY from stdin failed" it causes.
	err error
}

func (r *copyReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return 0, errCopyOver
	}
	r.buf = r.buf[:copy(r.buf, r.buf[r.off:])]
	r.off = 0
	for len(r.buf) < len(p) && !r.eof {
		row, err := r.next()
		if errors.Is(err, io.EOF) {
			r.buf, r.eof = append(r.buf, copyTrailer...), true
			break
		}
		if err == nil {
			r.buf, err = r.enc.append(r.buf, row)
		}
		if err != nil {
			r.err = err
			return 0, err
		}
		r.rows++
	}
	r.off = copy(p, r.buf)
	if r.eof && r.off == len(r.buf) {
		return r.off, io.EOF
	}
	return r.off, nil
}

// copyRows runs a COPY FROM STDIN (binary) of the rows next gives.
func copyRows(ctx context.Context, pc *pgconn.PgConn, query string, enc *rowEncoder, next func() ([]any, error)) (int64, error) {
	r := &copyReader{next: next, enc: enc, buf: append(make([]byte, 0, 128<<10), copyHeader...)}
	tag, err := pc.CopyFrom(ctx, r, query)
	r.mu.Lock()
	r.over = true
	r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	if err != nil {
		return 0, err
	}
	if tag.RowsAffected() != r.rows {
		return 0, fmt.Errorf("COPY loaded %d rows of the %d sent", tag.RowsAffected(), r.rows)
	}
	return r.rows, nil
}
