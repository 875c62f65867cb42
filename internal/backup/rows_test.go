package backup_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// rowsCols is one column of every type.
func rowsCols() []storage.Column {
	var cols []storage.Column
	for _, t := range storage.AllTypes() {
		cols = append(cols, storage.Column{Name: "c_" + t.String(), Type: t})
	}
	return cols
}

// rowsSample is rows of every type: edge values, and all NULLs.
func rowsSample() [][]any {
	day := time.Date(1969, 7, 20, 0, 0, 0, 0, time.UTC)
	ts := time.UnixMilli(-1_234_567).UTC()
	return [][]any{
		{true, int32(math.MinInt32), int64(-(1<<53 - 1)), float32(-1.5), math.SmallestNonzeroFloat64, "tab\tnl\nbs\\ é\x00", []byte{0, '\t', '\n', '\\', 0xff}, day, 23*time.Hour + 59*time.Minute + 999999*time.Microsecond, ts, ts},
		{false, int32(0), int64(0), float32(0), 0.0, "", []byte{}, day, time.Duration(0), ts, ts},
		make([]any, 11),
	}
}

func encodeRows(t *testing.T, cols []storage.Column, rows [][]any) []byte {
	var buf bytes.Buffer
	w, err := backup.NewRowWriter(&buf, cols)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.WriteRow(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRowStream: rows of every type read back as written; the stream's
// bytes are the format existing backups hold (so they restore, and
// unchanged rows still make unchanged chunks); a stream cut anywhere
// fails as truncated and never reads as a shorter, complete table.
func TestRowStream(t *testing.T) {
	cols := rowsCols()
	stream := encodeRows(t, cols, rowsSample())

	rr, err := backup.NewRowReader(bytes.NewReader(stream), cols)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range rowsSample() {
		got, err := rr.NextRow()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("row %d = %#v, %v; want %#v", i, got, err, want)
		}
	}
	if _, err := rr.NextRow(); err != io.EOF {
		t.Fatalf("after the last row: %v, want io.EOF", err)
	}

	small := []storage.Column{{Name: "k", Type: storage.BigInt}, {Name: "s", Type: storage.Text}, {Name: "b", Type: storage.Blob}}
	golden := "stillpoint rows v1\n" + "\x01\x02" + "\x01\x03a\tb" + "\x00" + "\x02"
	if got := encodeRows(t, small, [][]any{{int64(1), "a\tb", nil}}); string(got) != golden {
		t.Fatalf("stream bytes %q, want the v1 format %q", got, golden)
	}

	// Malformed rows fail as corrupt, whichever decoder meets them.
	for _, bad := range []string{
		"\x07\x02" + "\x01\x03a\tb" + "\x00" + "\x02",                       // an unknown tag
		"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01" + "\x00\x00\x02", // a varint over 64 bits
	} {
		rr, err := backup.NewRowReader(strings.NewReader("stillpoint rows v1\n"+bad), small)
		if err == nil {
			_, err = rr.NextValues()
		}
		if !errors.Is(err, backup.ErrCorrupt) {
			t.Errorf("row %q: %v, want %v", bad, err, backup.ErrCorrupt)
		}
	}

	// A stream cut anywhere is truncated; one whose reader fails (a chunk
	// missing or damaged) fails with the reader's error, which names it.
	damaged := errors.New("chunk data/ab/abcd is damaged")
	for _, tc := range []struct {
		name string
		tail io.Reader
		want error
	}{
		{"cut", bytes.NewReader(nil), backup.ErrTruncated},
		{"failing reader", iotest.ErrReader(damaged), damaged},
	} {
		for cut := 0; cut < len(stream)-1; cut++ {
			rr, err := backup.NewRowReader(io.MultiReader(bytes.NewReader(stream[:cut]), tc.tail), cols)
			for err == nil {
				_, err = rr.NextRow()
			}
			if cut < len("stillpoint rows v1\n") && tc.want == backup.ErrTruncated {
				if !errors.Is(err, backup.ErrCorrupt) {
					t.Fatalf("%s: header cut at byte %d: %v, want %v", tc.name, cut, err, backup.ErrCorrupt)
				}
				continue
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("%s: stream cut at byte %d of %d: %v, want %v", tc.name, cut, len(stream), err, tc.want)
			}
		}
	}
}

// longRow is a row of every type whose TEXT and BLOB hold n bytes each.
func longRow(n int) []any {
	row := rowsSample()[0]
	row[5], row[6] = strings.Repeat("é", n/2), bytes.Repeat([]byte{0xff, 0}, n/2)
	return row
}

// bankRows is n rows shaped like a bank table's (docs/performance.md).
func bankRows(n int) ([]storage.Column, [][]any) {
	cols := []storage.Column{{Name: "account_id", Type: storage.BigInt}, {Name: "balance", Type: storage.Int}, {Name: "tx_id", Type: storage.Text},
		{Name: "tx_state", Type: storage.Int}, {Name: "tx_version", Type: storage.Int}, {Name: "tx_prepared_at", Type: storage.BigInt},
		{Name: "tx_committed_at", Type: storage.BigInt}, {Name: "before_balance", Type: storage.Int}, {Name: "before_tx_id", Type: storage.Text}}
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{int64(i), int32(1000 + i%977), fmt.Sprintf("%032x", i*7919), int32(3), int32(1 + i%7), int64(1700000000000 + i), int64(1700000000000 + i), nil, nil}
	}
	return cols, rows
}

// BenchmarkRowReader decodes a bank-like table stream (the client CPU of
// a restore, docs/performance.md): as Go values, and in typed slots.
func BenchmarkRowReader(b *testing.B) {
	cols, rows := bankRows(100_000)
	var buf bytes.Buffer
	w, _ := backup.NewRowWriter(&buf, cols)
	for _, r := range rows {
		w.WriteRow(r)
	}
	w.Close()
	for _, bc := range []struct {
		name string
		next func(*backup.RowReader) error
	}{
		{"NextRow", func(rr *backup.RowReader) error { _, err := rr.NextRow(); return err }},
		{"NextValues", func(rr *backup.RowReader) error { _, err := rr.NextValues(); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(buf.Len()))
			b.ReportAllocs()
			for b.Loop() {
				rr, err := backup.NewRowReader(bytes.NewReader(buf.Bytes()), cols)
				n := 0
				for err == nil {
					err = bc.next(rr)
					n++
				}
				if err != io.EOF || n != len(rows)+1 {
					b.Fatalf("%d rows, %v", n, err)
				}
			}
		})
	}
}

// TestRowValues: rows read in typed slots are the rows written, for
// every type and across the reader's buffer refills (a TEXT value's
// bytes stay valid until the next row, wherever the row's bytes start).
func TestRowValues(t *testing.T) {
	bankCols, bank := bankRows(30_000)
	for _, tc := range []struct {
		name string
		cols []storage.Column
		rows [][]any
		read func(io.Reader) io.Reader
	}{
		{"every type", rowsCols(), rowsSample(), func(r io.Reader) io.Reader { return r }},
		{"refills, half reads", bankCols, bank, iotest.HalfReader},
		{"refills, one byte reads", bankCols, bank[:3000], iotest.OneByteReader},
		// Rows longer than the reader's 256 KiB buffer: it grows.
		{"rows longer than the buffer", rowsCols(), [][]any{rowsSample()[0], longRow(600 << 10), rowsSample()[1], longRow(3 << 20)}, iotest.HalfReader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr, err := backup.NewRowReader(tc.read(bytes.NewReader(encodeRows(t, tc.cols, tc.rows))), tc.cols)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.rows {
				v, err := rr.NextValues()
				if err != nil {
					t.Fatalf("row %d: %v", i, err)
				}
				if got := v.Row(nil); !reflect.DeepEqual(got, want) {
					t.Fatalf("row %d = %#v, want %#v", i, got, want)
				}
			}
			if _, err := rr.NextValues(); err != io.EOF {
				t.Fatalf("after the last row: %v, want io.EOF", err)
			}
		})
	}
}
