package backup

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// Change is how a table differs between two backups.
type Change string

const (
	Added     Change = "added"
	Removed   Change = "removed"
	Changed   Change = "changed"
	Unchanged Change = "unchanged"
	// Relaid: the columns or keys differ; rows are not compared.
	Relaid Change = "layout_changed"
)

// TableDiff is one table's difference from backup From to backup To.
type TableDiff struct {
	Table     string `json:"table"` // namespace.table
	Change    Change `json:"change"`
	RowsFrom  int64  `json:"rows_from"`
	RowsTo    int64  `json:"rows_to"`
	BytesFrom int64  `json:"bytes_from"` // the table's stream, uncompressed
	BytesTo   int64  `json:"bytes_to"`
	// NewChunkBytes: the stored size of To's chunks of this table that
	// From's did not have: roughly what changed, after compression.
	NewChunkBytes int64 `json:"new_chunk_bytes"`
	// With rows compared (DiffOptions.Rows), by primary key:
	RowsAdded   *int64 `json:"rows_added,omitempty"`
	RowsRemoved *int64 `json:"rows_removed,omitempty"`
	RowsChanged *int64 `json:"rows_changed,omitempty"`
}

// BackupDiff is how backup To differs from backup From.
type BackupDiff struct {
	From   string      `json:"from"`
	To     string      `json:"to"`
	Tables []TableDiff `json:"tables"`
}

// Diff compares two backups table by table from their manifests; with
// rows, it also reads both copies of every table present in both and
// counts the rows added, removed and changed by primary key (holding one
// hash per row of the From copy in memory). It writes nothing.
func Diff(ctx context.Context, r *repo.Repository, from, to *Manifest, rows bool) (*BackupDiff, error) {
	sizes, err := r.ChunkSizes(ctx)
	if err != nil {
		return nil, err
	}
	before, after := tablesOf(from), tablesOf(to)
	names := map[string]bool{}
	for n := range before {
		names[n] = true
	}
	for n := range after {
		names[n] = true
	}
	d := &BackupDiff{From: from.ID, To: to.ID}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		a, inFrom := before[name]
		b, inTo := after[name]
		td := TableDiff{Table: name, RowsFrom: a.Rows, RowsTo: b.Rows, BytesFrom: a.Bytes, BytesTo: b.Bytes}
		had := map[string]bool{}
		for _, id := range a.Chunks {
			had[id] = true
		}
		for _, id := range b.Chunks {
			if !had[id] {
				td.NewChunkBytes += sizes[id]
				had[id] = true // count a chunk once
			}
		}
		switch {
		case !inFrom:
			td.Change = Added
		case !inTo:
			td.Change = Removed
		case !slices.Equal(a.Metadata.Columns, b.Metadata.Columns) || !slices.Equal(a.Metadata.KeyColumns(), b.Metadata.KeyColumns()):
			td.Change = Relaid
		case slices.Equal(a.Chunks, b.Chunks):
			td.Change = Unchanged
		default:
			td.Change = Changed
		}
		if rows && inFrom && inTo && td.Change != Relaid {
			if err := compareRows(ctx, r, a, b, &td); err != nil {
				return nil, fmt.Errorf("compare the rows of %s: %w", name, err)
			}
			if *td.RowsAdded+*td.RowsRemoved+*td.RowsChanged == 0 {
				td.Change = Unchanged // same rows, other bytes (e.g. another chunking)
			}
		}
		d.Tables = append(d.Tables, td)
	}
	return d, nil
}

func tablesOf(m *Manifest) map[string]TableBackup {
	out := map[string]TableBackup{}
	for _, s := range m.Stores {
		for _, t := range s.Tables {
			out[t.Metadata.FullName()] = t
		}
	}
	return out
}

// compareRows counts, by primary key, the rows To added, removed and
// changed in a table.
func compareRows(ctx context.Context, r *repo.Repository, from, to TableBackup, td *TableDiff) error {
	keys := from.Metadata.KeyColumns()
	fromCols, toCols := columnNames(from.Metadata.Columns), columnNames(to.Metadata.Columns)
	hashes := make(map[string][sha256.Size]byte, from.Rows)
	err := EachRecord(ctx, r, from, func(rec storage.Record) {
		hashes[encode(rec, keys)] = sha256.Sum256([]byte(encode(rec, fromCols)))
	})
	if err != nil {
		return err
	}
	var added, changed int64
	err = EachRecord(ctx, r, to, func(rec storage.Record) {
		k := encode(rec, keys)
		h, ok := hashes[k]
		switch {
		case !ok:
			added++
		case h != sha256.Sum256([]byte(encode(rec, toCols))):
			changed++
		}
		delete(hashes, k)
	})
	if err != nil {
		return err
	}
	removed := int64(len(hashes))
	td.RowsAdded, td.RowsRemoved, td.RowsChanged = &added, &removed, &changed
	return nil
}

// EachRecord calls fn with every record of a table's stream in the
// repository, in the order it was stored.
func EachRecord(ctx context.Context, r *repo.Repository, t TableBackup, fn func(storage.Record)) error {
	return EachRow(ctx, r, t, func(row []any) { fn(t.Metadata.Record(row)) })
}

// EachRow calls fn with every row of a table's stream, in the order it was
// stored; the row is reused by the next call.
func EachRow(ctx context.Context, r *repo.Repository, t TableBackup, fn func(row []any)) error {
	next, closeStream, err := OpenTable(ctx, r, t)
	if err != nil {
		return err
	}
	defer closeStream()
	for {
		row, err := next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		fn(row)
	}
}

func columnNames(cols []storage.Column) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}

// encode writes the named values of rec unambiguously: type, length and
// value of each, so no two different rows encode alike.
func encode(rec storage.Record, names []string) string {
	var b strings.Builder
	for _, n := range names {
		v := fmt.Sprintf("%v", rec[n])
		fmt.Fprintf(&b, "%T:%d:%s|", rec[n], len(v), v)
	}
	return b.String()
}
