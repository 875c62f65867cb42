package schema_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// pad lengthens a name to n characters, keeping its unique start.
func pad(name string, n int) string { return name + strings.Repeat("x", n-len(name)) }

// TestNamesBeyondEngineLimits loads schemas whose names the generic check
// accepts but some engine cannot hold: each engine that cannot hold them
// refuses the file whole, with an error saying what to shorten or rename,
// and nothing is created; the others create it.
func TestNamesBeyondEngineLimits(t *testing.T) {
	type file struct {
		namespaces []string
		json       string
	}
	table := func(ns, tbl, def string) string { return fmt.Sprintf("%q: %s", ns+"."+tbl, def) }
	const plain = `{"partition-key": ["id"], "columns": {"id": "INT", "v": "INT"}}`
	// Tables whose generated index names are long.
	longIndex := func(ns string) file {
		return file{[]string{ns}, "{" + table(ns, pad("t", 30), `{"partition-key": ["id"], "secondary-index": ["`+pad("c", 30)+`"], "columns": {"id": "INT", "`+pad("c", 30)+`": "INT"}}`) + "}"}
	}
	longClusteringIndex := func(ns string) file {
		return file{[]string{ns}, "{" + table(ns, pad("t", 50), `{"partition-key": ["id"], "clustering-key": ["c DESC"], "columns": {"id": "INT", "c": "INT"}}`) + "}"}
	}
	tests := []struct {
		name string
		make func(ns string) file
		// refused by engine: a fragment of the error; engines absent accept.
		refused map[string]string
		version string // the stores' scalardb_version; "": the newest
	}{
		{"64-byte table name", func(ns string) file {
			return file{[]string{ns}, "{" + table(ns, pad("t", 64), plain) + "}"}
		}, map[string]string{"postgres": "at most 63"}, ""},
		{"64-character namespace and table name", func(ns string) file {
			ns = pad(ns, 64)
			return file{[]string{ns}, "{" + table(ns, pad("t", 64), plain) + "}"}
		}, map[string]string{"postgres": "at most 63", "mariadb": "full_table_name"}, ""},
		{"before_ twin of a long column", func(ns string) file {
			return file{[]string{ns}, "{" + table(ns, "t", `{"partition-key": ["id"], "columns": {"id": "INT", "`+pad("c", 60)+`": "INT"}}`) + "}"}
		}, map[string]string{"sqlite": "before_c", "postgres": "before_c", "mariadb": "before_c"}, ""},
		{"generated secondary index name", longIndex, map[string]string{"postgres": "index_", "mariadb": "index_"}, "3.16.4"},
		// 3.16.5 shortens long index names to a hash.
		{"shortened secondary index name", longIndex, nil, "3.16.5"},
		// Only PostgreSQL has the index, and up to 3.12 for a DESC key alone.
		{"generated clustering order index name", longClusteringIndex, map[string]string{"postgres": "_clustering_order_idx"}, "3.12"},
		{"no clustering order index for DESC alone", longClusteringIndex, nil, "3.13"},
		{"tables T and t", func(ns string) file {
			return file{[]string{ns}, "{" + table(ns, "T", plain) + ", " + table(ns, "t", plain) + "}"}
		}, map[string]string{"sqlite": "differ only in case", "mariadb": "differ only in case"}, ""},
		{"generated index names of two tables", func(ns string) file {
			return file{[]string{ns}, "{" + table(ns, "a", `{"partition-key": ["id"], "secondary-index": ["b_c"], "columns": {"id": "INT", "b_c": "INT"}}`) + ", " +
				table(ns, "a_b", `{"partition-key": ["id"], "secondary-index": ["c"], "columns": {"id": "INT", "c": "INT"}}`) + "}"}
		}, map[string]string{"sqlite": "is also that of table", "postgres": "is also that of table", "mariadb": "is also that of table"}, ""},
		{"columns A and a", func(ns string) file {
			return file{[]string{ns}, "{" + table(ns, "t", `{"partition-key": ["id"], "columns": {"id": "INT", "A": "INT", "a": "INT"}}`) + "}"}
		}, map[string]string{"sqlite": "differ only in case", "mariadb": "differ only in case"}, ""},
	}
	ctx := context.Background()
	for _, tt := range tests {
		for _, engine := range []string{"sqlite", "postgres", "mariadb"} {
			t.Run(tt.name+"/"+engine, func(t *testing.T) {
				f := tt.make(testenv.UniqueName("lim"))
				cfg := oneStore(t, engine, f.namespaces)
				cfg.ScalarDBVersion = tt.version
				st := multistorage.New(cfg)
				defer st.Close()
				tables, err := schema.Parse([]byte(f.json), schema.Latest)
				if err != nil {
					t.Fatalf("the generic check must accept the file: %v", err)
				}
				_, err = schema.Create(ctx, st, tables)
				t.Cleanup(func() { schema.Drop(ctx, st, tables, true) })
				want, refuse := tt.refused[engine]
				if !refuse {
					if err != nil {
						t.Fatalf("%s can hold these names: %v", engine, err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want it to mention %q", err, want)
				}
				nss, err := st.Namespaces(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, ns := range f.namespaces {
					if slices.Contains(nss, ns) {
						t.Errorf("a refused schema created namespace %s", ns)
					}
				}
			})
		}
	}
}

// A table whose name differs only in case from one that exists is refused
// where the engine compares names without case.
func TestCaseCollisionWithAnExistingTable(t *testing.T) {
	ctx := context.Background()
	for _, engine := range []string{"sqlite", "postgres", "mariadb"} {
		t.Run(engine, func(t *testing.T) {
			ns := testenv.UniqueName("lim")
			st := multistorage.New(oneStore(t, engine, []string{ns}))
			defer st.Close()
			var loaded [][]schema.Table
			t.Cleanup(func() {
				for _, tables := range loaded {
					schema.Drop(ctx, st, tables, true)
				}
			})
			var errs []error
			for _, name := range []string{"T", "t"} {
				tables, err := schema.Parse([]byte(fmt.Sprintf(`{%q: {"partition-key": ["id"], "columns": {"id": "INT"}}}`, ns+"."+name)), schema.Latest)
				if err != nil {
					t.Fatal(err)
				}
				_, err = schema.Create(ctx, st, tables)
				if err == nil {
					loaded = append(loaded, tables)
				}
				errs = append(errs, err)
			}
			if errs[0] != nil {
				t.Fatal(errs[0])
			}
			if refused := errs[1] != nil; refused != (engine != "postgres") || refused && !strings.Contains(errs[1].Error(), "differ only in case") {
				t.Fatalf("loading %s.t beside %s.T: %v", ns, ns, errs[1])
			}
		})
	}
}

// oneStore puts the namespaces and the coordinator in one store of engine.
func oneStore(t *testing.T, engine string, namespaces []string) *config.Config {
	sc := config.Store{Engine: "sqlite", Path: filepath.Join(t.TempDir(), "db.sqlite")}
	switch engine {
	case "postgres":
		sc = config.Store{Engine: "postgres", DSN: testenv.PostgresDSN(t)}
	case "mariadb":
		sc = config.Store{Engine: "mysql", DSN: testenv.MySQLDSN(t)}
	}
	cfg := &config.Config{DataDir: t.TempDir(), Source: "test", Coordinator: "db", Stores: map[string]config.Store{"db": sc}, Namespaces: map[string]string{}}
	for _, ns := range namespaces {
		cfg.Namespaces[ns] = "db"
	}
	return cfg
}
