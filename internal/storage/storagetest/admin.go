package storagetest

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
)

func testAdmin(t *testing.T, h Harness) {
	t.Run("Info", func(t *testing.T) {
		f := newFixture(t, h)
		info, err := f.s.Info(f.ctx)
		if err != nil {
			t.Fatalf("Info: %v", err)
		}
		if info.Engine != h.Engine {
			t.Errorf("Info().Engine = %q, want %q", info.Engine, h.Engine)
		}
		if info.Version == "" {
			t.Error("Info().Version is empty")
		}
	})

	t.Run("MetadataRoundTrip", func(t *testing.T) {
		f := newFixture(t, h)
		ns := f.namespace("meta")
		// Keys first, in key order: the layout ScalarDB's metadata keeps.
		m := &storage.TableMetadata{
			Namespace: ns, Table: "everything",
			Columns: []storage.Column{
				col("p_text", storage.Text), col("p_int", storage.Int),
				col("c_text", storage.Text), col("c_bigint", storage.BigInt), col("c_date", storage.Date),
				col("v_bool", storage.Boolean), col("v_int", storage.Int), col("v_bigint", storage.BigInt),
				col("v_float", storage.Float), col("v_double", storage.Double), col("v_text", storage.Text),
				col("v_blob", storage.Blob), col("v_date", storage.Date), col("v_time", storage.Time),
				col("v_ts", storage.Timestamp), col("v_tstz", storage.TimestampTZ),
			},
			PartitionKey:  []string{"p_text", "p_int"},
			ClusteringKey: []storage.ClusteringKey{asc("c_text"), desc("c_bigint"), asc("c_date")},
			Indexes:       []string{"v_int", "v_text", "v_tstz"},
		}
		want := cloneMeta(m)
		f.createTable(m)
		if !reflect.DeepEqual(m, want) {
			t.Errorf("CreateTable modified its argument:\n got %+v\nwant %+v", m, want)
		}
		got, err := f.s.TableMetadata(f.ctx, ns, "everything")
		if err != nil {
			t.Fatalf("TableMetadata: %v", err)
		}
		checkMeta(t, "same store", got, want)

		// A second store reads the metadata from the database.
		s2 := f.open()
		got2, err := s2.TableMetadata(f.ctx, ns, "everything")
		if err != nil {
			t.Fatalf("TableMetadata on a new store: %v", err)
		}
		checkMeta(t, "new store", got2, want)
	})

	t.Run("KeyOrderDiffersFromColumnOrder", func(t *testing.T) {
		// The partition and clustering keys are lists: their order is not
		// the column order, and must survive a reload.
		f := newFixture(t, h)
		ns := f.namespace("keyorder")
		m := &storage.TableMetadata{
			Namespace: ns, Table: "t",
			Columns: []storage.Column{
				col("v", storage.Text), col("c2", storage.Int), col("p2", storage.Int),
				col("c1", storage.Int), col("p1", storage.Text),
			},
			PartitionKey:  []string{"p1", "p2"},
			ClusteringKey: []storage.ClusteringKey{desc("c1"), asc("c2")},
			Indexes:       []string{"v"},
		}
		want := cloneMeta(m)
		keysFirst := []storage.Column{col("p1", storage.Text), col("p2", storage.Int), col("c1", storage.Int), col("c2", storage.Int), col("v", storage.Text)}
		f.createTable(m)
		if !reflect.DeepEqual(m, want) {
			t.Errorf("CreateTable modified its argument:\n got %+v\nwant %+v", m, want)
		}
		same, err := f.s.TableMetadata(f.ctx, ns, "t")
		if err != nil {
			t.Fatalf("TableMetadata: %v", err)
		}
		s2 := f.open()
		reloaded, err := s2.TableMetadata(f.ctx, ns, "t")
		if err != nil {
			t.Fatalf("TableMetadata on a new store: %v", err)
		}
		for _, c := range []struct {
			what string
			m    *storage.TableMetadata
		}{{"same store", same}, {"new store", reloaded}} {
			if c.m == nil {
				t.Fatalf("%s: TableMetadata is nil", c.what)
			}
			if !slices.Equal(c.m.PartitionKey, want.PartitionKey) {
				t.Errorf("%s: partition key %v, want %v", c.what, c.m.PartitionKey, want.PartitionKey)
			}
			if !slices.Equal(c.m.ClusteringKey, want.ClusteringKey) {
				t.Errorf("%s: clustering key %v, want %v", c.what, c.m.ClusteringKey, want.ClusteringKey)
			}
			if !slices.Equal(c.m.Indexes, want.Indexes) {
				t.Errorf("%s: indexes %v, want %v", c.what, c.m.Indexes, want.Indexes)
			}
			// As in ScalarDB, the keys come first in the metadata's
			// ordinal order, which is what records the key order.
			if !slices.Equal(c.m.Columns, keysFirst) {
				t.Errorf("%s: columns %v, want %v", c.what, c.m.Columns, keysFirst)
			}
		}
		if !reflect.DeepEqual(same, reloaded) {
			t.Errorf("the creating store and a new store disagree:\n%+v\n%+v", same, reloaded)
		}
		// The reloaded key order is the one scans use.
		mustPut(t, f.ctx, f.s, want, storage.Record{"p1": "a", "p2": 1, "c1": 1, "c2": 2, "v": "x"})
		mustPut(t, f.ctx, f.s, want, storage.Record{"p1": "a", "p2": 1, "c1": 2, "c2": 1, "v": "y"})
		recs := mustScan(t, f.ctx, s2, storage.Scan{
			Namespace: ns, Table: "t", Partition: storage.Key{"p1": "a", "p2": 1},
			Start: &storage.Bound{Key: storage.Key{"c1": 1}, Inclusive: true},
		})
		if len(recs) != 2 || recs[0]["v"] != "y" || recs[1]["v"] != "x" {
			t.Errorf("scan on a new store in clustering order (c1 DESC, c2 ASC): got %v, want v=y then v=x", recs)
		}
	})

	t.Run("TablesAndNamespaces", func(t *testing.T) {
		f := newFixture(t, h)
		ns1, ns2 := f.namespace("tables_a"), f.namespace("tables_b")
		if err := f.s.CreateNamespace(f.ctx, ns1); err != nil {
			t.Fatalf("CreateNamespace(%s): %v", ns1, err)
		}
		nss, err := f.s.Namespaces(f.ctx)
		if err != nil {
			t.Fatalf("Namespaces: %v", err)
		}
		// As ScalarDB 3.x's JDBC admin lists namespaces, from the tables in
		// the metadata: an empty namespace is not listed (docs/layout.md).
		if slices.Contains(nss, ns1) || slices.Contains(nss, ns2) {
			t.Errorf("Namespaces() = %v, want neither the empty %s nor the absent %s", nss, ns1, ns2)
		}
		if slices.Contains(nss, "scalardb") {
			t.Errorf("Namespaces() = %v lists the metadata namespace scalardb", nss)
		}
		tables, err := f.s.Tables(f.ctx, ns1)
		if err != nil || len(tables) != 0 {
			t.Errorf("Tables(%s) of a new namespace = %v, %v; want none", ns1, tables, err)
		}
		simple := func(ns, table string) *storage.TableMetadata {
			return &storage.TableMetadata{Namespace: ns, Table: table,
				Columns: []storage.Column{col("id", storage.Int), col("v", storage.Text)}, PartitionKey: []string{"id"}}
		}
		f.createTable(simple(ns1, "t_b"))
		f.createTable(simple(ns1, "t_a"))
		f.createTable(simple(ns2, "t_c")) // creates its namespace too
		checkTables(t, f, ns1, "t_a", "t_b")
		checkTables(t, f, ns2, "t_c")
		checkTables(t, f, f.h.Namespace("absent"))
		nss, err = f.s.Namespaces(f.ctx)
		if err != nil {
			t.Fatalf("Namespaces: %v", err)
		}
		if !slices.Contains(nss, ns1) || !slices.Contains(nss, ns2) {
			t.Errorf("Namespaces() = %v, want it to hold %s and %s", nss, ns1, ns2)
		}

		// A namespace with tables cannot be dropped.
		if err := f.s.DropNamespace(f.ctx, ns1); err == nil {
			t.Fatalf("DropNamespace(%s) with tables succeeded", ns1)
		}
		checkTables(t, f, ns1, "t_a", "t_b")
		mustPut(t, f.ctx, f.s, simple(ns1, "t_a"), storage.Record{"id": 1, "v": "still here"})
		checkGet(t, f.ctx, f.s, simple(ns1, "t_a"), storage.Key{"id": 1}, storage.Record{"id": int32(1), "v": "still here"})

		// Drop the tables, then the namespace.
		for _, tbl := range []string{"t_a", "t_b"} {
			if err := f.s.DropTable(f.ctx, ns1, tbl); err != nil {
				t.Fatalf("DropTable(%s.%s): %v", ns1, tbl, err)
			}
		}
		checkTables(t, f, ns1)
		checkTables(t, f, ns2, "t_c")
		if err := f.s.DropNamespace(f.ctx, ns1); err != nil {
			t.Fatalf("DropNamespace(%s) after dropping its tables: %v", ns1, err)
		}
		nss, err = f.s.Namespaces(f.ctx)
		if err != nil {
			t.Fatalf("Namespaces: %v", err)
		}
		if slices.Contains(nss, ns1) || !slices.Contains(nss, ns2) {
			t.Errorf("Namespaces() after dropping %s = %v", ns1, nss)
		}
		// The namespace can be created again, empty.
		f.createTable(simple(ns1, "t_a"))
		checkGet(t, f.ctx, f.s, simple(ns1, "t_a"), storage.Key{"id": 1}, nil)
	})

	t.Run("CreateExistingTable", func(t *testing.T) {
		f := newFixture(t, h)
		m := f.createTable(&storage.TableMetadata{Table: "t",
			Columns: []storage.Column{col("id", storage.Int), col("v", storage.Text)}, PartitionKey: []string{"id"}})
		mustPut(t, f.ctx, f.s, m, storage.Record{"id": 1, "v": "kept"})
		other := &storage.TableMetadata{Namespace: m.Namespace, Table: "t",
			Columns: []storage.Column{col("k", storage.Text)}, PartitionKey: []string{"k"}}
		if err := f.s.CreateTable(f.ctx, other); err == nil {
			t.Fatal("creating an existing table succeeded")
		}
		// Also through a store that has not seen the table yet.
		if err := f.open().CreateTable(f.ctx, cloneMeta(m)); err == nil {
			t.Fatal("creating an existing table from a new store succeeded")
		}
		got, err := f.open().TableMetadata(f.ctx, m.Namespace, "t")
		if err != nil {
			t.Fatal(err)
		}
		checkMeta(t, "after the failed create", got, m)
		checkGet(t, f.ctx, f.s, m, storage.Key{"id": 1}, storage.Record{"id": int32(1), "v": "kept"})
	})

	t.Run("DropTable", func(t *testing.T) {
		f := newFixture(t, h)
		m := f.createTable(&storage.TableMetadata{Table: "t",
			Columns: []storage.Column{col("id", storage.Int), col("v", storage.Text)}, PartitionKey: []string{"id"}})
		mustPut(t, f.ctx, f.s, m, storage.Record{"id": 1, "v": "gone"})
		if err := f.s.DropTable(f.ctx, m.Namespace, m.Table); err != nil {
			t.Fatalf("DropTable: %v", err)
		}
		if got, err := f.s.TableMetadata(f.ctx, m.Namespace, m.Table); got != nil || err != nil {
			t.Errorf("TableMetadata after DropTable = %+v, %v; want nil, nil", got, err)
		}
		if got, err := f.open().TableMetadata(f.ctx, m.Namespace, m.Table); got != nil || err != nil {
			t.Errorf("TableMetadata after DropTable on a new store = %+v, %v; want nil, nil", got, err)
		}
		_, err := f.s.Get(f.ctx, storage.Get{Namespace: m.Namespace, Table: m.Table, Key: storage.Key{"id": 1}})
		if !errors.Is(err, storage.ErrTableNotFound) {
			t.Errorf("Get after DropTable: %v, want ErrTableNotFound", err)
		}
		if err := f.s.DropTable(f.ctx, m.Namespace, m.Table); !errors.Is(err, storage.ErrTableNotFound) {
			t.Errorf("dropping a dropped table: %v, want ErrTableNotFound", err)
		}
		// The same name again, with another shape, starts empty.
		m2 := f.createTable(&storage.TableMetadata{Namespace: m.Namespace, Table: "t",
			Columns: []storage.Column{col("id", storage.Int), col("w", storage.BigInt)}, PartitionKey: []string{"id"}})
		checkGet(t, f.ctx, f.s, m2, storage.Key{"id": 1}, nil)
		mustPut(t, f.ctx, f.s, m2, storage.Record{"id": 1, "w": 5})
		checkGet(t, f.ctx, f.s, m2, storage.Key{"id": 1}, storage.Record{"id": int32(1), "w": int64(5)})
	})

	t.Run("InvalidMetadata", func(t *testing.T) {
		f := newFixture(t, h)
		ns := f.namespace("invalid")
		for _, m := range []*storage.TableMetadata{
			{Namespace: ns, Table: "nokey", Columns: []storage.Column{col("id", storage.Int)}},
			{Namespace: ns, Table: "badkey", Columns: []storage.Column{col("id", storage.Int)}, PartitionKey: []string{"nope"}},
			{Namespace: ns, Table: "bad.name", Columns: []storage.Column{col("id", storage.Int)}, PartitionKey: []string{"id"}},
			{Namespace: ns, Table: "badtype", Columns: []storage.Column{col("id", storage.Int), col("x", storage.DataType(99))}, PartitionKey: []string{"id"}},
		} {
			if err := f.s.CreateTable(f.ctx, m); err == nil {
				t.Errorf("CreateTable(%+v) succeeded, want an error", m)
			}
			if got, err := f.s.TableMetadata(f.ctx, m.Namespace, m.Table); got != nil || err != nil {
				t.Errorf("TableMetadata(%s) after a refused create = %+v, %v", m.FullName(), got, err)
			}
		}
	})

	t.Run("MissingTable", func(t *testing.T) {
		f := newFixture(t, h)
		existing := f.createTable(&storage.TableMetadata{Table: "t",
			Columns: []storage.Column{col("id", storage.Int), col("v", storage.Text)}, PartitionKey: []string{"id"}})
		for _, target := range []struct{ what, ns, table string }{
			{"missing table", existing.Namespace, "missing"},
			{"missing namespace", f.h.Namespace("missing"), "t"},
		} {
			ns, tbl := target.ns, target.table
			if m, err := f.s.TableMetadata(f.ctx, ns, tbl); m != nil || err != nil {
				t.Errorf("%s: TableMetadata = %+v, %v; want nil, nil", target.what, m, err)
			}
			key := storage.Key{"id": 1}
			ops := map[string]func() error{
				"Get": func() error {
					_, err := f.s.Get(f.ctx, storage.Get{Namespace: ns, Table: tbl, Key: key})
					return err
				},
				"Scan": func() error {
					_, err := f.s.Scan(f.ctx, storage.Scan{Namespace: ns, Table: tbl, Partition: key})
					return err
				},
				"ScanAll": func() error {
					_, err := f.s.ScanAll(f.ctx, storage.ScanAll{Namespace: ns, Table: tbl})
					return err
				},
				"Put": func() error {
					return f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: tbl, Values: storage.Record{"id": 1}})
				},
				"Delete": func() error {
					return f.s.Delete(f.ctx, storage.Delete{Namespace: ns, Table: tbl, Key: key})
				},
				"Mutate": func() error {
					return f.s.Mutate(f.ctx, []storage.Mutation{
						storage.Put{Namespace: existing.Namespace, Table: existing.Table, Values: storage.Record{"id": 9}},
						storage.Put{Namespace: ns, Table: tbl, Values: storage.Record{"id": 1}},
					})
				},
				"DropTable": func() error { return f.s.DropTable(f.ctx, ns, tbl) },
			}
			for name, op := range ops {
				if err := op(); !errors.Is(err, storage.ErrTableNotFound) {
					t.Errorf("%s: %s returned %v, want an error matching storage.ErrTableNotFound", target.what, name, err)
				}
			}
		}
		// The failed Mutate wrote nothing to the existing table.
		checkGet(t, f.ctx, f.s, existing, storage.Key{"id": 9}, nil)
	})
}

func checkTables(t *testing.T, f *fixture, ns string, want ...string) {
	t.Helper()
	got, err := f.s.Tables(f.ctx, ns)
	if err != nil {
		t.Fatalf("Tables(%s): %v", ns, err)
	}
	got = slices.Clone(got)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Tables(%s) = %v, want %v", ns, got, want)
	}
}

func checkMeta(t *testing.T, what string, got, want *storage.TableMetadata) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: TableMetadata(%s) is nil", what, want.FullName())
	}
	if got.Namespace != want.Namespace || got.Table != want.Table {
		t.Errorf("%s: metadata names %s, want %s", what, got.FullName(), want.FullName())
	}
	if !slices.Equal(got.Columns, want.Columns) {
		t.Errorf("%s: columns\n got %v\nwant %v", what, got.Columns, want.Columns)
	}
	if !slices.Equal(got.PartitionKey, want.PartitionKey) {
		t.Errorf("%s: partition key %v, want %v", what, got.PartitionKey, want.PartitionKey)
	}
	if !slices.Equal(got.ClusteringKey, want.ClusteringKey) {
		t.Errorf("%s: clustering key %v, want %v", what, got.ClusteringKey, want.ClusteringKey)
	}
	if !slices.Equal(got.Indexes, want.Indexes) {
		t.Errorf("%s: indexes %v, want %v", what, got.Indexes, want.Indexes)
	}
}

func cloneMeta(m *storage.TableMetadata) *storage.TableMetadata {
	c := *m
	c.Columns = slices.Clone(m.Columns)
	c.PartitionKey = slices.Clone(m.PartitionKey)
	c.ClusteringKey = slices.Clone(m.ClusteringKey)
	c.Indexes = slices.Clone(m.Indexes)
	return &c
}
