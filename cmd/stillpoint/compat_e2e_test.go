package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stillpoint/stillpoint/internal/compat"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/verify"
)

// compatSite is where a fixture lives and where its backup is restored.
type compatSite struct {
	names compat.Names
	dsn   string
	// watch lists the schemas a read-only command must leave as they
	// were, and must not add to: every schema of a PostgreSQL database;
	// on the shared MariaDB, the fixture's and the journal's.
	watch func(ctx context.Context, db *sql.DB) ([]string, error)
	// target returns the DSN of an empty database to restore into; it
	// may drop the source (on the shared MariaDB the names are the
	// source's, so the source must go first).
	target func(t *testing.T, db *sql.DB) string
}

func compatSites(t *testing.T, engine compat.Engine) compatSite {
	if engine == compat.Postgres {
		// A fresh database each, with ScalarDB's default names.
		n := compat.Names{Namespace: "sample", Metadata: "scalardb", Coordinator: "coordinator"}
		all := func(ctx context.Context, db *sql.DB) ([]string, error) {
			rows, err := db.QueryContext(ctx, `SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT LIKE 'pg\_%' AND schema_name <> 'information_schema'`)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					return nil, err
				}
				out = append(out, s)
			}
			return out, rows.Err()
		}
		return compatSite{names: n, dsn: testenv.PostgresDSN(t), watch: all,
			target: func(t *testing.T, _ *sql.DB) string { return testenv.PostgresDSN(t) }}
	}
	// The shared server: names of their own, set as ScalarDB's settings
	// would set them.
	n := compat.Names{Namespace: testenv.UniqueName("sample"), Metadata: testenv.UniqueName("meta"), Coordinator: testenv.UniqueName("coord")}
	dsn := testenv.MySQLDSN(t)
	drop := func(t *testing.T, db *sql.DB) {
		for _, s := range []string{n.Namespace, n.Metadata, n.Coordinator} {
			if _, err := db.Exec("DROP DATABASE IF EXISTS " + engine.Q(s)); err != nil {
				t.Errorf("drop %s: %v", s, err)
			}
		}
	}
	listed := func(context.Context, *sql.DB) ([]string, error) {
		return []string{n.Namespace, n.Metadata, n.Coordinator, "stillpoint"}, nil
	}
	return compatSite{names: n, dsn: dsn, watch: listed,
		target: func(t *testing.T, db *sql.DB) string {
			drop(t, db)
			t.Cleanup(func() { drop(t, db) })
			return dsn
		}}
}

// compatCLI is the CLI configured for one database holding the fixture,
// with the ScalarDB version and names its deployment uses.
func compatCLI(t *testing.T, f *compat.Fixture, dsn string) cli {
	path := filepath.Join(t.TempDir(), "stillpoint.yaml")
	n := f.Names
	yaml := fmt.Sprintf("stores:\n  db: {engine: %s, dsn: %q}\nnamespaces:\n  %s: db\ncoordinator: db\nmetadata_schema: %s\ncoordinator_namespace: %s\nscalardb_version: %s\n",
		f.Engine.Name, dsn, n.Namespace, n.Metadata, n.Coordinator, f.Era.Version)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cli{t: t, bin: build(t), args: []string{"--config", path}}
}

// TestScalarDBCompat runs every ScalarDB era's fixture on every engine
// through schema show, a read-only verify, backup create and a schema load
// of the same schema (each leaving the database byte for byte as it was),
// lazy recovery on the source, restore into an empty database and a DDL
// comparison, and checks that every record settles as ScalarDB settles it
// (internal/compat, docs/compat.md). It replaces the hand-built 3.4 test
// of issue 10's first round (TestScalarDBDatabaseReadOnly), whose
// assertions it keeps for every era.
func TestScalarDBCompat(t *testing.T) {
	for _, era := range compat.Eras {
		for _, engine := range compat.Engines {
			t.Run(era.Name+"/"+engine.Name, func(t *testing.T) { runCompat(t, era, engine) })
		}
	}
}

func runCompat(t *testing.T, era compat.Era, engine compat.Engine) {
	ctx := context.Background()
	site := compatSites(t, engine)
	f := compat.Build(era, engine, site.names)
	src, err := sql.Open(engine.Driver, site.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() }) // after the cleanups below, which use it
	if engine == compat.MariaDB {
		t.Cleanup(func() {
			for _, s := range f.Schemas() {
				src.Exec("DROP DATABASE IF EXISTS " + engine.Q(s))
			}
		})
	}
	if err := f.Apply(ctx, src); err != nil {
		t.Fatal(err)
	}
	c := compatCLI(t, f, site.dsn)
	state := func(db *sql.DB) map[string]string {
		t.Helper()
		schemas, err := site.watch(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		s, err := compat.State(ctx, db, engine, schemas)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := state(src)
	ddl, err := compat.Catalog(ctx, src, engine, f.Schemas())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("show", func(t *testing.T) {
		out, code := c.run("--json", "schema", "show")
		var views []tableView
		if code != 0 || json.Unmarshal([]byte(out), &views) != nil {
			t.Fatalf("schema show: exit %d: %s", code, out)
		}
		var shown []string
		for _, v := range views {
			shown = append(shown, v.Table)
		}
		for _, want := range f.TableNames() {
			if !slices.Contains(shown, want) {
				t.Errorf("schema show lists %v, want %s among them", shown, want)
			}
		}
		assertUnchanged(t, "schema show", before, state(src))
	})

	t.Run("read-only verify", func(t *testing.T) {
		out, code := c.run("--json", "verify")
		var rep verify.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("verify: exit %d: %s", code, out)
		}
		for _, v := range rep.Violations {
			t.Errorf("violation where ScalarDB sees none: %+v", v)
		}
		var want, got []string
		for _, r := range f.Records {
			if r.Pending {
				want = append(want, r.TxID)
			}
		}
		for _, p := range rep.Pending {
			got = append(got, p.TxID)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("verify lists unsettled transactions\n  %v\nwant (every PREPARED or DELETED record)\n  %v", got, want)
		}
		if wantCode := exitViolation; code != wantCode {
			t.Errorf("verify: exit %d, want %d (records to settle)", code, wantCode)
		}
		assertUnchanged(t, "a read-only verify", before, state(src))
	})

	repo := t.TempDir()
	var id string
	if !t.Run("backup", func(t *testing.T) {
		out, code := c.run("--json", "backup", "create", "--init", "--repo", repo)
		var m struct{ ID string }
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m.ID == "" {
			t.Fatalf("backup create: exit %d: %s", code, out)
		}
		id = m.ID
		assertUnchanged(t, "backup create", before, state(src))
	}) {
		return
	}

	// Loading the schema file ScalarDB loaded adds nothing: no namespaces
	// table, no second metadata table, no other DDL.
	t.Run("schema load of the same schema", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "schema.json")
		if err := os.WriteFile(file, f.SchemaFile(), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, code := c.run("schema", "load", file); code != 0 {
			t.Errorf("schema load: exit %d: %s", code, out)
		}
		assertUnchanged(t, "schema load of the same schema", before, state(src))
	})

	var settledData map[string]string
	t.Run("lazy recovery on the source", func(t *testing.T) {
		if out, code := c.run("--json", "verify", "--repair"); code != 0 {
			t.Errorf("verify --repair: exit %d: %s", code, out)
		}
		checkSettled(t, f, src)
		if settledData, err = f.Data(ctx, src); err != nil {
			t.Fatal(err)
		}
		// Settled, it is consistent, and a read-only verify still
		// writes nothing.
		settled := state(src)
		if out, code := c.run("verify"); code != 0 {
			t.Errorf("read-only verify after lazy recovery: exit %d: %s", code, out)
		}
		assertUnchanged(t, "a read-only verify of the settled database", settled, state(src))
	})

	target := site.target(t, src)
	dst, err := sql.Open(engine.Driver, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	tc := compatCLI(t, f, target)
	if !t.Run("restore", func(t *testing.T) {
		if out, code := tc.run("restore", id, "--repo", repo); code != 0 {
			t.Fatalf("restore into an empty database: exit %d: %s", code, out)
		}
	}) {
		return
	}
	t.Run("restored DDL", func(t *testing.T) {
		got, err := compat.Catalog(ctx, dst, engine, f.Schemas())
		if err != nil {
			t.Fatal(err)
		}
		assertUnchanged(t, "restore (the source's DDL)", ddl, got)
		meta := "rows " + site.names.Metadata + ".metadata"
		if before[meta] == "" {
			t.Fatalf("no %q among the source's checksums", meta)
		}
		if now := state(dst)[meta]; now != before[meta] {
			t.Errorf("restored metadata rows %s, the source's %s", now, before[meta])
		}
	})
	t.Run("restored records settled", func(t *testing.T) {
		checkSettled(t, f, dst)
		// Restore settles the cut as lazy recovery settled the source:
		// the same rows, every column but the settling clock's.
		got, err := f.Data(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		if settledData != nil {
			assertUnchanged(t, "restore (the source settled by lazy recovery)", settledData, got)
		}
		if out, code := tc.run("verify"); code != 0 {
			t.Errorf("read-only verify of the restored database: exit %d: %s", code, out)
		}
	})
}

// checkSettled compares every record and its coordinator decision with
// how ScalarDB settles it.
func checkSettled(t *testing.T, f *compat.Fixture, db *sql.DB) {
	t.Helper()
	ctx := context.Background()
	for _, r := range f.Records {
		if err := f.Check(ctx, db, r); err != nil {
			t.Error(err)
		}
		if r.TxID == "" {
			continue
		}
		got, err := f.Decision(ctx, db, r.TxID)
		if err != nil {
			t.Fatal(err)
		}
		if got != r.Decision {
			t.Errorf("%s %v (%s): the coordinator says %s for %s, want %s", r.Table, r.Key, r.Name, got, r.TxID, r.Decision)
		}
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
