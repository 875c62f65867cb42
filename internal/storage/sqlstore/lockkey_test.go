package sqlstore

import (
	"fmt"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// TestLockKeyAsBefore: the lock order is the same as when lockKey printed
// every key value with fmt's %v, so processes of either version order
// their rows alike.
func TestLockKeyAsBefore(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    storage.DataType
		v    any
	}{
		{"text", storage.Text, "a\x00b é"},
		{"int", storage.Int, int32(-2147483648)},
		{"bigint", storage.BigInt, int64(9007199254740991)},
		{"blob", storage.Blob, []byte{0, 1, 255}},
		{"boolean", storage.Boolean, true},
		{"double", storage.Double, 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &storage.TableMetadata{Namespace: "ns", Table: "t", PartitionKey: []string{"p"}, ClusteringKey: []storage.ClusteringKey{{Name: "c"}},
				Columns: []storage.Column{{Name: "p", Type: tc.t}, {Name: "c", Type: storage.Int}}}
			put := storage.Put{Namespace: "ns", Table: "t", Values: storage.Record{"p": tc.v, "c": int32(7)}}
			if got, want := lockKey(put, m), fmt.Sprintf("ns.t\x00%v\x00%v", tc.v, int32(7)); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}
