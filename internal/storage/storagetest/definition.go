package storagetest

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// describer is a store that reads its catalog outside any snapshot.
type describer interface {
	storage.Store
	storage.DefinitionAdmin
	Describe() storage.Catalog
	PurgeTable(ctx context.Context, namespace, table string) error
}

// testDefinitions: a table's definition, read from the catalog, recreates
// the table exactly, in another namespace too (the definition read back is
// the same, and the table works); a definition of another engine is
// refused.
func testDefinitions(t *testing.T, h Harness) {
	f := newFixture(t, h)
	s, ok := f.s.(describer)
	if !ok {
		t.Fatalf("store %T cannot describe its catalog or replay definitions", f.s)
	}
	cat := s.Describe()
	m := f.createTable(&storage.TableMetadata{
		Table: "described",
		Columns: []storage.Column{col("p", storage.Text), col("c1", storage.Int), col("c2", storage.Text),
			col("v", storage.Blob), col("w", storage.Float), col("x", storage.Text)},
		PartitionKey:  []string{"p"},
		ClusteringKey: []storage.ClusteringKey{asc("c1"), desc("c2")},
		Indexes:       []string{"w", "x"},
	})
	for _, tc := range []struct{ namespace, table string }{{m.Namespace, "absent"}, {f.h.Namespace("absent"), "absent"}} {
		if def, err := cat.DescribeTable(f.ctx, tc.namespace, tc.table); err != nil || def != nil {
			t.Errorf("DescribeTable(%s.%s) = %+v, %v; want nil, nil for a table that does not exist", tc.namespace, tc.table, def, err)
		}
	}
	def, err := cat.DescribeTable(f.ctx, m.Namespace, m.Table)
	if err != nil || def == nil {
		t.Fatalf("DescribeTable: %+v, %v", def, err)
	}
	if def.Engine != h.Engine || def.Body == "" {
		t.Errorf("definition %+v: want engine %s and a body", def, h.Engine)
	}
	var names []string
	for _, c := range def.Columns {
		names = append(names, c.Name)
		if c.Type == "" {
			t.Errorf("column %s has no catalog type", c.Name)
		}
	}
	if got := strings.Join(names, ","); got != "p,c1,c2,v,w,x" {
		t.Errorf("definition columns %s, want p,c1,c2,v,w,x", got)
	}
	nsDef, err := cat.DescribeNamespace(f.ctx, m.Namespace)
	if err != nil || nsDef == nil || nsDef.Engine != h.Engine {
		t.Fatalf("DescribeNamespace: %+v, %v", nsDef, err)
	}
	if meta, _, err := cat.DescribeMetadata(f.ctx); err != nil || meta == nil || meta.Engine != h.Engine {
		t.Fatalf("DescribeMetadata: %+v, %v", meta, err)
	}

	// Index names are global on SQLite: the original goes first.
	if err := s.PurgeTable(f.ctx, m.Namespace, m.Table); err != nil {
		t.Fatal(err)
	}
	m.Namespace = f.namespace("copy")
	other := *def
	other.Engine = "another"
	if err := s.CreateTableFrom(f.ctx, m, &other); err == nil || !strings.Contains(err.Error(), "another") {
		t.Errorf("CreateTableFrom with a definition captured on another engine: %v, want a refusal naming it", err)
	}
	if got, err := cat.DescribeTable(f.ctx, m.Namespace, m.Table); err != nil || got != nil {
		t.Fatalf("a refused CreateTableFrom left a table: %+v, %v", got, err)
	}
	if err := s.CreateNamespaceFrom(f.ctx, m.Namespace, nsDef); err != nil {
		t.Fatalf("CreateNamespaceFrom: %v", err)
	}
	if got, err := cat.DescribeNamespace(f.ctx, m.Namespace); err != nil || !reflect.DeepEqual(got, nsDef) {
		t.Errorf("namespace created from its definition reads back as %+v (%v), want %+v", got, err, nsDef)
	}
	if err := s.CreateTableFrom(f.ctx, m, def); err != nil {
		t.Fatalf("CreateTableFrom: %v", err)
	}
	again, err := cat.DescribeTable(f.ctx, m.Namespace, m.Table)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, def) {
		t.Errorf("the table recreated from its definition in another namespace reads back otherwise:\n got %+v\nwant %+v", again, def)
	}
	got, err := s.TableMetadata(f.ctx, m.Namespace, m.Table)
	if err != nil {
		t.Fatal(err)
	}
	checkMeta(t, "recreated from its definition", got, m)
	rec := storage.Record{"p": "a", "c1": int32(1), "c2": "z", "v": []byte{0, 1}, "w": float32(1.5), "x": "x"}
	mustPut(t, f.ctx, s, m, rec)
	checkGet(t, f.ctx, s, m, storage.Key{"p": "a", "c1": int32(1), "c2": "z"}, rec)
}
