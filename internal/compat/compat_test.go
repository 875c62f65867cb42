package compat

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The worked examples of docs/research/scalardb-layouts.md, read from
// ScalarDB's source: the builders must produce them exactly.
func TestDDLMatchesScalarDBExamples(t *testing.T) {
	era := func(name string) Era {
		i := slices.IndexFunc(Eras, func(e Era) bool { return e.Name == name })
		return Eras[i]
	}
	// schema-loader/sample/schema_sample.json (3.4.9): sample_table1 is
	// transactional, sample_table is not.
	table1 := Table{Name: "sample_table1", Partition: []string{"c1"}, Clustering: []Order{{Name: "c4"}},
		Columns: []Column{{Name: "c1", Type: "INT"}, {Name: "c2", Type: "TEXT"}, {Name: "c3", Type: "INT"}, {Name: "c4", Type: "INT"}, {Name: "c5", Type: "BOOLEAN"}}}
	table := Table{Name: "sample_table", Partition: []string{"c1"}, Clustering: []Order{{Name: "c4"}, {Name: "c6", Desc: true}}, Indexes: []string{"c2", "c4"},
		Columns: []Column{{Name: "c1", Type: "INT"}, {Name: "c2", Type: "TEXT"}, {Name: "c3", Type: "BLOB"}, {Name: "c4", Type: "INT"}, {Name: "c5", Type: "BOOLEAN"}, {Name: "c6", Type: "INT"}}}
	const tx = `"tx_id" TEXT,"tx_state" INT,"tx_version" INT,"tx_prepared_at" BIGINT,"tx_committed_at" BIGINT,"before_tx_id" TEXT,"before_tx_state" INT,"before_tx_version" INT,"before_tx_prepared_at" BIGINT,"before_tx_committed_at" BIGINT`
	for _, c := range []struct {
		name          string
		era           Era
		engine        Engine
		table         Table
		transactional bool
		want          []string // statements that must be among those issued
	}{
		{"3.4 postgres transactional", era("3.4"), Postgres, table1, true, []string{
			`CREATE TABLE "sample_db"."sample_table1"("c1" INT,"c4" INT,"c2" TEXT,"c3" INT,"c5" BOOLEAN,` + tx + `,"before_c2" TEXT,"before_c3" INT,"before_c5" BOOLEAN, PRIMARY KEY ("c1","c4"))`}},
		{"3.9 postgres transactional: before_ in HashSet order", era("3.9"), Postgres, table1, true, []string{
			`CREATE TABLE "sample_db"."sample_table1"("c1" INT,"c4" INT,"c2" TEXT,"c3" INT,"c5" BOOLEAN,` + tx + `,"before_c3" INT,"before_c5" BOOLEAN,"before_c2" TEXT, PRIMARY KEY ("c1","c4"))`}},
		{"3.4 postgres storage table", era("3.4"), Postgres, table, false, []string{
			`CREATE TABLE "sample_db"."sample_table"("c1" INT,"c4" INT,"c6" INT,"c2" VARCHAR(10485760),"c3" BYTEA,"c5" BOOLEAN, PRIMARY KEY ("c1","c4","c6"))`,
			`CREATE UNIQUE INDEX "sample_db.sample_table_clustering_order_idx" ON "sample_db"."sample_table" ("c1" ASC,"c4" ASC,"c6" DESC)`,
			`CREATE INDEX index_sample_db_sample_table_c2 ON "sample_db"."sample_table" ("c2")`,
			`CREATE INDEX index_sample_db_sample_table_c4 ON "sample_db"."sample_table" ("c4")`,
			`INSERT INTO "scalardb"."metadata" VALUES ('sample_db.sample_table','c6','INT','CLUSTERING','DESC',false,3)`,
			`INSERT INTO "scalardb"."metadata" VALUES ('sample_db.sample_table','c2','TEXT',NULL,NULL,true,4)`}},
		{"3.4 mariadb storage table", era("3.4"), MariaDB, table, false, []string{
			"CREATE TABLE `sample_db`.`sample_table`(`c1` INT,`c4` INT,`c6` INT,`c2` VARCHAR(64),`c3` LONGBLOB,`c5` BOOLEAN, PRIMARY KEY (`c1` ASC,`c4` ASC,`c6` DESC))"}},
		{"3.16 postgres storage table: new clustering index name", era("3.16"), Postgres, table, false, []string{
			`CREATE UNIQUE INDEX "index_clustering_order_sample_db_sample_table" ON "sample_db"."sample_table" ("c1" ASC,"c4" ASC,"c6" DESC)`,
			`CREATE INDEX "index_sample_db_sample_table_c2" ON "sample_db"."sample_table" ("c2")`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &Fixture{Era: c.era, Engine: c.engine, Names: Names{Namespace: "sample_db", Metadata: "scalardb", Coordinator: "coordinator"}}
			got := f.createTable("sample_db", c.table, c.transactional)
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("missing\n  %s\namong\n  %s", w, strings.Join(got, "\n  "))
				}
			}
		})
	}
}

func TestJavaHashSetOrder(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"c2", "c3", "c5"}, []string{"c3", "c5", "c2"}}, // §4's example
		{[]string{"a"}, []string{"a"}},
	} {
		if got := javaHashSetOrder(c.in); !slices.Equal(got, c.want) {
			t.Errorf("javaHashSetOrder(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// Every record's outcome is stated, and every era holds the states issue 10
// names.
func TestFixturesHoldEveryState(t *testing.T) {
	for _, era := range Eras {
		f := Build(era, Postgres, Names{Namespace: "ns", Metadata: "scalardb", Coordinator: "coordinator"})
		names := map[string]bool{}
		for _, r := range f.Records {
			if r.Name == "" || r.Rule == "" || r.Decision == "" {
				t.Errorf("%s: record %v has no stated outcome: %+v", era.Name, r.Key, r)
			}
			if names[r.Table+r.Name] {
				t.Errorf("%s: two records named %q", era.Name, r.Name)
			}
			names[r.Table+r.Name] = true
		}
		for _, want := range []string{"committed", "prepared update, committed at the coordinator", "prepared update, aborted at the coordinator",
			"prepared update, undecided past the lifetime", "deleted, committed at the coordinator", "deleted, aborted at the coordinator"} {
			if !names["accounts"+want] {
				t.Errorf("%s: no record %q", era.Name, want)
			}
		}
	}
}

// testdata/outcomes.md is the expected outcome of every record of every
// era, written down beside the fixtures; it must say what the fixtures
// say. STILLPOINT_UPDATE_GOLDEN=1 rewrites it.
func TestOutcomesWrittenDown(t *testing.T) {
	var b strings.Builder
	b.WriteString("# How ScalarDB settles every record of the compatibility fixtures\n\n" +
		"Generated from internal/compat (TestOutcomesWrittenDown); see docs/compat.md. \"settled\" lists the\n" +
		"checked columns once lazy recovery (or a restore) has settled the record (before_ columns as 3.4 to 3.15\n" +
		"leave them; NULL, as 3.16+ leave them, is accepted too: docs/compat.md); \"gone\" means the record is deleted.\n" +
		"Names are the PostgreSQL fixture's; MariaDB's are the same with unique schema names.\n\n")
	for _, era := range Eras {
		b.WriteString(Build(era, Postgres, Names{Namespace: "sample", Metadata: "scalardb", Coordinator: "coordinator"}).Outcomes())
		b.WriteString("\n")
	}
	path := filepath.Join("testdata", "outcomes.md")
	if os.Getenv("STILLPOINT_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (STILLPOINT_UPDATE_GOLDEN=1 writes it)", err)
	}
	if string(want) != b.String() {
		t.Errorf("%s differs from the fixtures' outcomes: run with STILLPOINT_UPDATE_GOLDEN=1 and review the diff", path)
	}
}
