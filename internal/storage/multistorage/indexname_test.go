package multistorage_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestIndexNamesByRelease: ScalarDB 3.4 and 3.5 leave secondary index
// names unquoted, so PostgreSQL folds them to lower case; 3.6 quotes them
// (JdbcDatabaseAdmin.createIndex 3.4.9, JdbcAdmin 3.5.9 and 3.6.0). The
// index a store creates is named as that release names it.
func TestIndexNamesByRelease(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		engine, driver, version, want string // want: the index name after the namespace
		query                         string
	}{
		{"postgres", "pgx", "3.5", "_items_col", "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE 'index%'"},
		{"postgres", "pgx", "3.6", "_Items_Col", "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE 'index%'"},
		{"mysql", "mysql", "3.5", "_Items_Col", "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND INDEX_NAME LIKE 'index%'"},
	} {
		t.Run(tt.engine+" "+tt.version, func(t *testing.T) {
			dsn := testenv.MySQLDSN(t)
			if tt.engine == "postgres" {
				dsn = testenv.PostgresDSN(t)
			}
			v, err := storage.ParseScalarDBVersion(tt.version)
			if err != nil {
				t.Fatal(err)
			}
			st, err := multistorage.OpenStore(ctx, "db", config.Store{Engine: tt.engine, DSN: dsn}, storage.Layout{ScalarDB: v}, false)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ns := testenv.UniqueName("ix")
			m := &storage.TableMetadata{Namespace: ns, Table: "Items", PartitionKey: []string{"id"}, Indexes: []string{"Col"},
				Columns: []storage.Column{{Name: "id", Type: storage.Int}, {Name: "Col", Type: storage.Int}}}
			if err := st.CreateTable(ctx, m); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.DropTable(ctx, ns, m.Table); st.DropNamespace(ctx, ns) })
			db, err := sql.Open(tt.driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var name string
			if err := db.QueryRowContext(ctx, tt.query, ns).Scan(&name); err != nil || name != "index_"+ns+tt.want {
				t.Errorf("index %q, %v; want %q", name, err, "index_"+ns+tt.want)
			}
		})
	}
}
