package cut

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// recordsStore holds one table's records in memory, segment i holding the
// records whose index is i modulo the segments. It stands for no database:
// it feeds the spool every type a record can hold.
type recordsStore struct {
	m    *storage.TableMetadata
	recs []storage.Record
}

func (s recordsStore) ScanTables(context.Context) ([]*storage.TableMetadata, error) {
	return []*storage.TableMetadata{s.m}, nil
}

func (s recordsStore) ScanSegment(_ context.Context, _ *storage.TableMetadata, segment, total int, fn func(storage.Record) error) error {
	for i := segment; i < len(s.recs); i += total {
		if err := fn(s.recs[i]); err != nil {
			return err
		}
	}
	return nil
}

// TestSpoolKeepsEveryType: a record read under the fence comes out of the
// spool as it went in, whatever its column types, NULLs left out.
func TestSpoolKeepsEveryType(t *testing.T) {
	cols := []storage.Column{{Name: "id", Type: storage.Int}}
	values := map[storage.DataType]any{
		storage.Boolean: true, storage.BigInt: int64(-1 << 40), storage.Float: float32(1.5), storage.Double: 2.25,
		storage.Text: "ünïcode", storage.Blob: []byte{0, 1, 255}, storage.Timestamp: time.UnixMilli(1700000000123).UTC(),
	}
	for typ := range values {
		cols = append(cols, storage.Column{Name: "c_" + typ.String(), Type: typ})
	}
	m := &storage.TableMetadata{Namespace: "ns", Table: "t", Columns: cols, PartitionKey: []string{"id"}}
	var recs []storage.Record
	for id := range int32(5) {
		r := storage.Record{"id": id}
		for typ, v := range values {
			if id%2 == 0 { // odd ids: every value NULL
				r["c_"+typ.String()] = v
			}
		}
		recs = append(recs, r)
	}
	ctx := context.Background()
	snap, err := ScanEngine(recordsStore{m, recs}, ScanOptions{Segments: 2, SpoolDir: t.TempDir()}).OpenSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	got := map[int32]storage.Record{}
	if err := snap.ReadTable(ctx, m, func(r storage.Record) error { got[r["id"].(int32)] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, want := range recs {
		if r := got[want["id"].(int32)]; !reflect.DeepEqual(r, want) {
			t.Errorf("spooled %v, read back %v", want, r)
		}
	}
	if len(got) != len(recs) {
		t.Errorf("read back %d records, spooled %d", len(got), len(recs))
	}
	other := &storage.TableMetadata{Namespace: "ns", Table: "other", Columns: cols}
	if err := snap.ReadTable(ctx, other, func(storage.Record) error { return nil }); err == nil {
		t.Error("a table the read did not capture must be an error, not an empty table")
	}
}
