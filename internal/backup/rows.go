package backup

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// The table stream format: a magic line, then one record after another,
// each value in column order as a presence byte and a type-specific
// payload (varints for integers and dates, fixed width for floats, length
// and bytes for text and blobs). It is deterministic, so unchanged rows in
// unchanged order make unchanged chunks, and engine-neutral, so a table
// restores into another engine.
const rowsMagic = "stillpoint rows v1\n"

const (
	tagNull   = 0
	tagValue  = 1
	tagEnd    = 2
	dayMillis = int64(24 * time.Hour / time.Millisecond)
)

// RowWriter encodes records of one table.
type RowWriter struct {
	w    *bufio.Writer
	cols []storage.Column
	buf  []byte
	rows int64
}

// NewRowWriter starts a stream for a table's columns.
func NewRowWriter(w io.Writer, cols []storage.Column) (*RowWriter, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString(rowsMagic); err != nil {
		return nil, err
	}
	return &RowWriter{w: bw, cols: cols}, nil
}

// WriteRow encodes one row: values in the order of the stream's columns.
func (rw *RowWriter) WriteRow(row []any) error {
	b := rw.buf[:0]
	for i, c := range rw.cols {
		v := row[i]
		if v == nil {
			b = append(b, tagNull)
			continue
		}
		b = append(b, tagValue)
		switch c.Type {
		case storage.Boolean:
			if v.(bool) {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		case storage.Int:
			b = binary.AppendVarint(b, int64(v.(int32)))
		case storage.BigInt:
			b = binary.AppendVarint(b, v.(int64))
		case storage.Float:
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v.(float32)))
		case storage.Double:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.(float64)))
		case storage.Text:
			s := v.(string)
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		case storage.Blob:
			s := v.([]byte)
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		case storage.Date:
			b = binary.AppendVarint(b, v.(time.Time).UnixMilli()/dayMillis)
		case storage.Time:
			b = binary.AppendVarint(b, v.(time.Duration).Microseconds())
		case storage.Timestamp, storage.TimestampTZ:
			b = binary.AppendVarint(b, v.(time.Time).UnixMilli())
		default:
			return fmt.Errorf("column %s: cannot encode type %v", c.Name, c.Type)
		}
	}
	rw.buf = b
	rw.rows++
	_, err := rw.w.Write(b)
	return err
}

// Close writes the end marker and flushes.
func (rw *RowWriter) Close() error {
	if err := rw.w.WriteByte(tagEnd); err != nil {
		return err
	}
	return rw.w.Flush()
}

// Rows is how many records were written.
func (rw *RowWriter) Rows() int64 { return rw.rows }

// RowReader decodes a table stream. It parses its own buffer rather than
// reading byte by byte through an io.ByteReader: decoding is most of a
// restore's client CPU (docs/performance.md).
type RowReader struct {
	src  io.Reader
	buf  []byte // buf[pos:] is read and not yet decoded
	pos  int
	err  error // src's, once it failed or ended
	cols []storage.Column
	row  []any
	vals *sqlstore.Values
}

// ErrTruncated means a stream ended before its end marker; ErrCorrupt
// that it does not decode.
var (
	ErrTruncated = errors.New("table stream is truncated")
	ErrCorrupt   = errors.New("corrupt table stream")
)

// NewRowReader checks the magic and reads rows of the given columns.
func NewRowReader(r io.Reader, cols []storage.Column) (*RowReader, error) {
	if len(cols) == 0 {
		return nil, errors.New("a table stream needs at least one column")
	}
	rr := &RowReader{src: r, buf: make([]byte, 0, 256<<10), cols: cols, vals: sqlstore.NewValues(cols)}
	if err := rr.fill(len(rowsMagic)); err != nil && !errors.Is(err, ErrTruncated) {
		return nil, err // the repository's: a chunk missing or damaged
	} else if err != nil || string(rr.buf[:len(rowsMagic)]) != rowsMagic {
		return nil, fmt.Errorf("%w: not a Stillpoint table stream (bad header)", ErrCorrupt)
	}
	rr.pos = len(rowsMagic)
	return rr, nil
}

// fill makes at least n bytes available at buf[pos:], or says why not:
// ErrTruncated where the stream ended first, else the source's error (a
// chunk missing or damaged, named in it).
func (rr *RowReader) fill(n int) error {
	for len(rr.buf)-rr.pos < n {
		if err := rr.more(); err != nil {
			return err
		}
	}
	return nil
}

// more reads at least one byte more into buf, after moving what is left
// to its start, or into a buffer twice the size where what is left fills
// it (a row longer than the buffer). The bytes of the row last returned
// may be overwritten: a row is valid until the next one is read.
func (rr *RowReader) more() error {
	held := len(rr.buf) - rr.pos
	if held == cap(rr.buf) {
		grown := make([]byte, held, 2*cap(rr.buf))
		copy(grown, rr.buf[rr.pos:])
		rr.buf = grown
	} else {
		rr.buf = rr.buf[:copy(rr.buf[:held], rr.buf[rr.pos:])]
	}
	rr.pos = 0
	for {
		if rr.err != nil {
			return streamError(rr.err)
		}
		var k int
		k, rr.err = rr.src.Read(rr.buf[held:cap(rr.buf)])
		rr.buf = rr.buf[:held+k]
		if k > 0 {
			return nil
		}
	}
}

// NextRow returns the next row, or io.EOF after the last. The slice is
// reused by the next call: the caller must not keep it.
func (rr *RowReader) NextRow() ([]any, error) {
	v, err := rr.NextValues()
	if err != nil {
		return nil, err
	}
	rr.row = v.Row(rr.row)
	return rr.row, nil
}

// NextValues returns the next row in typed slots, or io.EOF after the
// last. The slots (and the bytes of TEXT and BLOB values) are reused by
// the next call: the caller must not keep them.
func (rr *RowReader) NextValues() (*sqlstore.Values, error) {
	for {
		n, err := rr.decode()
		if err == nil {
			rr.pos += n
			return rr.vals, nil
		}
		if err != errShort {
			return nil, err
		}
		if err := rr.more(); err != nil {
			return nil, err
		}
	}
}

// errShort: the row goes on past the bytes read so far.
var errShort = errors.New("row continues past the buffer")

// decode decodes the row at buf[pos:] into the slots in one pass over the
// slice and returns its length, or errShort where it goes on past the
// buffer (NextValues then reads more and decodes it again: rarely, as
// the buffer holds many rows), io.EOF at the end marker, or ErrCorrupt
// naming the column. TEXT and BLOB slots point into the buffer (sqlstore.Values
// says which slot each type uses and in what unit: the stream's own).
func (rr *RowReader) decode() (int, error) {
	b, p, v := rr.buf[rr.pos:], 0, rr.vals
	// uvarint decodes an unsigned varint at b[p:] (small enough to be
	// inlined; varintError says what n <= 0 means).
	uvarint := func() (uint64, int) {
		x, n := binary.Uvarint(b[p:])
		if n > 0 {
			p += n
		}
		return x, n
	}
	for i, c := range rr.cols {
		if p == len(b) {
			return 0, errShort
		}
		tag := b[p]
		p++
		switch {
		case tag == tagNull:
			v.Null[i] = true
			continue
		case tag == tagValue:
			v.Null[i] = false
		case tag == tagEnd && i == 0:
			return 0, io.EOF
		default:
			return 0, fmt.Errorf("column %s: %w (tag %d)", c.Name, ErrCorrupt, tag)
		}
		switch c.Type {
		case storage.Int, storage.BigInt, storage.Date, storage.Time, storage.Timestamp, storage.TimestampTZ:
			u, k := uvarint()
			if k <= 0 {
				return 0, varintError(c, k)
			}
			x := int64(u >> 1) // zig-zag, as binary.AppendVarint wrote
			if u&1 != 0 {
				x = ^x
			}
			if c.Type == storage.Timestamp || c.Type == storage.TimestampTZ {
				x *= 1000 // the stream's milliseconds
			}
			v.Int[i] = x
		case storage.Text, storage.Blob:
			n, k := uvarint()
			if k <= 0 {
				return 0, varintError(c, k)
			}
			if n > 1<<31 {
				return 0, fmt.Errorf("column %s: %w (value too long)", c.Name, ErrCorrupt)
			}
			if uint64(len(b)-p) < n {
				return 0, errShort
			}
			end := p + int(n)
			v.Bytes[i], p = b[p:end:end], end
		case storage.Boolean:
			if p == len(b) {
				return 0, errShort
			}
			v.Int[i] = 0
			if b[p] == 1 {
				v.Int[i] = 1
			}
			p++
		case storage.Float:
			if len(b)-p < 4 {
				return 0, errShort
			}
			v.Float[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[p:])))
			p += 4
		case storage.Double:
			if len(b)-p < 8 {
				return 0, errShort
			}
			v.Float[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[p:]))
			p += 8
		default:
			return 0, fmt.Errorf("column %s: cannot decode type %v", c.Name, c.Type)
		}
	}
	return p, nil
}

// varintError is what binary.Uvarint's n <= 0 means: the varint goes on
// past the buffer (0), or it overflows 64 bits.
func varintError(c storage.Column, n int) error {
	if n == 0 {
		return errShort
	}
	return fmt.Errorf("column %s: %w (varint overflows 64 bits)", c.Name, ErrCorrupt)
}

// streamError is what a failed read of the stream means: the end of the
// data before the end marker is a truncated stream; any other error is
// the repository's (a chunk missing or damaged, named in it).
func streamError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// KeyLength is the longest value of one TEXT or BLOB key or indexed
// column: engines bound those (MariaDB's VARCHAR(128)), so a restore
// checks them against its target before creating anything.
type KeyLength struct {
	Bytes int `json:"bytes"`
	Chars int `json:"chars,omitempty"` // TEXT only
}

// KeyLengths measures the bounded columns of a table's rows.
type KeyLengths struct {
	cols []int // indexes of the measured columns
	Max  map[string]KeyLength
	m    *storage.TableMetadata
}

// NewKeyLengths measures the TEXT and BLOB columns of m that are keys or
// indexed. Max is never nil, so a manifest tells a table with no such
// column from one written before they were measured.
func NewKeyLengths(m *storage.TableMetadata) *KeyLengths {
	k := &KeyLengths{Max: map[string]KeyLength{}, m: m}
	for i, c := range m.Columns {
		if (c.Type == storage.Text || c.Type == storage.Blob) && (m.IsKey(c.Name) || slices.Contains(m.Indexes, c.Name)) {
			k.cols = append(k.cols, i)
		}
	}
	return k
}

// Add measures one row of m's columns.
func (k *KeyLengths) Add(row []any) {
	for _, i := range k.cols {
		var l KeyLength
		switch v := row[i].(type) {
		case string:
			l = KeyLength{Bytes: len(v), Chars: utf8.RuneCountInString(v)}
		case []byte:
			l = KeyLength{Bytes: len(v)}
		default:
			continue
		}
		name := k.m.Columns[i].Name
		cur := k.Max[name]
		k.Max[name] = KeyLength{Bytes: max(cur.Bytes, l.Bytes), Chars: max(cur.Chars, l.Chars)}
	}
}

// OpenTable opens a table's row stream in the repository (each chunk
// verified as it is read); closeStream releases it.
func OpenTable(ctx context.Context, r *repo.Repository, t TableBackup) (next func() ([]any, error), closeStream func(), err error) {
	rr, closeStream, err := OpenTableReader(ctx, r, t)
	if err != nil {
		return nil, nil, err
	}
	return rr.NextRow, closeStream, nil
}

// OpenTableReader is OpenTable's reader, for rows as values or in typed
// slots.
func OpenTableReader(ctx context.Context, r *repo.Repository, t TableBackup) (rr *RowReader, closeStream func(), err error) {
	rc := r.OpenStream(ctx, t.Chunks)
	if rr, err = NewRowReader(rc, t.Metadata.Columns); err != nil {
		rc.Close()
		return nil, nil, err
	}
	return rr, func() { rc.Close() }, nil
}
