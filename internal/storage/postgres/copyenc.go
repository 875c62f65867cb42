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
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// COPY's binary format (PostgreSQL's "COPY", "Binary Format"): a header,
// then per row the number of fields and each field as its length (-1:
// NULL) and its bytes in the type's binary send format, then -1.
var (
	copyHeader  = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	copyTrailer = []byte{0xff, 0xff}
	null        = []byte{0xff, 0xff, 0xff, 0xff}
)

// slotFunc appends non-NULL value i of a row in typed slots, length
// first.
type slotFunc func(buf []byte, v *sqlstore.Values, i int) []byte

// column is a storage type and the PostgreSQL type of the column it goes
// into (a domain's base type).
type column struct {
	t   storage.DataType
	oid uint32
}

// y2k is PostgreSQL's epoch for dates and times, in Unix seconds.
const y2k = 946_684_800

// slotEncoders write each storage type's slot (sqlstore.Values) as the
// column's type receives it, the same bytes pgx writes for the canonical
// Go value: DATE the day as written, TIME microseconds, TIMESTAMP the
// wall clock and TIMESTAMPTZ the instant, microseconds since 2000.
var slotEncoders = map[column]slotFunc{
	{storage.Boolean, pgtype.BoolOID}: func(b []byte, v *sqlstore.Values, i int) []byte {
		return append(b, 0, 0, 0, 1, byte(v.Int[i]))
	},
	{storage.Int, pgtype.Int4OID}:    putInt4,
	{storage.Int, pgtype.Int8OID}:    putInt8,
	{storage.BigInt, pgtype.Int8OID}: putInt8,
	{storage.Float, pgtype.Float4OID}: func(b []byte, v *sqlstore.Values, i int) []byte {
		return be32(append(b, 0, 0, 0, 4), math.Float32bits(float32(v.Float[i])))
	},
	{storage.Float, pgtype.Float8OID}:  putFloat8,
	{storage.Double, pgtype.Float8OID}: putFloat8,
	{storage.Text, pgtype.TextOID}:     bytesOf,
	{storage.Text, pgtype.VarcharOID}:  bytesOf,
	{storage.Blob, pgtype.ByteaOID}:    bytesOf,
	{storage.Date, pgtype.DateOID}: func(b []byte, v *sqlstore.Values, i int) []byte {
		return be32(append(b, 0, 0, 0, 4), uint32(int32(v.Int[i]-y2k/86400)))
	},
	{storage.Time, pgtype.TimeOID}:               putInt8,
	{storage.Timestamp, pgtype.TimestampOID}:     sinceY2K,
	{storage.TimestampTZ, pgtype.TimestamptzOID}: sinceY2K,
}

func putInt4(b []byte, v *sqlstore.Values, i int) []byte {
	return be32(append(b, 0, 0, 0, 4), uint32(int32(v.Int[i])))
}

func putInt8(b []byte, v *sqlstore.Values, i int) []byte {
	return be64(append(b, 0, 0, 0, 8), uint64(v.Int[i]))
}

func putFloat8(b []byte, v *sqlstore.Values, i int) []byte {
	return be64(append(b, 0, 0, 0, 8), math.Float64bits(v.Float[i]))
}

func bytesOf(b []byte, v *sqlstore.Values, i int) []byte {
	return append(be32(b, uint32(len(v.Bytes[i]))), v.Bytes[i]...)
}

func sinceY2K(b []byte, v *sqlstore.Values, i int) []byte {
	return be64(append(b, 0, 0, 0, 8), uint64(v.Int[i]-y2k*1_000_000))
}

func be32(b []byte, x uint32) []byte { return binary.BigEndian.AppendUint32(b, x) }
func be64(b []byte, x uint64) []byte { return binary.BigEndian.AppendUint64(b, x) }

// encodeFunc appends a non-NULL value, length first.
type encodeFunc func(buf []byte, v any) ([]byte, error)

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
// encoder chosen once per column: a slot encoder where the column's pair
// of types has one, else pgx's plan (other).
type rowEncoder struct {
	names []string
	slot  []slotFunc
	other []encodeFunc
	vals  *sqlstore.Values // the slots a row of []any is put in
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
	e := &rowEncoder{vals: sqlstore.NewValues(m.Columns)}
	for _, col := range m.Columns {
		oid, ok := oids[col.Name]
		if !ok {
			return nil, fmt.Errorf("table %s has no column %s", table, col.Name)
		}
		c := column{col.Type, oid}
		var other encodeFunc
		slot, ok := slotEncoders[c]
		if !ok {
			other = planned(tx.Conn().TypeMap(), c)
		}
		e.names = append(e.names, col.Name)
		e.slot = append(e.slot, slot)
		e.other = append(e.other, other)
	}
	return e, nil
}

// appendRow encodes a row of canonical Go values (storage's).
func (e *rowEncoder) appendRow(buf []byte, row []any) ([]byte, error) {
	if len(row) != len(e.slot) {
		return buf, fmt.Errorf("a row of %d values for %d columns", len(row), len(e.slot))
	}
	for i, x := range row {
		e.vals.Null[i] = x == nil
		if x != nil && e.slot[i] != nil {
			if err := e.vals.Set(i, x); err != nil {
				return buf, fmt.Errorf("column %s: %w", e.names[i], err)
			}
		}
	}
	return e.appendValues(buf, e.vals, row)
}

// appendValues encodes a row in typed slots; row, if not nil, is the same
// row as Go values, for the columns pgx encodes.
func (e *rowEncoder) appendValues(buf []byte, v *sqlstore.Values, row []any) ([]byte, error) {
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(e.slot)))
	for i, slot := range e.slot {
		switch {
		case v.Null[i]:
			buf = append(buf, null...)
		case slot != nil:
			buf = slot(buf, v, i)
		default:
			x := v.Value(i)
			if row != nil {
				x = row[i]
			}
			var err error
			if buf, err = e.other[i](buf, x); err != nil {
				return buf, fmt.Errorf("column %s: %w", e.names[i], err)
			}
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
	next rowSource
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
		var err error
		r.buf, err = r.next(r.buf)
		if errors.Is(err, io.EOF) {
			r.buf, r.eof = append(r.buf, copyTrailer...), true
			break
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

// rowSource appends the next row, encoded, to buf, or says io.EOF after
// the last.
type rowSource func(buf []byte) ([]byte, error)

// rowsOf is the rows next gives, encoded by the encoder made for them.
func rowsOf(next func() ([]any, error)) func(*rowEncoder) rowSource {
	return func(e *rowEncoder) rowSource {
		return func(buf []byte) ([]byte, error) {
			row, err := next()
			if err != nil {
				return buf, err
			}
			return e.appendRow(buf, row)
		}
	}
}

// valuesOf is rowsOf for rows in typed slots.
func valuesOf(next func() (*sqlstore.Values, error)) func(*rowEncoder) rowSource {
	return func(e *rowEncoder) rowSource {
		return func(buf []byte) ([]byte, error) {
			v, err := next()
			if err != nil {
				return buf, err
			}
			return e.appendValues(buf, v, nil)
		}
	}
}

// copyRows runs a COPY FROM STDIN (binary) of the rows next gives.
func copyRows(ctx context.Context, pc *pgconn.PgConn, query string, next rowSource) (int64, error) {
	r := &copyReader{next: next, buf: append(make([]byte, 0, 128<<10), copyHeader...)}
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
