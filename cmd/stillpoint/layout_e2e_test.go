package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/stillpoint/stillpoint/internal/testenv"
)

// scalarDB34 is a database as ScalarDB 3.4's JDBC admin lays it out
// (docs/layout.md; /work/wt/research/scalardb-layouts.md §1-5), written by
// hand, not through Stillpoint: a transactional table, the coordinator
// table and the metadata table with both tables' rows, and no namespaces
// table.
type scalarDB34 struct {
	engine, driver, dsn string
	ns, meta, coord     string // physical schema names
	q                   func(string) string
	// namespaceOptions, keyText and longText are where the engines'
	// DDL differ in 3.4.
	namespaceOptions, keyText, longText string
	// catalog lists the schemas, tables and columns to watch, with
	// catalogArgs.
	catalog     string
	catalogArgs []any
}

func (f scalarDB34) ddl() []string {
	q := f.q
	table := func(ns, t string) string { return q(ns) + "." + q(t) }
	tx := []string{"tx_id " + f.longText, "tx_state INT", "tx_version INT", "tx_prepared_at BIGINT", "tx_committed_at BIGINT",
		"before_tx_id " + f.longText, "before_tx_state INT", "before_tx_version INT", "before_tx_prepared_at BIGINT", "before_tx_committed_at BIGINT"}
	for i, c := range tx {
		name, typ, _ := strings.Cut(c, " ")
		tx[i] = q(name) + " " + typ
	}
	meta := func(full, col, typ, keyType string, pos int) string {
		kt := "NULL"
		if keyType != "" {
			kt = "'" + keyType + "'"
		}
		return fmt.Sprintf("INSERT INTO %s VALUES ('%s','%s','%s',%s,NULL,false,%d)", table(f.meta, "metadata"), full, col, typ, kt, pos)
	}
	stmts := []string{
		"CREATE SCHEMA " + q(f.ns) + f.namespaceOptions,
		"CREATE TABLE " + table(f.ns, "accounts") + "(" + q("id") + " INT," + q("balance") + " INT," + strings.Join(tx, ",") + "," + q("before_balance") + " INT, PRIMARY KEY (" + q("id") + "))",
		"CREATE SCHEMA " + q(f.coord) + f.namespaceOptions,
		"CREATE TABLE " + table(f.coord, "state") + "(" + q("tx_id") + " " + f.keyText + "," + q("tx_state") + " INT," + q("tx_created_at") + " BIGINT, PRIMARY KEY (" + q("tx_id") + "))",
		"CREATE SCHEMA IF NOT EXISTS " + q(f.meta),
		"CREATE TABLE IF NOT EXISTS " + table(f.meta, "metadata") + "(" + q("full_table_name") + " VARCHAR(128)," + q("column_name") + " VARCHAR(128)," + q("data_type") + " VARCHAR(20) NOT NULL," + q("key_type") + " VARCHAR(20)," + q("clustering_order") + " VARCHAR(10)," + q("indexed") + " BOOLEAN NOT NULL," + q("ordinal_position") + " INTEGER NOT NULL,PRIMARY KEY (" + q("full_table_name") + ", " + q("column_name") + "))",
	}
	accounts, state := f.ns+".accounts", f.coord+".state"
	for i, c := range []struct{ name, typ, key string }{
		{"id", "INT", "PARTITION"}, {"balance", "INT", ""},
		{"tx_id", "TEXT", ""}, {"tx_state", "INT", ""}, {"tx_version", "INT", ""}, {"tx_prepared_at", "BIGINT", ""}, {"tx_committed_at", "BIGINT", ""},
		{"before_tx_id", "TEXT", ""}, {"before_tx_state", "INT", ""}, {"before_tx_version", "INT", ""}, {"before_tx_prepared_at", "BIGINT", ""}, {"before_tx_committed_at", "BIGINT", ""},
		{"before_balance", "INT", ""},
	} {
		stmts = append(stmts, meta(accounts, c.name, c.typ, c.key, i+1))
	}
	for i, c := range []struct{ name, typ, key string }{{"tx_id", "TEXT", "PARTITION"}, {"tx_state", "INT", ""}, {"tx_created_at", "BIGINT", ""}} {
		stmts = append(stmts, meta(state, c.name, c.typ, c.key, i+1))
	}
	// Two accounts committed by one transaction, with its decision.
	const id, at = "3f1c2a9e-0d5b-4c1e-9a7f-2b8e6d4c1a00", int64(1700000000000)
	for _, acc := range []struct{ id, balance int }{{1, 100}, {2, 250}} {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (%s, %s, %s, %s, %s, %s, %s) VALUES (%d, %d, '%s', 3, 1, %d, %d)",
			table(f.ns, "accounts"), q("id"), q("balance"), q("tx_id"), q("tx_state"), q("tx_version"), q("tx_prepared_at"), q("tx_committed_at"), acc.id, acc.balance, id, at, at+5))
	}
	return append(stmts, fmt.Sprintf("INSERT INTO %s VALUES ('%s', 3, %d)", table(f.coord, "state"), id, at+4))
}

// state is what a read-only command must leave as it was: the schemas and
// tables, each table's columns, and a checksum of every row.
func (f scalarDB34) state(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, f.catalog, f.catalogArgs...)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	out := map[string]string{}
	var tables [][2]string
	for rows.Next() {
		var schema, table, columns sql.NullString
		if err := rows.Scan(&schema, &table, &columns); err != nil {
			t.Fatal(err)
		}
		out[schema.String+"."+table.String] = columns.String
		if table.Valid {
			tables = append(tables, [2]string{schema.String, table.String})
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		out[tb[0]+"."+tb[1]] += " rows " + rowsChecksum(t, db, f.q(tb[0])+"."+f.q(tb[1]))
	}
	return out
}

// rowsChecksum hashes every row of a table, in an order of their own.
func rowsChecksum(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var hashes []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		for _, v := range vals {
			fmt.Fprintf(h, "%t:%d:%s|", v == nil, len(v), v)
		}
		hashes = append(hashes, hex.EncodeToString(h.Sum(nil)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(hashes)
	sum := sha256.Sum256([]byte(strings.Join(hashes, ",")))
	return fmt.Sprintf("%d:%x", len(hashes), sum[:8])
}

// TestScalarDBDatabaseReadOnly: on a database laid out as ScalarDB 3.4
// lays it out, schema show lists its tables, and schema show, a read-only
// verify, backup create and loading the same schema change nothing in it
// (issue 10). On MariaDB
// the metadata schema and the coordinator namespace have names of their
// own, set as ScalarDB's settings would set them.
func TestScalarDBDatabaseReadOnly(t *testing.T) {
	catalogColumns := "(SELECT string_agg(c.column_name || ' ' || c.data_type || coalesce('(' || c.character_maximum_length || ')', ''), ',' ORDER BY c.ordinal_position) FROM information_schema.columns c WHERE c.table_schema = s.schema_name AND c.table_name = t.table_name)"
	fixtures := map[string]func(t *testing.T) scalarDB34{
		"postgres": func(t *testing.T) scalarDB34 {
			return scalarDB34{engine: "postgres", driver: "pgx", dsn: testenv.PostgresDSN(t),
				ns: "sample", meta: "scalardb", coord: "coordinator",
				q: func(s string) string { return `"` + s + `"` }, keyText: "VARCHAR(10485760)", longText: "TEXT",
				// A fresh database: every schema and table in it.
				catalog: "SELECT s.schema_name, t.table_name, " + catalogColumns + " FROM information_schema.schemata s LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name WHERE s.schema_name NOT IN ('pg_catalog', 'information_schema') AND s.schema_name NOT LIKE 'pg_toast%'",
			}
		},
		"mariadb": func(t *testing.T) scalarDB34 {
			ns, meta, coord := testenv.UniqueName("sample"), testenv.UniqueName("meta"), testenv.UniqueName("coord")
			return scalarDB34{engine: "mariadb", driver: "mysql", dsn: testenv.MySQLDSN(t),
				ns: ns, meta: meta, coord: coord, catalogArgs: []any{ns, meta, coord, "stillpoint"},
				q: func(s string) string { return "`" + s + "`" }, keyText: "VARCHAR(64)", longText: "LONGTEXT",
				namespaceOptions: " character set utf8 COLLATE utf8_bin",
				// A shared server: the fixture's schemas and the journal's.
				catalog: "SELECT s.SCHEMA_NAME, t.TABLE_NAME, (SELECT GROUP_CONCAT(c.COLUMN_NAME, ' ', c.COLUMN_TYPE, ' ', coalesce(c.COLLATION_NAME, '') ORDER BY c.ORDINAL_POSITION) FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = s.SCHEMA_NAME AND c.TABLE_NAME = t.TABLE_NAME) FROM information_schema.SCHEMATA s LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME WHERE s.SCHEMA_NAME IN (?, ?, ?, ?)",
			}
		},
	}
	for name, fixture := range fixtures {
		t.Run(name, func(t *testing.T) {
			f := fixture(t)
			db, err := sql.Open(f.driver, f.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if f.engine == "mariadb" {
				t.Cleanup(func() {
					for _, s := range []string{f.ns, f.meta, f.coord} {
						if _, err := db.Exec("DROP DATABASE IF EXISTS " + f.q(s)); err != nil {
							t.Logf("cleanup: %v", err)
						}
					}
				})
			}
			for _, stmt := range f.ddl() {
				if _, err := db.Exec(stmt); err != nil {
					t.Fatalf("fixture: %s: %v", stmt, err)
				}
			}
			path := filepath.Join(t.TempDir(), "stillpoint.yaml")
			yaml := fmt.Sprintf("stores:\n  db: {engine: %s, dsn: %q}\nnamespaces:\n  %s: db\ncoordinator: db\n", f.engine, f.dsn, f.ns)
			if f.meta != "scalardb" { // PostgreSQL keeps ScalarDB's defaults
				yaml += fmt.Sprintf("metadata_schema: %s\ncoordinator_namespace: %s\n", f.meta, f.coord)
			}
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c := cli{t: t, bin: build(t), args: []string{"--config", path}}
			before := f.state(t, db)
			if _, ok := before[f.ns+".accounts"]; !ok {
				t.Fatalf("the fixture's catalog query does not see its own table: %v", before)
			}

			out, code := c.run("--json", "schema", "show")
			if code != 0 {
				t.Fatalf("schema show: exit %d: %s", code, out)
			}
			var views []tableView
			if err := json.Unmarshal([]byte(out), &views); err != nil {
				t.Fatalf("schema show --json: %v\n%s", err, out)
			}
			var shown []string
			for _, v := range views {
				shown = append(shown, v.Table)
			}
			if !slices.Contains(shown, f.ns+".accounts") {
				t.Errorf("schema show lists %v, want %s.accounts", shown, f.ns)
			}
			assertUnchanged(t, "schema show", before, f.state(t, db))

			if out, code := c.run("verify"); code != 0 {
				t.Errorf("verify: exit %d: %s", code, out)
			}
			assertUnchanged(t, "verify", before, f.state(t, db))

			if out, code := c.run("backup", "create", "--init", "--repo", t.TempDir()); code != 0 {
				t.Errorf("backup create: exit %d: %s", code, out)
			}
			assertUnchanged(t, "backup create", before, f.state(t, db))

			// Loading the schema ScalarDB loaded adds nothing: no
			// namespaces table, no second metadata table.
			file := filepath.Join(t.TempDir(), "schema.json")
			def := fmt.Sprintf(`{"%s.accounts": {"transaction": true, "partition-key": ["id"], "columns": {"id": "INT", "balance": "INT"}}}`, f.ns)
			if err := os.WriteFile(file, []byte(def), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, code := c.run("schema", "load", file); code != 0 {
				t.Errorf("schema load: exit %d: %s", code, out)
			}
			assertUnchanged(t, "schema load of the same schema", before, f.state(t, db))
		})
	}
}

func assertUnchanged(t *testing.T, after string, before, now map[string]string) {
	t.Helper()
	for k, v := range before {
		if now[k] != v {
			t.Errorf("after %s, %s is %q, was %q", after, k, now[k], v)
		}
	}
	for k, v := range now {
		if _, ok := before[k]; !ok {
			t.Errorf("after %s, %s appeared: %q", after, k, v)
		}
	}
}
