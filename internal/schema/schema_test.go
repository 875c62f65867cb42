package schema_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// allTypes is a file as ScalarDB's schema loader takes it: every type,
// clustering keys ASC and DESC, a secondary index, one transactional and
// one non-transactional table, and an option for another storage.
func allTypes(ns string) string {
	data, err := os.ReadFile("../../examples/all-types.json")
	if err != nil {
		panic(err)
	}
	return strings.ReplaceAll(string(data), `"sample.`, `"`+ns+`.`)
}

var userColumns = []string{"tenant", "day", "seq", "ts", "flag", "n", "big", "ratio", "score", "note", "payload", "on_day", "at_time", "at_local", "at_instant"}
var keyColumns = []string{"tenant", "day", "seq", "ts"}

// expectedColumns is DESIGN.md section 2 for the events table.
func expectedColumns() []string {
	cols := slices.Clone(userColumns)
	for _, c := range []string{"tx_id", "tx_state", "tx_version", "tx_prepared_at", "tx_committed_at"} {
		cols = append(cols, c, "before_"+c)
	}
	for _, c := range userColumns {
		if !slices.Contains(keyColumns, c) {
			cols = append(cols, "before_"+c)
		}
	}
	slices.Sort(cols)
	return cols
}

func TestParseAllTypes(t *testing.T) {
	tables, err := schema.Parse([]byte(allTypes("sample")), schema.Latest)
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || !tables[0].Transactional || tables[1].Transactional {
		t.Fatalf("tables = %+v", tables)
	}
	ev := tables[0].Layout()
	var names []string
	for _, c := range ev.Columns {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, expectedColumns()) {
		t.Errorf("columns = %v\nwant %v", names, expectedColumns())
	}
	for _, c := range ev.Columns {
		if orig, ok := strings.CutPrefix(c.Name, "before_"); ok && !strings.HasPrefix(orig, "tx_") {
			if want, _ := ev.ColumnType(orig); want != c.Type {
				t.Errorf("%s has type %v, want %v like %s", c.Name, c.Type, want, orig)
			}
		}
	}
	if !slices.Equal(ev.ClusteringKey, []storage.ClusteringKey{{Name: "seq", Order: storage.Asc}, {Name: "ts", Order: storage.Desc}}) {
		t.Errorf("clustering key = %v", ev.ClusteringKey)
	}
	if got := len(tables[1].Layout().Columns); got != 3 {
		t.Errorf("non-transactional table has %d columns, want its own 3", got)
	}
}

// physicalColumns asks the database itself which columns a table has.
func physicalColumns(t *testing.T, st storage.Store, ns, table string) []string {
	t.Helper()
	s := st.(*sqlstore.Store)
	var q string
	var args []any
	switch s.Dialect().Engine() {
	case "sqlite":
		q = "SELECT name FROM pragma_table_info(?1)"
		args = []any{ns + "$" + table}
	case "postgres":
		q = "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2"
		args = []any{ns, table}
	case "mysql":
		q = "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?"
		args = []any{ns, table}
	}
	rows, err := s.DB().QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c sql.NullString
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c.String)
	}
	slices.Sort(out)
	return out
}

func engineConfigs(t *testing.T, ns string) map[string]*config.Config {
	single := func(engine, dsn string) *config.Config {
		return &config.Config{DataDir: t.TempDir(), Source: "test", Coordinator: "db",
			Stores: map[string]config.Store{"db": {Engine: engine, DSN: dsn, Path: filepath.Join(t.TempDir(), "db.sqlite")}}, Namespaces: map[string]string{ns: "db"}}
	}
	return map[string]*config.Config{
		"sqlite":   single("sqlite", ""),
		"postgres": single("postgres", testenv.PostgresDSN(t)),
		"mariadb":  single("mysql", testenv.MySQLDSN(t)),
	}
}

func TestLoadYieldsDesignColumns(t *testing.T) {
	ctx := context.Background()
	ns := testenv.UniqueName("sample")
	tables, err := schema.Parse([]byte(allTypes(ns)), schema.Latest)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range engineConfigs(t, ns) {
		t.Run(name, func(t *testing.T) {
			st := multistorage.New(cfg)
			defer st.Close()
			actions, err := schema.Create(ctx, st, tables)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { schema.Drop(ctx, st, tables, true) })
			if len(actions) != 3 || actions[2].Table != "coordinator.state" {
				t.Fatalf("actions = %+v, want both tables and the coordinator", actions)
			}
			db, _ := st.Store(ctx, "db")
			if got := physicalColumns(t, db, ns, "events"); !slices.Equal(got, expectedColumns()) {
				t.Errorf("physical columns of events = %v\nwant %v", got, expectedColumns())
			}
			if got := physicalColumns(t, db, ns, "plain"); !slices.Equal(got, []string{"blob", "id", "name"}) {
				t.Errorf("physical columns of plain = %v", got)
			}
			if got := physicalColumns(t, db, "coordinator", "state"); !slices.Equal(got, []string{"tx_created_at", "tx_id", "tx_state"}) {
				t.Errorf("coordinator.state = %v", got)
			}
			meta, err := db.TableMetadata(ctx, ns, "events")
			if err != nil || meta == nil || len(meta.Columns) != len(expectedColumns()) || !slices.Equal(meta.Indexes, []string{"note"}) {
				t.Fatalf("scalardb.metadata of events = %+v, %v", meta, err)
			}
			// Loading the same file again changes nothing.
			again, err := schema.Create(ctx, st, tables)
			if err != nil || again[0].Outcome != "unchanged" {
				t.Fatalf("second load = %+v, %v", again, err)
			}
		})
	}
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	valid := `"good.t": {"partition-key": ["id"], "columns": {"id": "INT"}}`
	tests := []struct {
		name  string
		file  string
		want  []string // every fragment must appear in the error
		store string   // config: "" embedded, "nostore", "unreachable"
	}{
		{"unknown type", `{` + valid + `, "shop.items": {"partition-key": ["id"], "columns": {"id": "INT", "price": "MONEY"}}}`, []string{"shop.items", `"price"`, "MONEY"}, ""},
		{"missing partition key", `{` + valid + `, "shop.items": {"columns": {"id": "INT"}}}`, []string{"shop.items", "partition key"}, ""},
		{"partition key not a column", `{"shop.items": {"partition-key": ["sku"], "columns": {"id": "INT"}}}`, []string{"shop.items", `"sku"`}, ""},
		{"reserved tx_id", `{` + valid + `, "shop.items": {"transaction": true, "partition-key": ["id"], "columns": {"id": "INT", "tx_id": "TEXT"}}}`, []string{"shop.items", `"tx_id"`, "reserved"}, ""},
		{"before_x beside a column x", `{"shop.items": {"partition-key": ["id"], "columns": {"id": "INT", "x": "INT", "before_x": "INT"}}}`, []string{"shop.items", `"before_x"`, "reserved"}, ""},
		{"before_x beside a key column x", `{"shop.items": {"partition-key": ["x"], "columns": {"x": "INT", "before_x": "INT"}}}`, []string{"shop.items", `"before_x"`, "reserved"}, ""},
		{"before_before_tx_id", `{"shop.items": {"partition-key": ["id"], "columns": {"id": "INT", "before_before_tx_id": "INT"}}}`, []string{"shop.items", `"before_before_tx_id"`, "reserved"}, ""},
		{"encrypted column", `{` + valid + `, "shop.items": {"partition-key": ["id"], "columns": {"id": "INT", "card": "TEXT ENCRYPTED"}}}`, []string{"shop.items", `"card"`, "Enterprise", "open-source loader refuses it too"}, ""},
		{"index listed twice", `{"shop.items": {"partition-key": ["id"], "secondary-index": ["v", "v"], "columns": {"id": "INT", "v": "INT"}}}`, []string{"shop.items", `"v"`, "twice"}, ""},
		{"quote in a name", `{"shop.it\"ems": {"partition-key": ["id"], "columns": {"id": "INT"}}}`, []string{`it\"ems`, "quotes"}, ""},
		{"slash in a namespace", `{"etc/shop.items": {"partition-key": ["id"], "columns": {"id": "INT"}}}`, []string{"etc/shop", "slashes"}, ""},
		{"dollar in an SQLite namespace", `{"sh$op.items": {"partition-key": ["id"], "columns": {"id": "INT"}}}`, []string{"sh$op", `may not contain "$"`}, ""},
		{"bad clustering order", `{"shop.items": {"partition-key": ["id"], "clustering-key": ["c UP"], "columns": {"id": "INT", "c": "INT"}}}`, []string{"shop.items", "c UP"}, ""},
		{"not JSON", `{"shop.items": {"partition-key": ["id"],`, []string{"JSON"}, ""},
		{"namespace with no store", `{` + valid + `}`, []string{"good.t", "namespace good has no store"}, "nostore"},
		{"unreachable database", `{` + valid + `}`, []string{"store pg", "cannot connect", "127.0.0.1:1"}, "unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := &config.Config{DataDir: dir, Embedded: true, Source: "test"}
			switch tt.store {
			case "nostore":
				cfg = &config.Config{DataDir: dir, Source: "test", Coordinator: "local",
					Stores: map[string]config.Store{"local": {Engine: "sqlite", Path: filepath.Join(dir, "local.db")}}}
			case "unreachable":
				cfg = &config.Config{DataDir: dir, Source: "test", Coordinator: "local", Namespaces: map[string]string{"good": "pg"},
					Stores: map[string]config.Store{"local": {Engine: "sqlite", Path: filepath.Join(dir, "local.db")},
						"pg": {Engine: "postgres", DSN: "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2"}}}
			}
			path := filepath.Join(t.TempDir(), "schema.json")
			os.WriteFile(path, []byte(tt.file), 0o644)
			tables, err := schema.ReadFile(path, schema.Latest)
			if err == nil {
				st := multistorage.New(cfg)
				_, err = schema.Create(context.Background(), st, tables)
				st.Close()
			}
			if err == nil {
				t.Fatal("bad input was accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
			// Nothing was created: no table exists anywhere in the data dir.
			files, _ := filepath.Glob(filepath.Join(dir, "*.db"))
			for _, f := range files {
				st := multistorage.New(&config.Config{DataDir: dir, Embedded: true})
				name := strings.TrimSuffix(filepath.Base(f), ".db")
				s, _ := st.Store(context.Background(), name)
				for _, ns := range []string{"good", "shop", "coordinator"} {
					if tbls, _ := s.Tables(context.Background(), ns); len(tbls) > 0 {
						t.Errorf("bad input created %s tables %v in %s", ns, tbls, f)
					}
				}
				st.Close()
			}
		})
	}
}
