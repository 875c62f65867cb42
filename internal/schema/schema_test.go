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
			if err != nil || meta == nil || len(meta.Columns) != len(expectedColumns()) || !slices.Equal(meta.Indexes, []string{"note", "before_note"}) {
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

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    schema.Version
		txnTrue bool
		bad     bool
	}{
		{"", schema.Latest, true, false},
		{"3.4", schema.Version{Minor: 4, Patch: -1}, false, false},
		{"3.6.9", schema.Version{Minor: 6, Patch: 9}, false, false},
		{"3.7", schema.Version{Minor: 7, Patch: -1}, true, false},
		{"3.19.0", schema.Version{Minor: 19}, true, false},
		{"3.3", schema.Version{}, false, true},
		{"4.0", schema.Version{}, false, true},
		{"3.x", schema.Version{}, false, true},
		{"3.7.", schema.Version{}, false, true},
		{"3.7.1.2", schema.Version{}, false, true},
		{"v3.7", schema.Version{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := schema.ParseVersion(tt.in)
			if tt.bad {
				if err == nil || !strings.Contains(err.Error(), "from 3.4 on") {
					t.Fatalf("ParseVersion(%q) = %v, %v; want an error saying what to write", tt.in, v, err)
				}
				return
			}
			if err != nil || v != tt.want || v.TransactionDefault() != tt.txnTrue {
				t.Fatalf("ParseVersion(%q) = %v (transaction default %v), %v; want %v (%v)", tt.in, v, v.TransactionDefault(), err, tt.want, tt.txnTrue)
			}
		})
	}
}

// TestTransactionDefault: an absent "transaction" means what the chosen
// version's loader makes of it; a stated one always wins.
func TestTransactionDefault(t *testing.T) {
	table := func(txn string) string {
		return `{"ns.t": {` + txn + `"partition-key": ["id"], "columns": {"id": "INT", "v": "INT"}}}`
	}
	tests := []struct {
		version string
		txn     string
		want    bool
	}{
		{"3.4", ``, false},
		{"3.6", ``, false},
		{"3.7", ``, true},
		{"", ``, true},
		{"3.4", `"transaction": true, `, true},
		{"3.19", `"transaction": false, `, false},
	}
	for _, tt := range tests {
		t.Run(tt.version+"/"+tt.txn, func(t *testing.T) {
			v, err := schema.ParseVersion(tt.version)
			if err != nil {
				t.Fatal(err)
			}
			tables, err := schema.Parse([]byte(table(tt.txn)), v)
			if err != nil {
				t.Fatal(err)
			}
			if tables[0].Transactional != tt.want {
				t.Errorf("transactional = %v, want %v", tables[0].Transactional, tt.want)
			}
		})
	}
}

func TestVersionGatesDateTypes(t *testing.T) {
	file := []byte(`{"ns.t": {"partition-key": ["id"], "columns": {"id": "INT", "at": "TIMESTAMP"}}}`)
	if _, err := schema.Parse(file, schema.Version{Minor: 15}); err != nil {
		t.Fatalf("3.15 knows TIMESTAMP: %v", err)
	}
	_, err := schema.Parse(file, schema.Version{Minor: 14})
	if err == nil || !strings.Contains(err.Error(), `column "at"`) || !strings.Contains(err.Error(), "3.15") {
		t.Fatalf("3.14 must refuse TIMESTAMP naming the column and the version that has it: %v", err)
	}
}

// TestBeforeColumnsAsScalarDB: which columns of a transactional layout are
// the user's, by ScalarDB's rule (before_x is metadata only beside x).
func TestBeforeColumnsAsScalarDB(t *testing.T) {
	tests := []struct {
		name string
		user []storage.Column
		pk   string
		twin []string // before_ columns the layout adds for the user's non-key columns
	}{
		{"plain", []storage.Column{{Name: "id", Type: storage.Int}, {Name: "v", Type: storage.Int}}, "id", []string{"before_v"}},
		{"before_x alone", []storage.Column{{Name: "id", Type: storage.Int}, {Name: "before_x", Type: storage.Text}}, "id", []string{"before_before_x"}},
		{"before_ as the key", []storage.Column{{Name: "before_id", Type: storage.Int}, {Name: "v", Type: storage.Int}}, "before_id", []string{"before_v"}},
		{"before_x twice removed", []storage.Column{{Name: "id", Type: storage.Int}, {Name: "before_before_x", Type: storage.Int}, {Name: "x_before_", Type: storage.Int}}, "id", []string{"before_before_before_x", "before_x_before_"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := &storage.TableMetadata{Namespace: "ns", Table: "t", Columns: tt.user, PartitionKey: []string{tt.pk}}
			layout := schema.Transactional(user)
			if !schema.IsTransactional(layout) || schema.IsTransactional(user) {
				t.Fatal("IsTransactional must tell the layout from the user's table")
			}
			if got := schema.UserColumns(layout); !slices.Equal(got, tt.user) {
				t.Errorf("UserColumns = %v, want %v", got, tt.user)
			}
			var twins []string
			for _, c := range layout.Columns {
				if schema.IsReserved(layout, c.Name) && !slices.ContainsFunc(schema.TxColumns, func(tc storage.Column) bool {
					return c.Name == tc.Name || c.Name == schema.BeforePrefix+tc.Name
				}) {
					twins = append(twins, c.Name)
				}
			}
			if !slices.Equal(twins, tt.twin) {
				t.Errorf("before images = %v, want %v", twins, tt.twin)
			}
		})
	}
}

// featureFiles are schema files of our own that use every feature of the
// scalardb-samples schema files and of ScalarDB 3.4.9's sample schema:
// several namespaces (one per storage in multi-storage samples), a
// namespace and columns named by SQL keywords, an empty clustering key, a
// composite partition key, two clustering keys, mixed ASC/DESC orders,
// secondary indexes on a non-key TEXT column and on a clustering-key
// column, options of other storages (one with a number value),
// "transaction" true, false and absent, and every type those files use.
var featureFiles = map[string]string{
	"microservices": `{
  "customer_service.customers": {"transaction": true, "partition-key": ["customer_id"], "clustering-key": [],
    "columns": {"customer_id": "INT", "name": "TEXT", "credit_limit": "INT", "credit_total": "INT"}},
  "order.orders": {"transaction": true, "partition-key": ["customer_id"], "clustering-key": ["timestamp"], "secondary-index": ["order_id"],
    "columns": {"order_id": "TEXT", "customer_id": "INT", "timestamp": "BIGINT"}},
  "order.statements": {"transaction": true, "partition-key": ["order_id"], "clustering-key": ["item_id"],
    "columns": {"order_id": "TEXT", "item_id": "INT", "count": "INT"}},
  "order.items": {"transaction": true, "partition-key": ["item_id"], "columns": {"item_id": "INT", "name": "TEXT", "price": "INT"}}
}`,
	"analytics": `{
  "mysqlns.orders": {"transaction": true, "partition-key": ["o_orderkey"],
    "columns": {"o_orderkey": "INT", "o_custkey": "INT", "o_totalprice": "DOUBLE", "o_comment": "TEXT"}},
  "cassandrans.lineitem": {"transaction": true, "partition-key": ["l_orderkey", "l_linenumber"],
    "columns": {"l_orderkey": "INT", "l_linenumber": "INT", "l_quantity": "INT", "l_extendedprice": "DOUBLE", "l_shipdate": "TEXT"}},
  "emoney.account": {"transaction": false, "partition-key": ["id"], "clustering-key": [], "columns": {"id": "TEXT", "balance": "INT"}}
}`,
	"loader sample": `{
  "sample_db.sample_table": {"transaction": false, "partition-key": ["c1"], "clustering-key": ["c4 ASC", "c6 DESC"],
    "columns": {"c1": "INT", "c2": "TEXT", "c3": "BLOB", "c4": "INT", "c5": "BOOLEAN", "c6": "INT"},
    "ru": 5000, "compaction-strategy": "LCS", "secondary-index": ["c2", "c4"]},
  "sample_db.sample_table1": {"transaction": true, "partition-key": ["c1"], "clustering-key": ["c4"],
    "columns": {"c1": "INT", "c2": "TEXT", "c3": "INT", "c4": "INT", "c5": "BOOLEAN"}},
  "sample_db.sample_table2": {"partition-key": ["c1"], "clustering-key": ["c4", "c3"],
    "columns": {"c1": "INT", "c2": "TEXT", "c3": "INT", "c4": "INT", "c5": "BOOLEAN", "c6": "BIGINT", "c7": "FLOAT"}}
}`,
}

func TestScalarDBFeatureFilesLoadOnEmbeddedDefault(t *testing.T) {
	ctx := context.Background()
	for name, file := range featureFiles {
		for _, version := range []string{"3.4", ""} {
			t.Run(name+"/"+version, func(t *testing.T) {
				v, err := schema.ParseVersion(version)
				if err != nil {
					t.Fatal(err)
				}
				tables, err := schema.Parse([]byte(file), v)
				if err != nil {
					t.Fatal(err)
				}
				st := multistorage.New(&config.Config{DataDir: t.TempDir(), Embedded: true, Source: "test"})
				defer st.Close()
				actions, err := schema.Create(ctx, st, tables)
				if err != nil {
					t.Fatal(err)
				}
				for i, tb := range tables {
					if actions[i].Outcome != "created" {
						t.Errorf("%s: %s", actions[i].Table, actions[i].Outcome)
					}
					meta, err := st.TableMetadata(ctx, tb.User.Namespace, tb.User.Table)
					if err != nil || meta == nil {
						t.Fatalf("%s not readable after load: %v", tb.User.FullName(), err)
					}
					if !schema.SameLayout(meta, tb.Layout()) || schema.IsTransactional(meta) != tb.Transactional {
						t.Errorf("%s reads back as %+v, want %+v", tb.User.FullName(), meta, tb.Layout())
					}
				}
			})
		}
	}
}

// TestScalarDBNamesOnEveryEngine: names ScalarDB accepts (hyphens,
// non-ASCII letters, SQL keywords, a user before_ column) and an index on
// a key column create tables, and records go in and come back through
// every name, on each engine.
func TestScalarDBNamesOnEveryEngine(t *testing.T) {
	ctx := context.Background()
	for _, engine := range []string{"sqlite", "postgres", "mariadb"} {
		t.Run(engine, func(t *testing.T) {
			ns := "my-" + testenv.UniqueName("shop")
			ns2 := "ショップ-" + testenv.UniqueName("s")
			file := `{
  "` + ns + `.order-items": {"partition-key": ["order-id"], "clustering-key": ["größe DESC"], "secondary-index": ["größe", "before_note"],
    "columns": {"order-id": "TEXT", "größe": "INT", "before_note": "TEXT", "select": "INT"}},
  "` + ns2 + `.注文": {"transaction": false, "partition-key": ["番号"], "columns": {"番号": "INT", "値": "TEXT"}}
}`
			tables, err := schema.Parse([]byte(file), schema.Latest)
			if err != nil {
				t.Fatal(err)
			}
			st := multistorage.New(oneStore(t, engine, []string{ns, ns2}))
			defer st.Close()
			if _, err := schema.Create(ctx, st, tables); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { schema.Drop(ctx, st, tables, true) })
			db, err := st.Store(ctx, "db")
			if err != nil {
				t.Fatal(err)
			}
			items := tables[0].Layout()
			if got := physicalColumns(t, db, ns, "order-items"); !slices.Contains(got, "before_before_note") || !slices.Contains(got, "before_select") || len(got) != len(items.Columns) {
				t.Errorf("physical columns = %v, want those of %v", got, items.Columns)
			}
			meta, err := st.TableMetadata(ctx, ns, "order-items")
			if err != nil || meta == nil {
				t.Fatalf("metadata: %v", err)
			}
			var got []string
			for _, c := range schema.UserColumns(meta) {
				got = append(got, c.Name)
			}
			want := []string{"before_note", "größe", "order-id", "select"}
			slices.Sort(got)
			indexes := slices.Sorted(slices.Values(meta.Indexes))
			// before_before_note: the 3.16.5+ twin of the index on the
			// user's before_note.
			if !slices.Equal(got, want) || !slices.Equal(indexes, []string{"before_before_note", "before_note", "größe"}) {
				t.Errorf("user columns = %v (want %v), indexes = %v", got, want, meta.Indexes)
			}
			rec := storage.Record{"order-id": "o-1", "größe": int32(42), "before_note": "ß", "select": int32(7)}
			if err := db.Mutate(ctx, []storage.Mutation{storage.Put{Namespace: ns, Table: "order-items", Values: rec}}); err != nil {
				t.Fatal(err)
			}
			rows, err := db.Scan(ctx, storage.Scan{Namespace: ns, Table: "order-items", Partition: storage.Key{"order-id": "o-1"}})
			if err != nil || len(rows) != 1 || rows[0]["before_note"] != "ß" || rows[0]["select"] != int32(7) || rows[0]["größe"] != int32(42) {
				t.Fatalf("scan = %v, %v", rows, err)
			}
			other := storage.Record{"番号": int32(1), "値": "円"}
			if err := db.Mutate(ctx, []storage.Mutation{storage.Put{Namespace: ns2, Table: "注文", Values: other}}); err != nil {
				t.Fatal(err)
			}
			if r, err := db.Get(ctx, storage.Get{Namespace: ns2, Table: "注文", Key: storage.Key{"番号": int32(1)}}); err != nil || r["値"] != "円" {
				t.Fatalf("get = %v, %v", r, err)
			}
		})
	}
}
