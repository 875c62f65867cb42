package schema

import (
	"slices"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// TestLoadAcceptsScalarDBExtras: a table as a ScalarDB release made it,
// with what that release adds on its own, is the table the file describes;
// anything else that differs is still a different layout.
func TestLoadAcceptsScalarDBExtras(t *testing.T) {
	user := &storage.TableMetadata{Namespace: "sample", Table: "accounts", PartitionKey: []string{"id"},
		Columns: []storage.Column{{Name: "id", Type: storage.Int}, {Name: "owner", Type: storage.Text}}, Indexes: []string{"owner"}}
	v := func(s string) Version {
		v, err := ParseVersion(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	file := Table{Transactional: true, User: user, Version: v("3.16.4")}.Layout()
	withTwin := Table{Transactional: true, User: user, Version: v("3.16.5")}.Layout()
	if !slices.Contains(withTwin.Indexes, BeforePrefix+"owner") || slices.Contains(file.Indexes, BeforePrefix+"owner") {
		t.Fatalf("indexes of 3.16.5: %v, of 3.16.4: %v; want the before_ twin in 3.16.5 only", withTwin.Indexes, file.Indexes)
	}
	otherIndex := *file
	otherIndex.Indexes = []string{BeforePrefix + "owner"}
	groupCommit := *Coordinator()
	groupCommit.Columns = append(groupCommit.Columns, storage.Column{Name: CoordinatorChildIDs, Type: storage.Text})
	otherColumn := *Coordinator()
	otherColumn.Columns = append(otherColumn.Columns, storage.Column{Name: "extra", Type: storage.Text})
	for _, tc := range []struct {
		name           string
		existing, want *storage.TableMetadata
		same           bool
	}{
		{"as the file says", file, file, true},
		{"3.16.5+ before_ twin index", withTwin, file, true},
		{"3.16.5+ file, table without the twin", file, withTwin, true},
		{"twin without its index", &otherIndex, file, false},
		{"3.16.5+ file, twin without its index", &otherIndex, withTwin, false},
		{"3.13+ group-commit coordinator", &groupCommit, Coordinator(), true},
		{"coordinator with another column", &otherColumn, Coordinator(), false},
	} {
		if got := matchesFile(tc.existing, tc.want); got != tc.same {
			t.Errorf("%s: same layout %v, want %v", tc.name, got, tc.same)
		}
	}
}
