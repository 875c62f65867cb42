package restore_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// era34 is a database as ScalarDB 3.4's JDBC admin lays it out
// (docs/research/scalardb-layouts.md §1-5), written by hand with its DDL:
// the 3.4 sample table (clustering key c4 ASC, c6 DESC; indexes on c2 and
// on the key column c4, their names unquoted), transactional, with the
// coordinator table and the metadata table.
type era34 struct {
	engine, driver, dsn string
	ns, coord, meta     string // physical schema names
	q                   func(string) string
	// Where the engines' 3.4 DDL differ.
	namespaceOptions, keyText, text, blob, pk string
	// clusteringIndex is PostgreSQL's extra unique index for DESC.
	clusteringIndex bool
	// extra are statements run after the fixture (tables of a test's own).
	extra []string
}

func (f *era34) table(ns, t string) string { return f.q(ns) + "." + f.q(t) }

func (f *era34) ddl() []string {
	q, sample := f.q, f.table(f.ns, "sample_table")
	cols := []string{"c1 INT", "c4 INT", "c6 INT", "c2 " + f.keyText, "c3 " + f.blob, "c5 BOOLEAN",
		"tx_id " + f.text, "tx_state INT", "tx_version INT", "tx_prepared_at BIGINT", "tx_committed_at BIGINT",
		"before_tx_id " + f.text, "before_tx_state INT", "before_tx_version INT", "before_tx_prepared_at BIGINT", "before_tx_committed_at BIGINT",
		"before_c2 " + f.text, "before_c3 " + f.blob, "before_c5 BOOLEAN"}
	for i, c := range cols {
		name, typ, _ := strings.Cut(c, " ")
		cols[i] = q(name) + " " + typ
	}
	stmts := []string{
		"CREATE SCHEMA " + q(f.ns) + f.namespaceOptions,
		"CREATE TABLE " + sample + "(" + strings.Join(cols, ",") + ", PRIMARY KEY (" + f.pk + "))",
	}
	if f.clusteringIndex {
		stmts = append(stmts, "CREATE UNIQUE INDEX "+q(f.ns+".sample_table_clustering_order_idx")+" ON "+sample+" ("+q("c1")+" ASC,"+q("c4")+" ASC,"+q("c6")+" DESC)")
	}
	for _, c := range []string{"c2", "c4"} { // 3.4 leaves index names unquoted
		stmts = append(stmts, "CREATE INDEX index_"+f.ns+"_sample_table_"+c+" ON "+sample+" ("+q(c)+")")
	}
	stmts = append(stmts,
		"CREATE SCHEMA "+q(f.coord)+f.namespaceOptions,
		"CREATE TABLE "+f.table(f.coord, "state")+"("+q("tx_id")+" "+f.keyText+","+q("tx_state")+" INT,"+q("tx_created_at")+" BIGINT, PRIMARY KEY ("+q("tx_id")+"))",
		"CREATE SCHEMA IF NOT EXISTS "+q(f.meta),
		"CREATE TABLE IF NOT EXISTS "+f.table(f.meta, "metadata")+"("+q("full_table_name")+" VARCHAR(128),"+q("column_name")+" VARCHAR(128),"+q("data_type")+" VARCHAR(20) NOT NULL,"+q("key_type")+" VARCHAR(20),"+q("clustering_order")+" VARCHAR(10),"+q("indexed")+" BOOLEAN NOT NULL,"+q("ordinal_position")+" INTEGER NOT NULL,PRIMARY KEY ("+q("full_table_name")+", "+q("column_name")+"))",
	)
	types := map[string]string{"c1": "INT", "c4": "INT", "c6": "INT", "c2": "TEXT", "c3": "BLOB", "c5": "BOOLEAN",
		"tx_id": "TEXT", "tx_state": "INT", "tx_version": "INT", "tx_prepared_at": "BIGINT", "tx_committed_at": "BIGINT",
		"before_tx_id": "TEXT", "before_tx_state": "INT", "before_tx_version": "INT", "before_tx_prepared_at": "BIGINT", "before_tx_committed_at": "BIGINT",
		"before_c2": "TEXT", "before_c3": "BLOB", "before_c5": "BOOLEAN"}
	for i, c := range []string{"c1", "c4", "c6", "c2", "c3", "c5", "tx_id", "tx_state", "tx_version", "tx_prepared_at", "tx_committed_at",
		"before_tx_id", "before_tx_state", "before_tx_version", "before_tx_prepared_at", "before_tx_committed_at", "before_c2", "before_c3", "before_c5"} {
		key, order := "NULL", "NULL"
		switch c {
		case "c1":
			key = "'PARTITION'"
		case "c4", "c6":
			key, order = "'CLUSTERING'", map[string]string{"c4": "'ASC'", "c6": "'DESC'"}[c]
		}
		stmts = append(stmts, f.metadataRow(f.ns+".sample_table", c, types[c], key, order, c == "c2" || c == "c4", i+1))
	}
	for i, c := range []string{"tx_id", "tx_state", "tx_created_at"} {
		key := "NULL"
		if i == 0 {
			key = "'PARTITION'"
		}
		stmts = append(stmts, f.metadataRow(f.coord+".state", c, []string{"TEXT", "INT", "BIGINT"}[i], key, "NULL", false, i+1))
	}
	const id, at = "6a0c4f7e-3b1d-4e2a-9c5f-8d7b6a5e4c30", int64(1700000000000)
	for _, r := range []struct{ c1, c4, c6 int }{{1, 1, 9}, {1, 1, 8}, {1, 2, 9}, {2, 1, 1}} {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) VALUES (%d, %d, %d, 'k%d-%d', 'xyz', true, '%s', 3, 1, %d, %d)",
			sample, q("c1"), q("c4"), q("c6"), q("c2"), q("c3"), q("c5"), q("tx_id"), q("tx_state"), q("tx_version"), q("tx_prepared_at"), q("tx_committed_at"),
			r.c1, r.c4, r.c6, r.c4, r.c6, id, at, at+3))
	}
	stmts = append(stmts, fmt.Sprintf("INSERT INTO %s VALUES ('%s', 3, %d)", f.table(f.coord, "state"), id, at+2))
	return append(stmts, f.extra...)
}

func (f *era34) metadataRow(full, col, typ, key, order string, indexed bool, pos int) string {
	return fmt.Sprintf("INSERT INTO %s VALUES ('%s','%s','%s',%s,%s,%t,%d)", f.table(f.meta, "metadata"), full, col, typ, key, order, indexed, pos)
}

// newEra34 builds the fixture on an engine: PostgreSQL in a fresh database
// with ScalarDB's default names; MariaDB (shared) with unique names, the
// metadata schema and coordinator namespace set as ScalarDB's settings
// would set them.
func newEra34(t *testing.T, engine string, extra ...string) *era34 {
	t.Helper()
	var f *era34
	switch engine {
	case "postgres":
		f = &era34{engine: engine, driver: "pgx", dsn: testenv.PostgresDSN(t), ns: "sample_db", coord: "coordinator", meta: "scalardb",
			q: func(s string) string { return `"` + s + `"` }, keyText: "VARCHAR(10485760)", text: "TEXT", blob: "BYTEA",
			pk: `"c1","c4","c6"`, clusteringIndex: true}
	case "mysql":
		f = &era34{engine: engine, driver: "mysql", dsn: testenv.MySQLDSN(t),
			ns: testenv.UniqueName("sample"), coord: testenv.UniqueName("coord"), meta: testenv.UniqueName("meta"),
			q: func(s string) string { return "`" + s + "`" }, keyText: "VARCHAR(64)", text: "LONGTEXT", blob: "LONGBLOB",
			pk: "`c1` ASC,`c4` ASC,`c6` DESC", namespaceOptions: " character set utf8 COLLATE utf8_bin"}
		t.Cleanup(func() { f.dropAll(t) })
	}
	f.extra = extra
	db := f.open(t)
	for _, stmt := range f.ddl() {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("fixture: %s: %v", stmt, err)
		}
	}
	return f
}

func (f *era34) open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open(f.driver, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dropAll removes the fixture's MariaDB databases (and a journal's).
func (f *era34) dropAll(t *testing.T) {
	t.Helper()
	db := f.open(t)
	for _, s := range []string{f.ns, f.coord, f.meta} {
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + f.q(s)); err != nil {
			t.Fatalf("drop %s: %v", s, err)
		}
	}
}

// config is a configuration of one store holding the fixture.
func (f *era34) config(t *testing.T) *config.Config {
	return &config.Config{DataDir: t.TempDir(), Stores: map[string]config.Store{"db": {Engine: f.engine, DSN: f.dsn}},
		Namespaces: map[string]string{f.ns: "db"}, Coordinator: "db", MetadataSchema: f.meta, CoordinatorNamespace: f.coord, Source: "test"}
}

// backup takes a fence backup of the fixture into a new repository.
func (f *era34) backup(t *testing.T) (*multistorage.Storage, *repo.Repository, *backup.Manifest) {
	t.Helper()
	st := multistorage.New(f.config(t))
	t.Cleanup(func() { st.Close() })
	r, _ := newRepo(t)
	m, err := backup.Create(context.Background(), st, r, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return st, r, m
}

// catalog is what must be equal after a restore: every schema (with its
// character set), table, column (type, length, collation, nullability,
// default), index and constraint definition, each table's SHOW CREATE
// TABLE on MariaDB, and a checksum of every table's rows.
func (f *era34) catalog(t *testing.T) map[string][]string {
	t.Helper()
	db := f.open(t)
	out := map[string][]string{}
	var queries map[string]string
	var args []any
	switch f.engine {
	case "postgres": // a fresh database: everything outside the system schemas
		const user = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
		queries = map[string]string{
			"schemas":     "SELECT n.nspname FROM pg_namespace n WHERE " + user,
			"objects":     "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " + user,
			"columns":     "SELECT table_schema, table_name, column_name, ordinal_position, data_type, character_maximum_length, collation_name, is_nullable, column_default, numeric_precision FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
			"indexes":     "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
			"constraints": "SELECT n.nspname, c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid) FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " + user,
		}
	case "mysql": // a shared server: the fixture's databases and the journal's
		in := "IN (?, ?, ?, ?)"
		args = []any{f.ns, f.coord, f.meta, config.StillpointNamespace}
		queries = map[string]string{
			"schemas": "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME " + in,
			"objects": "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA " + in,
			"columns": "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, CHARACTER_SET_NAME, COLLATION_NAME, IS_NULLABLE, COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA " + in,
			"indexes": "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, COLLATION, NON_UNIQUE, INDEX_TYPE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA " + in,
		}
	}
	for name, query := range queries {
		out[name] = queryStrings(t, db, query, args...)
	}
	for _, tb := range out["objects"] {
		parts := strings.Split(tb, "|")
		for i := range parts {
			parts[i], _ = strconv.Unquote(parts[i])
		}
		if f.engine == "postgres" && parts[2] != "r" {
			continue
		}
		table := f.table(parts[0], parts[1])
		if f.engine == "mysql" {
			created := queryStrings(t, db, "SHOW CREATE TABLE "+table)
			out["create "+table] = created
		}
		out["rows "+table] = queryStrings(t, db, "SELECT * FROM "+table)
	}
	return out
}

// queryStrings returns a query's rows, each as its values joined by |,
// sorted.
func queryStrings(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		s := make([]string, len(vals))
		for i, v := range vals {
			s[i] = fmt.Sprintf("%q", v.String)
			if !v.Valid {
				s[i] = "NULL"
			}
		}
		out = append(out, strings.Join(s, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// diffCatalogs names every difference between two catalogs.
func diffCatalogs(got, want map[string][]string) []string {
	keys := maps.Clone(want)
	maps.Copy(keys, got)
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		g, w := got[k], want[k]
		for _, r := range w {
			if !slices.Contains(g, r) {
				diffs = append(diffs, k+": missing "+r)
			}
		}
		for _, r := range g {
			if !slices.Contains(w, r) {
				diffs = append(diffs, k+": extra "+r)
			}
		}
	}
	return diffs
}

// TestRestoreReproducesScalarDB34DDL: a backup of a database laid out by
// ScalarDB 3.4, restored into an empty database of the same engine, has
// exactly the source's catalog: the same schemas (MariaDB: utf8mb3 /
// utf8mb3_bin), tables, columns with their types, lengths and collations,
// primary keys (MariaDB: c6 DESC), indexes with their names (3.4's
// unquoted ones, PostgreSQL's dotted clustering-order index) and
// definitions, the metadata and coordinator tables' own DDL, the same
// rows, and no object ScalarDB 3.4 would not have created (no journal, no
// namespaces table, no extra index). On PostgreSQL an imported table keeps
// its NUMERIC column.
func TestRestoreReproducesScalarDB34DDL(t *testing.T) {
	for _, engine := range []string{"postgres", "mysql"} {
		for _, renamed := range []bool{false, true} {
			name := engine
			if renamed {
				name += " with another coordinator namespace and metadata schema"
			}
			t.Run(name, func(t *testing.T) { testRestoreReproducesDDL(t, engine, renamed) })
		}
	}
}

// testRestoreReproducesDDL restores a 3.4 fixture into an empty database,
// renamed: into a target configured with other names for the coordinator
// namespace and the metadata schema, whose catalog must then be the
// source's with those names replaced.
func testRestoreReproducesDDL(t *testing.T, engine string, renamed bool) {
	ctx := context.Background()
	var extra []string
	if engine == "postgres" {
		extra = imported("sample_db", "scalardb")
	}
	f := newEra34(t, engine, extra...)
	_, r, m := f.backup(t)
	want := f.catalog(t)
	// An empty database: a fresh one on PostgreSQL; on the shared MariaDB,
	// the same names once the source's databases are gone.
	if engine == "postgres" {
		f.dsn = testenv.PostgresDSN(t)
	} else {
		f.dropAll(t)
	}
	if renamed {
		coord, meta := testenv.UniqueName("txcoord"), testenv.UniqueName("txmeta")
		want = renameCatalog(want, strings.NewReplacer(f.coord, coord, f.meta, meta))
		f.coord, f.meta = coord, meta
	}
	target := multistorage.New(f.config(t))
	defer target.Close()
	res, err := restore.Run(ctx, r, m, restore.Stores(target), restore.Options{})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if want := (restore.DDLCounts{Replayed: res.Tables}); res.DDL != want {
		t.Errorf("tables created %+v, want %+v", res.DDL, want)
	}
	got := f.catalog(t)
	if diffs := diffCatalogs(got, want); len(diffs) > 0 {
		t.Fatalf("the restored catalog differs from the source's (%d differences):\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
	if len(want["indexes"]) == 0 || len(want["rows "+f.table(f.ns, "sample_table")]) != 4 {
		t.Fatalf("the comparison saw no indexes or not the 4 rows: %v", want)
	}
	var compared []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		compared = append(compared, fmt.Sprintf("%s %d", k, len(want[k])))
	}
	t.Logf("equal: %s", strings.Join(compared, ", "))
}

// renameCatalog replaces schema names in a catalog, keys and rows.
func renameCatalog(c map[string][]string, r *strings.Replacer) map[string][]string {
	out := map[string][]string{}
	for k, rows := range c {
		for _, row := range rows {
			out[r.Replace(k)] = append(out[r.Replace(k)], r.Replace(row))
		}
	}
	return out
}

// imported is a table ScalarDB imported (3.10+ importTable keeps the
// user's column types): amount is NUMERIC(12,2) in the catalog and DOUBLE
// in the metadata, which the cross-engine mapping does not cover.
func imported(ns, meta string) []string {
	return []string{
		`CREATE TABLE "` + ns + `"."imported"("id" INT, "amount" NUMERIC(12,2), PRIMARY KEY ("id"))`,
		`INSERT INTO "` + meta + `"."metadata" VALUES ('` + ns + `.imported','id','INT','PARTITION',NULL,false,1)`,
		`INSERT INTO "` + meta + `"."metadata" VALUES ('` + ns + `.imported','amount','DOUBLE',NULL,NULL,false,2)`,
		`INSERT INTO "` + ns + `"."imported" VALUES (1, 12.50)`,
	}
}

// TestRestoreIntoAnotherEngine: into another engine, a backup's tables are
// created by the documented type mapping and hold the same records; a
// column the mapping does not cover is refused before anything is created.
func TestRestoreIntoAnotherEngine(t *testing.T) {
	sqliteTarget := func(t *testing.T, f *era34) *config.Config {
		return &config.Config{DataDir: t.TempDir(), Stores: map[string]config.Store{"lite": {Engine: "sqlite", Path: t.TempDir() + "/target.db"}},
			Namespaces: map[string]string{f.ns: "lite"}, Coordinator: "lite", Source: "test"}
	}
	postgresTarget := func(t *testing.T, f *era34) *config.Config {
		return &config.Config{DataDir: t.TempDir(), Stores: map[string]config.Store{"pg": {Engine: "postgres", DSN: testenv.PostgresDSN(t)}},
			Namespaces: map[string]string{f.ns: "pg"}, Coordinator: "pg", Source: "test"}
	}
	for _, tc := range []struct {
		name, source string
		imported     bool
		target       func(*testing.T, *era34) *config.Config
		refused      []string // what the refusal must say; nil: restored
	}{
		{name: "postgres to sqlite", source: "postgres", target: sqliteTarget},
		{name: "mariadb to postgres", source: "mysql", target: postgresTarget},
		{name: "numeric to sqlite refused", source: "postgres", imported: true, target: sqliteTarget,
			refused: []string{"sample_db.imported", "amount is numeric(12,2) on postgres", "DOUBLE", "restore it into a postgres store", "docs/ddl.md"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var extra []string
			if tc.imported {
				extra = imported("sample_db", "scalardb")
			}
			f := newEra34(t, tc.source, extra...)
			src, r, m := f.backup(t)
			target := multistorage.New(tc.target(t, f))
			defer target.Close()
			res, err := restore.Run(ctx, r, m, restore.Stores(target), restore.Options{})
			if tc.refused != nil {
				if err == nil {
					t.Fatal("restore succeeded, want a refusal")
				}
				for _, s := range tc.refused {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("refusal %q does not say %q", err, s)
					}
				}
				if nss, err := target.Namespaces(ctx); err != nil || len(nss) != 0 {
					t.Fatalf("a refused restore left namespaces %v (%v)", nss, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if want := (restore.DDLCounts{Mapped: res.Tables}); res.DDL != want {
				t.Errorf("tables created %+v, want %+v", res.DDL, want)
			}
			if diff := sameDump(dump(t, target, m), dump(t, src, m)); diff != "" {
				t.Fatalf("restored records differ: %s", diff)
			}
			if got := dump(t, target, m)[f.ns+".sample_table"]; len(got) != 4 {
				t.Fatalf("restored %d sample records, want 4", len(got))
			}
		})
	}
}

// TestManifestDDLFormats: a manifest records the DDL; one written before
// it did (no definitions) restores as before, from the metadata; one of a
// newer format is refused before anything is created.
func TestManifestDDLFormats(t *testing.T) {
	ctx := context.Background()
	src := newBank(t, testenv.Embedded(t), bank.DefaultNamespaces, 5)
	m, err := backup.Create(ctx, src.st, src.repo, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	if m.DDLFormat != storage.DefinitionFormat {
		t.Fatalf("manifest ddl_format %d, want %d", m.DDLFormat, storage.DefinitionFormat)
	}
	for _, s := range m.Stores {
		if s.MetadataTable == nil || s.MetadataTable.Engine != "sqlite" {
			t.Errorf("store %s: metadata table DDL %+v not recorded", s.Name, s.MetadataTable)
		}
		for _, tb := range s.Tables {
			if tb.Definition == nil || !strings.Contains(tb.Definition.Body, "PRIMARY KEY") {
				t.Errorf("table %s: definition %+v not recorded", tb.Metadata.FullName(), tb.Definition)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*backup.Manifest)
		want   string // "" is success
	}{
		{"before definitions", func(m *backup.Manifest) {
			m.DDLFormat = 0
			for i := range m.Stores {
				s := &m.Stores[i]
				s.Namespaces, s.MetadataTable, s.MetadataSchema = nil, nil, nil
				for j := range s.Tables {
					s.Tables[j].Definition = nil
				}
			}
		}, ""},
		{"newer format", func(m *backup.Manifest) { m.DDLFormat = storage.DefinitionFormat + 1 }, "restore it with a newer Stillpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			old, err := backup.DecodeManifest(data)
			if err != nil {
				t.Fatal(err)
			}
			tc.change(old)
			target := multistorage.New(testenv.Embedded(t))
			defer target.Close()
			res, err := restore.Run(ctx, src.repo, old, restore.Stores(target), restore.Options{})
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("restore = %v, want %q", err, tc.want)
				}
				if nss, _ := target.Namespaces(ctx); len(nss) != 0 {
					t.Fatalf("a refused restore created namespaces %v", nss)
				}
				return
			}
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if want := (restore.DDLCounts{FromMetadata: res.Tables}); res.DDL != want {
				t.Errorf("tables created %+v, want %+v", res.DDL, want)
			}
			if diff := sameDump(dump(t, target, m), dump(t, src.st, m)); diff != "" {
				t.Fatalf("restored records differ: %s", diff)
			}
		})
	}
}

// TestDuplicateKeysFailTheRestore: a backup holding two rows with one key
// (here from a MariaDB table whose key was never enforced), restored into
// PostgreSQL, whose load builds the key after the rows, fails naming the
// table and the key, and leaves the restore unfinished.
func TestDuplicateKeysFailTheRestore(t *testing.T) {
	ctx := context.Background()
	f := newEra34(t, "mysql")
	db := f.open(t)
	for _, q := range []string{
		"CREATE TABLE " + f.table(f.ns, "dup") + " (`id` INT, `v` INT)",
		f.metadataRow(f.ns+".dup", "id", "INT", "'PARTITION'", "NULL", false, 1),
		f.metadataRow(f.ns+".dup", "v", "INT", "NULL", "NULL", false, 2),
		"INSERT INTO " + f.table(f.ns, "dup") + " VALUES (1, 1), (2, 2), (2, 3)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_, r, m := f.backup(t)
	target := multistorage.New(postgresOnly(t, f.ns))
	defer target.Close()
	_, err := restore.Run(ctx, r, m, restore.Stores(target), restore.Options{})
	if err == nil {
		t.Fatal("restored a backup with a duplicate key")
	}
	for _, s := range []string{f.ns + ".dup", "dup_pkey", "more than one row with one key", "(id)=(2)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if id, err := restore.Unfinished(ctx, target); err != nil || id != m.ID {
		t.Fatalf("after the failed key build: unfinished restore %q (%v), want %s", id, err, m.ID)
	}
}
