package sqlstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/mysql"
	"github.com/stillpoint/stillpoint/internal/storage/postgres"
	"github.com/stillpoint/stillpoint/internal/storage/sqlite"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// textTable is a table of key k and the given value columns.
func textTable(ns string, cols ...storage.Column) *storage.TableMetadata {
	return &storage.TableMetadata{Namespace: ns, Table: "t", PartitionKey: []string{"k"},
		Columns: append([]storage.Column{{Name: "k", Type: storage.Int}}, cols...)}
}

// TestTextsFollowTheTable drops a table whose statements' texts are
// cached and re-creates it with other columns: every kind of statement
// must use the new table's columns, never the old text.
func TestTextsFollowTheTable(t *testing.T) {
	ctx := context.Background()
	for _, engine := range []struct {
		name string
		open func(t *testing.T) *sqlstore.Store
	}{
		{"sqlite", func(t *testing.T) *sqlstore.Store {
			return must(t)(sqlite.Open(ctx, "lite", filepath.Join(t.TempDir(), "db")))
		}},
		{"postgres", func(t *testing.T) *sqlstore.Store { return must(t)(postgres.Open(ctx, "pg", testenv.PostgresDSN(t))) }},
		{"mariadb, prepared", func(t *testing.T) *sqlstore.Store { return must(t)(mysql.Open(ctx, "maria", testenv.MySQLDSN(t))) }},
	} {
		t.Run(engine.name, func(t *testing.T) {
			st := engine.open(t)
			defer st.Close()
			followTheTable(t, st)
		})
	}
}

func followTheTable(t *testing.T, st *sqlstore.Store) {
	ctx := context.Background()
	ns := testenv.UniqueName("texts")
	if err := st.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	defer st.DropNamespace(ctx, ns)
	for _, tc := range []struct {
		name string
		cols []storage.Column
		rec  storage.Record
	}{
		{"first", []storage.Column{{Name: "a", Type: storage.Text}}, storage.Record{"k": int32(1), "a": "x"}},
		{"re-created, other column", []storage.Column{{Name: "b", Type: storage.BigInt}}, storage.Record{"k": int32(1), "b": int64(7)}},
		{"re-created, same name, other type", []storage.Column{{Name: "b", Type: storage.Text}}, storage.Record{"k": int32(1), "b": "y"}},
		{"re-created, two columns", []storage.Column{{Name: "b", Type: storage.Text}, {Name: "a", Type: storage.Text}}, storage.Record{"k": int32(1), "a": "p", "b": "q"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := textTable(ns, tc.cols...)
			if err := st.CreateTable(ctx, m); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := st.DropTable(ctx, ns, m.Table); err != nil {
					t.Fatal(err)
				}
			}()
			key := storage.Key{"k": int32(1)}
			onlyKey := storage.Record{"k": int32(1)}
			steps := []struct {
				name string
				run  func() error
				want storage.Record // after the step; nil: no record
			}{
				{"insert", func() error {
					return st.Put(ctx, storage.Put{Namespace: ns, Table: m.Table, Values: tc.rec, Condition: storage.Condition{Kind: storage.PutIfNotExists}})
				}, tc.rec},
				{"update if exists", func() error {
					return st.Put(ctx, storage.Put{Namespace: ns, Table: m.Table, Values: tc.rec, Condition: storage.Condition{Kind: storage.PutIfExists}})
				}, tc.rec},
				{"upsert", func() error {
					return st.Put(ctx, storage.Put{Namespace: ns, Table: m.Table, Values: tc.rec})
				}, tc.rec},
				{"conditional delete", func() error {
					return st.Delete(ctx, storage.Delete{Namespace: ns, Table: m.Table, Key: key, Condition: storage.Condition{Kind: storage.DeleteIfExists}})
				}, nil},
				{"key only", func() error {
					return st.Put(ctx, storage.Put{Namespace: ns, Table: m.Table, Values: onlyKey})
				}, onlyKey},
			}
			for _, step := range steps {
				if err := step.run(); err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				got, err := st.Get(ctx, storage.Get{Namespace: ns, Table: m.Table, Key: key})
				if err != nil {
					t.Fatalf("%s: get: %v", step.name, err)
				}
				want := step.want
				if want != nil {
					want = withNulls(m, want)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: got %v, want %v", step.name, got, want)
				}
				all, err := st.Scan(ctx, storage.Scan{Namespace: ns, Table: m.Table, Partition: key})
				if err != nil || want == nil && len(all) != 0 || want != nil && (len(all) != 1 || !reflect.DeepEqual(all[0], want)) {
					t.Fatalf("%s: scan: got %v %v, want %v", step.name, all, err, want)
				}
			}
		})
	}
}

// withNulls is rec with the table's other columns NULL, as a Get reads it.
func withNulls(m *storage.TableMetadata, rec storage.Record) storage.Record {
	out := storage.Record{}
	for _, c := range m.Columns {
		out[c.Name] = rec[c.Name]
	}
	return out
}

// TestTextsBounded reads through more projections than the store keeps
// texts for, from several goroutines (run with -race): every read gets
// its own columns, and the store keeps at most its bound.
func TestTextsBounded(t *testing.T) {
	ctx := context.Background()
	st := must(t)(sqlite.Open(ctx, "lite", filepath.Join(t.TempDir(), "db")))
	defer st.Close()
	ns := testenv.UniqueName("texts")
	var cols []storage.Column
	rec := storage.Record{"k": int32(1)}
	for i := range 40 {
		name := fmt.Sprintf("c%d", i)
		cols = append(cols, storage.Column{Name: name, Type: storage.Int})
		rec[name] = int32(i)
	}
	m := textTable(ns, cols...)
	if err := st.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTable(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, storage.Put{Namespace: ns, Table: m.Table, Values: rec}); err != nil {
		t.Fatal(err)
	}
	// Pairs of columns: 40 × 39 projections, more than the bound.
	shapes := len(cols) * (len(cols) - 1)
	if shapes <= sqlstore.MaxTexts {
		t.Fatalf("%d projections do not exceed the bound of %d texts", shapes, sqlstore.MaxTexts)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(cols))
	for i := range cols {
		wg.Go(func() {
			for j := range cols {
				if i == j {
					continue
				}
				a, b := cols[i].Name, cols[j].Name
				got, err := st.Get(ctx, storage.Get{Namespace: ns, Table: m.Table, Key: storage.Key{"k": int32(1)}, Projection: []string{a, b}})
				if err != nil {
					errs <- err
					return
				}
				if want := (storage.Record{a: rec[a], b: rec[b]}); !reflect.DeepEqual(got, want) {
					errs <- fmt.Errorf("projection %s, %s: got %v, want %v", a, b, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := sqlstore.Texts(st); n > sqlstore.MaxTexts {
		t.Errorf("the store keeps %d texts, more than its bound of %d", n, sqlstore.MaxTexts)
	}
}
