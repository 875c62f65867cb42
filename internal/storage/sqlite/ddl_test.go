package sqlite_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlite"
)

// TestCreateTableAsRdbEngineSqlite: a table with a DESC clustering key and
// an index is created as ScalarDB's SQLite engine creates it
// (JdbcAdmin.createTableInternal with RdbEngineSqlite, 3.19.0): the
// statement's text, a plain primary key, no clustering-order index (SQLite
// keeps no key order), the index ScalarDB names.
func TestCreateTableAsRdbEngineSqlite(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, "lite", filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := &storage.TableMetadata{Namespace: "ns", Table: "t",
		Columns:      []storage.Column{{Name: "v", Type: storage.Text}, {Name: "c", Type: storage.Float}, {Name: "p", Type: storage.Blob}},
		PartitionKey: []string{"p"}, ClusteringKey: []storage.ClusteringKey{{Name: "c", Order: storage.Desc}}, Indexes: []string{"v"}}
	if err := s.CreateTable(ctx, m); err != nil {
		t.Fatal(err)
	}
	rows, err := s.DB().QueryContext(ctx, "SELECT sql FROM sqlite_schema WHERE tbl_name = 'ns$t' AND sql IS NOT NULL ORDER BY type DESC, name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var stmt string
		if err := rows.Scan(&stmt); err != nil {
			t.Fatal(err)
		}
		got = append(got, stmt)
	}
	want := []string{
		`CREATE TABLE "ns$t"("p" BLOB,"c" FLOAT,"v" TEXT, PRIMARY KEY ("p","c"))`,
		`CREATE INDEX "index_ns_t_v" ON "ns$t" ("v")`,
	}
	if err := rows.Err(); err != nil || !slices.Equal(got, want) {
		t.Errorf("statements %q, %v; want %q", got, err, want)
	}
}
