package sqlite_test

import (
	"context"
	"path/filepath"
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
	var got string
	err = s.DB().QueryRowContext(ctx, "SELECT group_concat(sql, char(10)) FROM (SELECT sql FROM sqlite_schema WHERE tbl_name = 'ns$t' AND sql IS NOT NULL ORDER BY type DESC, name)").Scan(&got)
	want := `CREATE TABLE "ns$t"("p" BLOB,"c" FLOAT,"v" TEXT, PRIMARY KEY ("p","c"))` + "\n" +
		`CREATE INDEX "index_ns_t_v" ON "ns$t" ("v")`
	if err != nil || got != want {
		t.Errorf("statements\n%s\n(%v); want\n%s", got, err, want)
	}
}
