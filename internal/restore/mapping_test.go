package restore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/mysql"
	"github.com/stillpoint/stillpoint/internal/storage/postgres"
	"github.com/stillpoint/stillpoint/internal/storage/sqlite"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestMappingCoversStillpointDDL: a table of every ScalarDB type, keys
// and indexes included, as Stillpoint creates it on each engine, maps into
// every other engine; with a column its metadata lacks, it is refused.
func TestMappingCoversStillpointDDL(t *testing.T) {
	ctx := context.Background()
	open := map[string]func(t *testing.T) *sqlstore.Store{
		"sqlite": func(t *testing.T) *sqlstore.Store {
			return must(t)(sqlite.Open(ctx, "lite", filepath.Join(t.TempDir(), "db")))
		},
		"postgres": func(t *testing.T) *sqlstore.Store { return must(t)(postgres.Open(ctx, "pg", testenv.PostgresDSN(t))) },
		"mysql":    func(t *testing.T) *sqlstore.Store { return must(t)(mysql.Open(ctx, "maria", testenv.MySQLDSN(t))) },
	}
	for source, openSource := range open {
		t.Run(source, func(t *testing.T) {
			src := openSource(t)
			m := &storage.TableMetadata{Namespace: testenv.UniqueName("mapped"), Table: "everything",
				Columns:      []storage.Column{{Name: "p", Type: storage.Text}, {Name: "c", Type: storage.Blob}},
				PartitionKey: []string{"p"}, ClusteringKey: []storage.ClusteringKey{{Name: "c", Order: storage.Desc}}}
			for _, typ := range storage.AllTypes() {
				for _, role := range []string{"v", "i"} { // plain, and indexed
					name := role + "_" + strings.ToLower(typ.String())
					m.Columns = append(m.Columns, storage.Column{Name: name, Type: typ})
					if role == "i" {
						m.Indexes = append(m.Indexes, name)
					}
				}
			}
			if err := src.CreateTable(ctx, m); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { src.DropTable(ctx, m.Namespace, m.Table); src.DropNamespace(ctx, m.Namespace) })
			def, err := src.Describe().DescribeTable(ctx, m.Namespace, m.Table)
			if err != nil || def == nil {
				t.Fatalf("describe: %+v, %v", def, err)
			}
			narrow := *m // the metadata without the last column
			narrow.Columns = m.Columns[:len(m.Columns)-1]
			narrow.Indexes = m.Indexes[:len(m.Indexes)-1]
			for target, openTarget := range open {
				if target == source {
					continue
				}
				d := openTarget(t)
				for _, meta := range []*storage.TableMetadata{m, &narrow} {
					err := checkMapping(&table{backup: backup.TableBackup{Metadata: *meta, Definition: def}, full: m.FullName(), store: target, d: d})
					missing := len(meta.Columns) < len(m.Columns)
					if missing != (err != nil) || missing && !strings.Contains(err.Error(), "not in its ScalarDB metadata") {
						t.Errorf("%s to %s, %d of %d columns in the metadata: %v", source, target, len(meta.Columns), len(m.Columns), err)
					}
				}
			}
		})
	}
}

func must(t *testing.T) func(*sqlstore.Store, error) *sqlstore.Store {
	return func(s *sqlstore.Store, err error) *sqlstore.Store {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}
