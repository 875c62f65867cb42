// Package storagetest is the conformance suite of the storage contract:
// every engine runs it from its own tests,
//
//	func TestConformance(t *testing.T) { storagetest.Run(t, harness) }
//
// and must pass all of it. The suite only uses the storage.Store interface;
// what an engine needs to provide is described by Harness.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Harness is what the suite needs from an engine.
type Harness struct {
	// Engine is the name Info must report: sqlite, postgres or mysql.
	Engine string
	// Database returns where a store for the test t lives, for Open: a
	// SQLite file under t.TempDir(), a DSN of a fresh PostgreSQL database,
	// or the DSN of a shared MariaDB server. Anything it creates must be
	// removed through t.Cleanup.
	Database func(t *testing.T) string
	// Open opens a new store (its own connections) over a database that
	// Database returned. Opening it twice gives two stores over the same
	// data. The suite closes what it opens.
	Open func(ctx context.Context, database string) (storage.Store, error)
	// Namespace returns a new namespace name starting with prefix, unique on
	// the database server (MariaDB's server is shared by concurrent tests).
	// When nil, the suite numbers names itself, which suits engines whose
	// databases are private to a test.
	Namespace func(prefix string) string
	// Refuses says which values of the suite's columns the engine cannot
	// hold (DynamoDB: a DOUBLE beyond its number range, an empty BLOB as
	// the whole partition key). Writing one must fail with an error that
	// names the column, and the suite checks that instead of the round
	// trip. nil: the engine holds every value.
	Refuses func(column string, v any) bool
}

// refuses reports whether the engine refuses v in column.
func (h Harness) refuses(column string, v any) bool {
	return h.Refuses != nil && h.Refuses(column, v)
}

// Opener adapts an engine's Open(ctx, name, database) to Harness.Open.
func Opener[S storage.Store](open func(ctx context.Context, name, database string) (S, error)) func(context.Context, string) (storage.Store, error) {
	return func(ctx context.Context, database string) (storage.Store, error) {
		s, err := open(ctx, "conformance", database)
		if err != nil {
			return nil, err // not a Store holding a nil pointer
		}
		return s, nil
	}
}

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, h Harness) {
	if h.Database == nil || h.Open == nil {
		t.Fatal("storagetest: Harness needs Database and Open")
	}
	if h.Namespace == nil {
		var n atomic.Int64
		h.Namespace = func(prefix string) string { return fmt.Sprintf("%s_%d", prefix, n.Add(1)) }
	}
	t.Run("Admin", func(t *testing.T) { testAdmin(t, h) })
	t.Run("DataTypes", func(t *testing.T) { testDataTypes(t, h) })
	t.Run("KeyTypes", func(t *testing.T) { testKeyTypes(t, h) })
	t.Run("Get", func(t *testing.T) { testGet(t, h) })
	t.Run("Scan", func(t *testing.T) { testScan(t, h) })
	t.Run("TextKeys", func(t *testing.T) { testTextKeys(t, h) })
	t.Run("ScanAll", func(t *testing.T) { testScanAll(t, h) })
	t.Run("PutDelete", func(t *testing.T) { testPutDelete(t, h) })
	t.Run("Conditions", func(t *testing.T) { testConditions(t, h) })
	t.Run("Mutate", func(t *testing.T) { testMutate(t, h) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, h) })
	t.Run("Definitions", func(t *testing.T) { testDefinitions(t, h) })
}

// fixture is one test's database and the store opened over it.
type fixture struct {
	t   *testing.T
	h   Harness
	db  string
	ctx context.Context
	s   storage.Store
}

func newFixture(t *testing.T, h Harness) *fixture {
	t.Helper()
	f := &fixture{t: t, h: h, db: h.Database(t), ctx: t.Context()}
	f.s = f.open()
	return f
}

// open opens another store over the fixture's database.
func (f *fixture) open() storage.Store {
	f.t.Helper()
	s, err := f.h.Open(f.ctx, f.db)
	if err != nil {
		f.t.Fatalf("open store: %v", err)
	}
	f.t.Cleanup(func() {
		if err := s.Close(); err != nil {
			f.t.Errorf("close store: %v", err)
		}
	})
	return s
}

// namespace returns a fresh namespace name; whatever the test creates in it
// is dropped when the test ends.
func (f *fixture) namespace(prefix string) string {
	ns := f.h.Namespace(prefix)
	f.t.Cleanup(func() { dropNamespace(f.t, f.s, ns) })
	return ns
}

func dropNamespace(t *testing.T, s storage.Store, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tables, err := s.Tables(ctx, ns)
	if err != nil {
		t.Errorf("cleanup: list tables of %s: %v", ns, err)
		return
	}
	for _, tbl := range tables {
		if err := s.DropTable(ctx, ns, tbl); err != nil {
			t.Errorf("cleanup: drop table %s.%s: %v", ns, tbl, err)
		}
	}
	nss, err := s.Namespaces(ctx)
	if err != nil {
		t.Errorf("cleanup: list namespaces: %v", err)
		return
	}
	if slices.Contains(nss, ns) {
		if err := s.DropNamespace(ctx, ns); err != nil {
			t.Errorf("cleanup: drop namespace %s: %v", ns, err)
		}
	}
}

// createTable creates a table in a new namespace of the fixture.
func (f *fixture) createTable(m *storage.TableMetadata) *storage.TableMetadata {
	f.t.Helper()
	if m.Namespace == "" {
		m.Namespace = f.namespace("sp")
	}
	if err := f.s.CreateTable(f.ctx, m); err != nil {
		f.t.Fatalf("create table %s: %v", m.FullName(), err)
	}
	return m
}

func col(name string, t storage.DataType) storage.Column { return storage.Column{Name: name, Type: t} }

func asc(name string) storage.ClusteringKey { return storage.ClusteringKey{Name: name} }
func desc(name string) storage.ClusteringKey {
	return storage.ClusteringKey{Name: name, Order: storage.Desc}
}

// --- operations that must succeed ------------------------------------------

func mustPut(t testing.TB, ctx context.Context, s storage.Store, m *storage.TableMetadata, values storage.Record) {
	t.Helper()
	if err := s.Put(ctx, storage.Put{Namespace: m.Namespace, Table: m.Table, Values: values}); err != nil {
		t.Fatalf("put %v into %s: %v", showRecord(values), m.FullName(), err)
	}
}

func mustGet(t testing.TB, ctx context.Context, s storage.Store, m *storage.TableMetadata, key storage.Key, projection ...string) storage.Record {
	t.Helper()
	rec, err := s.Get(ctx, storage.Get{Namespace: m.Namespace, Table: m.Table, Key: key, Projection: projection})
	if err != nil {
		t.Fatalf("get %v from %s: %v", showRecord(storage.Record(key)), m.FullName(), err)
	}
	return rec
}

func mustScan(t testing.TB, ctx context.Context, s storage.Store, sc storage.Scan) []storage.Record {
	t.Helper()
	recs, err := s.Scan(ctx, sc)
	if err != nil {
		t.Fatalf("scan %s.%s: %v", sc.Namespace, sc.Table, err)
	}
	return recs
}

// checkGet reads a record and compares it with want (nil: absent).
func checkGet(t testing.TB, ctx context.Context, s storage.Store, m *storage.TableMetadata, key storage.Key, want storage.Record) {
	t.Helper()
	checkRecord(t, fmt.Sprintf("get %v", showRecord(storage.Record(key))), mustGet(t, ctx, s, m, key), want)
}

// --- errors -------------------------------------------------------------------

// wantNoMutation checks err is a failed condition of the given kind.
func wantNoMutation(t testing.TB, what string, err error, kind storage.ConditionKind) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want ErrNoMutation", what)
	}
	if !errors.Is(err, storage.ErrNoMutation) {
		t.Fatalf("%s: error %q does not match storage.ErrNoMutation", what, err)
	}
	var nm *storage.NoMutationError
	if !errors.As(err, &nm) {
		t.Fatalf("%s: error %q is not a *storage.NoMutationError", what, err)
	}
	if nm.Condition != kind {
		t.Errorf("%s: NoMutationError.Condition = %v, want %v", what, nm.Condition, kind)
	}
}

// wantError checks err is a plain error (not a failed condition, not a
// missing table) whose message names every one of mentions.
func wantError(t testing.TB, what string, err error, mentions ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want an error", what)
	}
	if errors.Is(err, storage.ErrNoMutation) {
		t.Errorf("%s: error %q should not be ErrNoMutation", what, err)
	}
	if errors.Is(err, storage.ErrTableNotFound) {
		t.Errorf("%s: error %q should not be ErrTableNotFound", what, err)
	}
	for _, m := range mentions {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("%s: error %q does not mention %q", what, err, m)
		}
	}
}

// --- comparing values -------------------------------------------------------

// diffValue explains how got differs from the canonical value want, or
// returns "".
func diffValue(want, got any) string {
	if want == nil || got == nil {
		if want == nil && got == nil {
			return ""
		}
		return fmt.Sprintf("got %s, want %s", show(got), show(want))
	}
	if reflect.TypeOf(want) != reflect.TypeOf(got) {
		return fmt.Sprintf("got %s, want %s (Go types differ)", show(got), show(want))
	}
	if tm, ok := got.(time.Time); ok && tm.Location() != time.UTC {
		return fmt.Sprintf("got %s in location %q, want it in UTC", show(got), tm.Location())
	}
	if !storage.Equal(want, got) {
		return fmt.Sprintf("got %s, want %s", show(got), show(want))
	}
	return ""
}

// checkRecord compares a record with the expected one column by column;
// want nil means no record.
func checkRecord(t testing.TB, what string, got, want storage.Record) {
	t.Helper()
	if want == nil {
		if got != nil {
			t.Errorf("%s: got %s, want no record", what, showRecord(got))
		}
		return
	}
	if got == nil {
		t.Errorf("%s: got no record, want %s", what, showRecord(want))
		return
	}
	for c, w := range want {
		g, ok := got[c]
		if !ok {
			t.Errorf("%s: column %s missing from %s", what, c, showRecord(got))
			continue
		}
		if d := diffValue(w, g); d != "" {
			t.Errorf("%s: column %s: %s", what, c, d)
		}
	}
	for c := range got {
		if _, ok := want[c]; !ok {
			t.Errorf("%s: unexpected column %s in %s", what, c, showRecord(got))
		}
	}
}

func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		if x == nil {
			return "[]byte(nil)"
		}
		if len(x) > 16 {
			return fmt.Sprintf("[]byte(%d bytes %x...)", len(x), x[:16])
		}
		return fmt.Sprintf("[]byte{%x}", x)
	case string:
		if len(x) > 40 {
			return fmt.Sprintf("string(%d bytes %q...)", len(x), x[:40])
		}
		return fmt.Sprintf("%q", x)
	case time.Time:
		return "time.Time(" + x.Format(time.RFC3339Nano) + ")"
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

func showRecord(r storage.Record) string {
	if r == nil {
		return "<nil>"
	}
	cols := make([]string, 0, len(r))
	for c := range r {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c + "=" + show(r[c])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// allBytes is every byte value once, in order.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}
