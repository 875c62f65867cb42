package multistorage_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// layoutEngine is one engine of TestLayout: how to reach it and read its
// catalog.
type layoutEngine struct {
	store  config.Store
	driver string
	dsn    string
	quote  func(string) string
	table  func(schema, table string) string // quoted
	// text is ScalarDB's text type of n characters on the engine.
	text func(n int) string
	// tables lists "schema.table" of the schemas named (SQLite: every
	// table, named as stored).
	tables func(t *testing.T, db *sql.DB, schemas ...string) []string
	// columns describes a table's columns and primary key, as the catalog
	// has them.
	columns func(t *testing.T, db *sql.DB, schema, table string) []string
}

// The metadata table as ScalarDB 3.x's JDBC admin creates it.
func scalarDBMetadataDDL(e layoutEngine, schema string) string {
	q := e.quote
	return "CREATE TABLE " + e.table(schema, "metadata") + "(" + q("full_table_name") + " " + e.text(128) + "," + q("column_name") + " " + e.text(128) + "," + q("data_type") + " " + e.text(20) + " NOT NULL," + q("key_type") + " " + e.text(20) + "," + q("clustering_order") + " " + e.text(10) + "," + q("indexed") + " BOOLEAN NOT NULL," + q("ordinal_position") + " INTEGER NOT NULL,PRIMARY KEY (" + q("full_table_name") + ", " + q("column_name") + "))"
}

func varchar(n int) string { return fmt.Sprintf("VARCHAR(%d)", n) }

func dotted(q func(string) string) func(string, string) string {
	return func(schema, table string) string { return q(schema) + "." + q(table) }
}

func doubleQuote(s string) string { return `"` + s + `"` }

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func layoutEngines(t *testing.T) map[string]func(t *testing.T) layoutEngine {
	return map[string]func(t *testing.T) layoutEngine{
		"postgres": func(t *testing.T) layoutEngine {
			dsn := testenv.PostgresDSN(t)
			return layoutEngine{store: config.Store{Engine: "postgres", DSN: dsn}, driver: "pgx", dsn: dsn,
				quote: doubleQuote, table: dotted(doubleQuote), text: varchar,
				tables: func(t *testing.T, db *sql.DB, schemas ...string) []string {
					// A fresh database: schemas without tables count too.
					return queryStrings(t, db, "SELECT s.schema_name || '.' || coalesce(t.table_name, '') FROM information_schema.schemata s LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name WHERE s.schema_name NOT IN ('pg_catalog', 'information_schema') AND s.schema_name NOT LIKE 'pg_toast%' ORDER BY 1")
				},
				columns: func(t *testing.T, db *sql.DB, schema, table string) []string {
					return queryStrings(t, db, "SELECT c.column_name || ' ' || c.data_type || coalesce('(' || c.character_maximum_length || ')', '') || ' ' || c.is_nullable || coalesce(' ' || c.collation_name, '') || CASE WHEN k.column_name IS NULL THEN '' ELSE ' key ' || k.ordinal_position END FROM information_schema.columns c LEFT JOIN information_schema.table_constraints tc ON tc.table_schema = c.table_schema AND tc.table_name = c.table_name AND tc.constraint_type = 'PRIMARY KEY' LEFT JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name AND k.table_schema = c.table_schema AND k.column_name = c.column_name WHERE c.table_schema = $1 AND c.table_name = $2 ORDER BY c.ordinal_position", schema, table)
				},
			}
		},
		"mariadb": func(t *testing.T) layoutEngine {
			dsn := testenv.MySQLDSN(t)
			backquote := func(s string) string { return "`" + s + "`" }
			return layoutEngine{store: config.Store{Engine: "mysql", DSN: dsn}, driver: "mysql", dsn: dsn,
				quote: backquote, table: dotted(backquote), text: varchar,
				tables: func(t *testing.T, db *sql.DB, schemas ...string) []string {
					args := make([]any, len(schemas))
					for i, s := range schemas {
						args[i] = s
					}
					return queryStrings(t, db, "SELECT CONCAT(s.SCHEMA_NAME, '.', coalesce(t.TABLE_NAME, '')) FROM information_schema.SCHEMATA s LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME WHERE s.SCHEMA_NAME IN (?"+strings.Repeat(", ?", len(schemas)-1)+") ORDER BY 1", args...)
				},
				columns: func(t *testing.T, db *sql.DB, schema, table string) []string {
					return queryStrings(t, db, "SELECT CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE, ' ', IS_NULLABLE, ' ', coalesce(COLLATION_NAME, ''), ' ', COLUMN_KEY) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", schema, table)
				},
			}
		},
		"sqlite": func(t *testing.T) layoutEngine {
			path := filepath.Join(t.TempDir(), "s.db")
			return layoutEngine{store: config.Store{Engine: "sqlite", Path: path}, driver: "sqlite", dsn: path,
				quote: doubleQuote, table: func(schema, table string) string { return doubleQuote(schema + "$" + table) },
				text: func(int) string { return "TEXT" },
				tables: func(t *testing.T, db *sql.DB, _ ...string) []string {
					return queryStrings(t, db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
				},
				columns: func(t *testing.T, db *sql.DB, schema, table string) []string {
					return queryStrings(t, db, "SELECT name || ' ' || type || ' ' || \"notnull\" || ' ' || pk FROM pragma_table_info(?) ORDER BY cid", schema+"$"+table)
				},
			}
		},
	}
}

// TestLayout: a store with its own metadata schema and coordinator
// namespace reads an empty database without creating anything, creates
// ScalarDB's metadata table (exact DDL, no namespaces table) only with a
// table, puts the coordinator table in the configured namespace, and lists
// namespaces from the metadata.
func TestLayout(t *testing.T) {
	for name, engine := range layoutEngines(t) {
		t.Run(name, func(t *testing.T) {
			e := engine(t)
			ctx := context.Background()
			meta, coord, ns := testenv.UniqueName("meta"), testenv.UniqueName("coord"), testenv.UniqueName("ns")
			db, err := sql.Open(e.driver, e.dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() }) // after the cleanup below
			st, err := multistorage.OpenStore(ctx, "s", e.store, storage.Layout{MetadataSchema: meta, CoordinatorNamespace: coord}, false)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if name == "mariadb" {
				t.Cleanup(func() {
					for _, s := range []string{meta, coord, ns, meta + "_ref"} {
						if _, err := db.Exec("DROP DATABASE IF EXISTS " + e.quote(s)); err != nil {
							t.Logf("cleanup: %v", err)
						}
					}
				})
			}
			watched := []string{meta, coord, ns}

			// Reading an empty database creates nothing.
			before := e.tables(t, db, watched...)
			if nss, err := st.Namespaces(ctx); err != nil || len(nss) != 0 {
				t.Errorf("Namespaces() of an empty database = %v, %v", nss, err)
			}
			if m, err := st.TableMetadata(ctx, schema.CoordinatorNamespace, schema.CoordinatorTable); err != nil || m != nil {
				t.Errorf("TableMetadata(coordinator.state) of an empty database = %v, %v", m, err)
			}
			if tables, err := st.Tables(ctx, ns); err != nil || len(tables) != 0 {
				t.Errorf("Tables(%s) of an empty database = %v, %v", ns, tables, err)
			}
			if after := e.tables(t, db, watched...); !slices.Equal(after, before) {
				t.Errorf("reading created %v (before: %v)", after, before)
			}

			for _, m := range []*storage.TableMetadata{schema.Coordinator(), {Namespace: ns, Table: "t",
				Columns: []storage.Column{{Name: "id", Type: storage.Int}, {Name: "v", Type: storage.Text}}, PartitionKey: []string{"id"}}} {
				if err := st.CreateTable(ctx, m); err != nil {
					t.Fatalf("CreateTable(%s): %v", m.FullName(), err)
				}
			}
			// The layout's own schemas take no user tables.
			for _, own := range []string{meta, coord} {
				m := &storage.TableMetadata{Namespace: own, Table: "u", Columns: []storage.Column{{Name: "id", Type: storage.Int}}, PartitionKey: []string{"id"}}
				if err := st.CreateTable(ctx, m); err == nil || !strings.Contains(err.Error(), "use another name") {
					t.Errorf("CreateTable(%s.u) = %v, want a refusal naming the layout's schema", own, err)
				}
			}
			if nss, err := st.Namespaces(ctx); err != nil || !slices.Equal(nss, []string{schema.CoordinatorNamespace, ns}) {
				t.Errorf("Namespaces() = %v, %v; want the coordinator's (as Stillpoint names it) and %s", nss, err, ns)
			}
			sep, metadata := ".", e.table(meta, "metadata")
			if name == "sqlite" {
				sep = "$"
			}
			want := append(slices.Clone(before), coord+sep+"state", meta+sep+"metadata", ns+sep+"t")
			slices.Sort(want)
			if got := e.tables(t, db, watched...); !reflect.DeepEqual(got, want) {
				t.Errorf("tables in the database: %v, want %v (the coordinator in its configured namespace, no namespaces table)", got, want)
			}
			fulls := queryStrings(t, db, "SELECT DISTINCT full_table_name FROM "+metadata+" ORDER BY 1")
			if wantFulls := []string{coord + ".state", ns + ".t"}; !slices.Equal(fulls, wantFulls) {
				t.Errorf("metadata rows name %v, want %v", fulls, wantFulls)
			}

			// The metadata table's DDL is ScalarDB's, column for column.
			ref := meta + "_ref"
			ddl := []string{scalarDBMetadataDDL(e, ref)}
			if name != "sqlite" {
				ddl = append([]string{"CREATE SCHEMA " + e.quote(ref)}, ddl...)
			}
			for _, q := range ddl {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			got, wantCols := e.columns(t, db, meta, "metadata"), e.columns(t, db, ref, "metadata")
			if len(wantCols) != 7 || !slices.Equal(got, wantCols) {
				t.Errorf("metadata table columns:\n%s\nScalarDB's:\n%s", strings.Join(got, "\n"), strings.Join(wantCols, "\n"))
			}
		})
	}
}
