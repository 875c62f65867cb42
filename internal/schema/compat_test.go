package schema_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    schema.Version
		txnTrue bool
		bad     bool
	}{
		{"", schema.Latest, true, false},
		{"3.4", schema.Version{Minor: 4}, false, false},
		{"3.6.9", schema.Version{Minor: 6}, false, false},
		{"3.7", schema.Version{Minor: 7}, true, false},
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
			if !slices.Equal(got, want) || !slices.Equal(indexes, []string{"before_note", "größe"}) {
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
