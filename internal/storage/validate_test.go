package storage_test

import (
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
)

func TestCheckKeyLengths(t *testing.T) {
	m := &storage.TableMetadata{Namespace: "ns", Table: "t", PartitionKey: []string{"k"}, Indexes: []string{"ix"},
		Columns: []storage.Column{{Name: "k", Type: storage.Text}, {Name: "ix", Type: storage.Blob}, {Name: "v", Type: storage.Text}}}
	l := storage.Limits{MaxKeyLength: 4}
	tests := []struct {
		name string
		rec  storage.Record
		want string // "" accepted
	}{
		{"short", storage.Record{"k": "abcd", "ix": []byte("abcd"), "v": strings.Repeat("v", 100)}, ""},
		{"characters, not bytes", storage.Record{"k": "ääää"}, ""},
		{"long key", storage.Record{"k": "abcde"}, `ns.t column "k": a value of length 5`},
		{"long indexed blob", storage.Record{"k": "a", "ix": []byte("abcde")}, `ns.t column "ix"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.CheckKeyLengths(m, tt.rec)
			if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckKeyLengths = %v, want %q", err, tt.want)
			}
		})
	}
	if err := (storage.Limits{}).CheckKeyLengths(m, storage.Record{"k": strings.Repeat("k", 5000)}); err != nil {
		t.Errorf("no limit: %v", err)
	}
}
