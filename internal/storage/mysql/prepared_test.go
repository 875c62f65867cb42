package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/mysql"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestPreparedStatements runs more statement shapes than the store keeps
// prepared, on a server of our own whose max_prepared_stmt_count is set
// per case (never on the shared one): every read and write is right, a
// duplicate key is still recognised, evicted statements are closed on the
// server, and a server out of prepared statements (at the first prepare or
// at a statement's first run on another connection) gets the statement as
// text instead.
func TestPreparedStatements(t *testing.T) {
	ctx := context.Background()
	own, _ := testenv.PITRMariaDB(t)
	admin := open(t, own.DSN)
	status := func(name string) int {
		var n int
		if err := admin.DB().QueryRowContext(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = ?", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		name  string
		limit int
		// executes: whether statements ran prepared
		executes bool
	}{
		{"default limit", 16382, true},
		{"a few prepared, the rest as text", 3, true},
		{"none can be prepared", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := admin.DB().ExecContext(ctx, fmt.Sprintf("SET GLOBAL max_prepared_stmt_count = %d", tc.limit)); err != nil {
				t.Fatal(err)
			}
			st := open(t, own.DSN)
			// One connection, so that the server holds each statement
			// the store keeps at most once.
			st.DB().SetMaxOpenConns(1)
			ns := testenv.UniqueName("prep")
			m := &storage.TableMetadata{Namespace: ns, Table: "t", PartitionKey: []string{"k"}, Columns: []storage.Column{{Name: "k", Type: storage.Int}}}
			rec := storage.Record{"k": int32(1)}
			for i := range 40 {
				c := fmt.Sprintf("c%d", i)
				m.Columns = append(m.Columns, storage.Column{Name: c, Type: storage.Int})
				rec[c] = int32(i)
			}
			createTable(t, st, m)
			executed := status("Com_stmt_execute")
			insert := storage.Put{Namespace: ns, Table: m.Table, Values: rec, Condition: storage.Condition{Kind: storage.PutIfNotExists}}
			if err := st.Put(ctx, insert); err != nil {
				t.Fatal(err)
			}
			if err := st.Put(ctx, insert); !errors.Is(err, storage.ErrNoMutation) {
				t.Fatalf("insert of an existing key: got %v, want %v", err, storage.ErrNoMutation)
			}
			// Pairs of columns: more projections than the store keeps.
			if shapes := 40 * 39; shapes <= sqlstore.MaxTexts {
				t.Fatalf("%d projections do not exceed the bound of %d texts", shapes, sqlstore.MaxTexts)
			}
			for _, a := range m.Columns[1:] {
				for _, b := range m.Columns[1:] {
					if a == b {
						continue
					}
					got, err := st.Get(ctx, storage.Get{Namespace: ns, Table: m.Table, Key: storage.Key{"k": int32(1)}, Projection: []string{a.Name, b.Name}})
					if want := (storage.Record{a.Name: rec[a.Name], b.Name: rec[b.Name]}); err != nil || !reflect.DeepEqual(got, want) {
						t.Fatalf("projection %s, %s: got %v %v, want %v", a.Name, b.Name, got, err, want)
					}
				}
			}
			// The last read again, on a second connection, with no room
			// on the server to prepare it there.
			if _, err := admin.DB().ExecContext(ctx, fmt.Sprintf("SET GLOBAL max_prepared_stmt_count = %d", status("Prepared_stmt_count"))); err != nil {
				t.Fatal(err)
			}
			st.DB().SetMaxOpenConns(2)
			held, err := st.DB().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			a, b := m.Columns[len(m.Columns)-1].Name, m.Columns[len(m.Columns)-2].Name
			got, err := st.Get(ctx, storage.Get{Namespace: ns, Table: m.Table, Key: storage.Key{"k": int32(1)}, Projection: []string{a, b}})
			if want := (storage.Record{a: rec[a], b: rec[b]}); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("read on a second connection: got %v %v, want %v", got, err, want)
			}
			if ran := status("Com_stmt_execute") > executed; ran != tc.executes {
				t.Errorf("statements executed prepared: %v, want %v", ran, tc.executes)
			}
			if n := status("Prepared_stmt_count"); n > min(tc.limit, sqlstore.MaxTexts) {
				t.Errorf("the server holds %d prepared statements, more than the store keeps (%d) or the server allows (%d)", n, sqlstore.MaxTexts, tc.limit)
			}
		})
	}
}

// createTable creates m's namespace and m, dropped when the test ends.
func createTable(t *testing.T, st *sqlstore.Store, m *storage.TableMetadata) {
	ctx := context.Background()
	if err := st.CreateNamespace(ctx, m.Namespace); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.DropNamespace(ctx, m.Namespace) })
	if err := st.CreateTable(ctx, m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.DropTable(ctx, m.Namespace, m.Table) })
}

func open(t *testing.T, dsn string) *sqlstore.Store {
	st, err := mysql.Open(context.Background(), "maria", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestPrepareUnderFence: writes through a statement not yet prepared wait
// at a write fence (LOCK TABLES ... READ, as a backup's cut takes it), all
// of them, and stay cancellable there: a transaction waiting at the fence
// can give up.
func TestPrepareUnderFence(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.MySQLDSN(t)
	st := open(t, dsn)
	ns := testenv.UniqueName("fence")
	m := &storage.TableMetadata{Namespace: ns, Table: "t", PartitionKey: []string{"k"}, Columns: []storage.Column{{Name: "k", Type: storage.Int}, {Name: "v", Type: storage.Int}}}
	createTable(t, st, m)
	fence, err := st.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer fence.Close()
	if _, err := fence.ExecContext(ctx, "LOCK TABLES "+st.Table(ns, m.Table)+" READ"); err != nil {
		t.Fatal(err)
	}
	defer fence.ExecContext(ctx, "UNLOCK TABLES")
	fresh := open(t, dsn) // nothing prepared yet
	waiting := func() int {
		var n int
		if err := st.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'Waiting for table metadata lock' AND INFO LIKE ?", "%"+ns+"%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const writers = 2
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, writers)
	for i := range writers {
		go func() {
			done <- fresh.Put(cctx, storage.Put{Namespace: ns, Table: m.Table, Values: storage.Record{"k": int32(i), "v": int32(i)}})
		}()
	}
	testenv.Await(t, "the writes to wait at the fence", func() bool { return waiting() == writers })
	cancel()
	for range writers {
		select {
		case err := <-done:
			if err == nil {
				t.Error("a write went through a held fence")
			}
		case <-time.After(time.Minute):
			t.Fatal("a cancelled write still waits at the fence")
		}
	}
}

// TestPrepareChoice: the store prepares its statements unless the DSN
// names interpolateParams, either way: the operator's choice is kept.
func TestPrepareChoice(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	for _, tc := range []struct {
		params string
		want   bool
	}{
		{"", true},
		{"&charset=utf8mb4", true},
		{"&interpolateParams=true", false},
		{"&interpolateParams=false", false},
	} {
		d, ok := open(t, dsn+tc.params).Dialect().(mysql.Dialect)
		if !ok || d.PrepareStatements() != tc.want {
			t.Errorf("DSN parameters %q: prepares %v, want %v", tc.params, d.PrepareStatements(), tc.want)
		}
	}
}
