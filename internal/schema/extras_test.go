package schema

import (
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// TestLoadAcceptsScalarDBExtras: a table as a ScalarDB release made it,
// with what that release adds on its own, is the table the file describes;
// anything else that differs is still a different layout.
func TestLoadAcceptsScalarDBExtras(t *testing.T) {
	file := Table{Transactional: true, User: &storage.TableMetadata{Namespace: "sample", Table: "accounts", PartitionKey: []string{"id"},
		Columns: []storage.Column{{Name: "id", Type: storage.Int}, {Name: "owner", Type: storage.Text}}, Indexes: []string{"owner"}}}.Layout()
	withTwin := *file
	withTwin.Indexes = append([]string{BeforePrefix + "owner"}, file.Indexes...)
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
		{"3.16.5+ before_ twin index", &withTwin, file, true},
		{"twin without its index", &otherIndex, file, false},
		{"3.13+ group-commit coordinator", &groupCommit, Coordinator(), true},
		{"coordinator with another column", &otherColumn, Coordinator(), false},
	} {
		if got := SameLayout(withoutScalarDBExtras(tc.existing, tc.want), tc.want); got != tc.same {
			t.Errorf("%s: same layout %v, want %v", tc.name, got, tc.same)
		}
	}
}
