package txn

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// crashAt makes the next commits stop at step after n of its writes.
func (f *fixture) crashAt(step consensus.Step, n int) {
	f.m.hooks.crashAt = func(s consensus.Step) (int, bool) { return n, s == step }
}

func (f *fixture) noCrash() { f.m.hooks.crashAt = nil }

// transfer moves 30 from A/1 to B/2 and commits, however the hooks say.
func (f *fixture) transfer(t *testing.T) (*Transaction, error) {
	t.Helper()
	ctx := context.Background()
	tx := f.m.Begin()
	a, err := tx.Get(ctx, storage.Get{Namespace: f.nsA, Table: "accounts", Key: storage.Key{"id": 1}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tx.Get(ctx, storage.Get{Namespace: f.nsB, Table: "accounts", Key: storage.Key{"id": 2}})
	if err != nil {
		t.Fatal(err)
	}
	tx.Put(ctx, storage.Put{Namespace: f.nsA, Table: "accounts", Values: storage.Record{"id": 1, "balance": a["balance"].(int64) - 30}})
	tx.Put(ctx, storage.Put{Namespace: f.nsB, Table: "accounts", Values: storage.Record{"id": 2, "balance": b["balance"].(int64) + 30}})
	return tx, tx.Commit(ctx)
}

// settle reads both records as a reader would, retrying the conflicts that
// lazy recovery reports, and returns the balances (or the last error).
func (f *fixture) settle() (a, b int64, err error) {
	for range 3 {
		var ra, rb storage.Record
		if ra, err = f.read(f.nsA, 1); err != nil {
			continue
		}
		if rb, err = f.read(f.nsB, 2); err != nil {
			continue
		}
		return ra["balance"].(int64), rb["balance"].(int64), nil
	}
	return 0, 0, err
}

// TestCrashDuringCommit stops a transfer after each protocol step, with
// the decision a local transaction of its own, and shows that readers
// bring the stores to the decided outcome.
func TestCrashDuringCommit(t *testing.T) {
	tests := []struct {
		name    string
		step    consensus.Step
		n       int
		expire  bool  // move the clock past the lifetime before reading
		wantA   int64 // balances readers end up with; 0: readers must get a conflict
		wantB   int64
		settled consensus.State // the coordinator's final word
	}{
		{"after one of two prepares, young", consensus.StepPrepare, 1, false, 0, 0, 0},
		{"after one of two prepares, expired", consensus.StepPrepare, 1, true, 100, 100, consensus.Aborted},
		{"after all prepares, young", consensus.StepDecide, 0, false, 0, 0, 0},
		{"after all prepares, expired", consensus.StepDecide, 0, true, 100, 100, consensus.Aborted},
		{"after the coordinator insert", consensus.StepCommitRecords, 0, false, 70, 130, consensus.Committed},
		{"after one record commit", consensus.StepCommitRecords, 1, false, 70, 130, consensus.Committed},
	}
	for _, e := range engines {
		for _, tt := range tests {
			t.Run(e.name+"/"+tt.name, func(t *testing.T) {
				f := newAccounts(t, e)
				f.manager(Options{SeparateDecision: true})
				f.crashAt(tt.step, tt.n)
				tx, err := f.transfer(t)
				if !errors.Is(err, errCrashed) {
					t.Fatalf("commit = %v, want the simulated crash", err)
				}
				f.noCrash()
				if tt.expire {
					f.advance(f.lifetim + time.Second)
				}
				a, b, err := f.settle()
				if tt.wantA == 0 {
					if !errors.Is(err, ErrConflict) {
						t.Fatalf("reading an undecided young transfer = %v, want a conflict", err)
					}
					if m := consensus.MetaOf(f.raw(t, f.nsA, 1)); m.State != consensus.Prepared || m.TxID != tx.ID() {
						t.Fatalf("a young undecided record must be left alone, got %v", m)
					}
					return
				}
				if err != nil {
					t.Fatalf("reading after recovery: %v", err)
				}
				if a != tt.wantA || b != tt.wantB {
					t.Errorf("balances = %d, %d; want %d, %d", a, b, tt.wantA, tt.wantB)
				}
				if got, _ := f.m.decision(context.Background(), tx.ID()); got != tt.settled {
					t.Errorf("coordinator says %v, want %v", got, tt.settled)
				}
			})
		}
	}
}

// TestCrashDuringRollback (decision separate): a transfer loses a conflict on one record after
// preparing the other, decides ABORTED and dies before rolling back.
func TestCrashDuringRollback(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			f := newAccounts(t, e)
			f.manager(Options{SeparateDecision: true})
			ctx := context.Background()
			tx := f.m.Begin()
			for _, k := range []struct {
				ns string
				id int
			}{{f.nsA, 1}, {f.nsB, 2}} {
				r, err := tx.Get(ctx, storage.Get{Namespace: k.ns, Table: "accounts", Key: storage.Key{"id": k.id}})
				if err != nil {
					t.Fatal(err)
				}
				tx.Put(ctx, storage.Put{Namespace: k.ns, Table: "accounts", Values: storage.Record{"id": k.id, "balance": r["balance"].(int64) + 1}})
			}
			f.put(t, f.nsB, 2, 500) // a concurrent writer wins B
			f.crashAt(consensus.StepRollback, 0)
			if err := tx.Commit(ctx); !errors.Is(err, errCrashed) {
				t.Fatalf("commit = %v, want the simulated crash in rollback", err)
			}
			f.noCrash()
			if m := consensus.MetaOf(f.raw(t, f.nsA, 1)); m.State != consensus.Prepared {
				t.Fatalf("A should be left PREPARED, is %v", m.State)
			}
			a, b, err := f.settle()
			if err != nil || a != 100 || b != 500 {
				t.Fatalf("after recovery: %d, %d, %v; want 100, 500", a, b, err)
			}
		})
	}
}

// TestRecoveryMatrix covers every pending state against every coordinator
// answer, through a reader.
func TestRecoveryMatrix(t *testing.T) {
	type outcome int
	const (
		newValue outcome = iota
		oldValue
		gone
		stillPending
	)
	tests := []struct {
		name     string
		delete   bool
		insert   bool
		decision consensus.State // written after the crash; 0: none
		expire   bool
		want     outcome
	}{
		{"PREPARED, COMMITTED", false, false, consensus.Committed, false, newValue},
		{"PREPARED, ABORTED", false, false, consensus.Aborted, false, oldValue},
		{"PREPARED, absent, young", false, false, 0, false, stillPending},
		{"PREPARED, absent, expired", false, false, 0, true, oldValue},
		{"PREPARED insert, ABORTED", false, true, consensus.Aborted, false, gone},
		{"PREPARED insert, absent, expired", false, true, 0, true, gone},
		{"PREPARED insert, COMMITTED", false, true, consensus.Committed, false, newValue},
		{"DELETED, COMMITTED", true, false, consensus.Committed, false, gone},
		{"DELETED, ABORTED", true, false, consensus.Aborted, false, oldValue},
		{"DELETED, absent, young", true, false, 0, false, stillPending},
		{"DELETED, absent, expired", true, false, 0, true, oldValue},
	}
	for _, e := range engines {
		for _, tt := range tests {
			t.Run(e.name+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t, e)
				f.manager(Options{SeparateDecision: true}) // records left PREPARED
				ctx := context.Background()
				id := 1
				if tt.insert {
					id = 7
				} else {
					f.put(t, f.nsA, id, 100)
				}
				tx := f.m.Begin()
				if _, err := tx.Get(ctx, storage.Get{Namespace: f.nsA, Table: "accounts", Key: storage.Key{"id": id}}); err != nil {
					t.Fatal(err)
				}
				if tt.delete {
					tx.Delete(ctx, storage.Delete{Namespace: f.nsA, Table: "accounts", Key: storage.Key{"id": id}})
				} else {
					tx.Put(ctx, storage.Put{Namespace: f.nsA, Table: "accounts", Values: storage.Record{"id": id, "balance": int64(55)}})
				}
				f.crashAt(consensus.StepDecide, 0)
				if err := tx.Commit(ctx); !errors.Is(err, errCrashed) {
					t.Fatalf("commit = %v", err)
				}
				f.noCrash()
				if tt.decision != 0 {
					if err := f.st.Put(ctx, consensus.CoordinatorPut(tx.ID(), tt.decision, f.m.millis())); err != nil {
						t.Fatal(err)
					}
				}
				if tt.expire {
					f.advance(f.lifetim + time.Millisecond) // expired once past the lifetime, as in ScalarDB
				}
				var r storage.Record
				var err error
				for range 2 { // the first read recovers and reports a conflict
					if r, err = f.read(f.nsA, id); err == nil {
						break
					}
				}
				switch tt.want {
				case stillPending:
					if !errors.Is(err, ErrConflict) || !consensus.MetaOf(f.raw(t, f.nsA, id)).Pending() {
						t.Fatalf("want the record left pending and a conflict, got %v, %v", r, err)
					}
				case newValue:
					if err != nil || r == nil || r["balance"] != int64(55) {
						t.Fatalf("want the new value 55, got %v, %v", r, err)
					}
				case oldValue:
					if err != nil || r == nil || r["balance"] != int64(100) {
						t.Fatalf("want the old value 100, got %v, %v", r, err)
					}
				case gone:
					if err != nil || r != nil || f.raw(t, f.nsA, id) != nil {
						t.Fatalf("want no record, got %v, %v", r, err)
					}
				}
			})
		}
	}
}

// engine returns the test engine of that name.
func engineNamed(t *testing.T, name string) engine {
	for _, e := range engines {
		if e.name == name {
			return e
		}
	}
	t.Fatalf("no engine %s", name)
	return engine{}
}

// TestCrashDuringLocalCommit stops a transfer after each step of the
// default commit, where the records in the coordinator's store are written
// committed in the decision's local transaction: on PostgreSQL+MariaDB
// account A shares the coordinator's PostgreSQL and B is prepared first;
// on one PostgreSQL both join the local transaction and nothing is
// prepared. Readers must bring the stores to the decided outcome.
func TestCrashDuringLocalCommit(t *testing.T) {
	tests := []struct {
		engine   string
		name     string
		lose     bool // a concurrent writer sets A to 500 before the commit
		step     consensus.Step
		n        int
		expire   bool
		pending  []int // accounts left PREPARED by the transfer
		conflict bool  // readers get a conflict: the transfer is young and undecided
		wantA    int64
		wantB    int64
		settled  consensus.State
	}{
		{"postgres+mariadb", "after B's prepare, young", false, consensus.StepDecide, 0, false, []int{2}, true, 0, 0, 0},
		{"postgres+mariadb", "after B's prepare, expired", false, consensus.StepDecide, 0, true, []int{2}, false, 100, 100, consensus.Aborted},
		{"postgres+mariadb", "after the local transaction", false, consensus.StepDecide, 1, false, []int{2}, false, 70, 130, consensus.Committed},
		{"postgres+mariadb", "after B's commit record", false, consensus.StepCommitRecords, 1, false, nil, false, 70, 130, consensus.Committed},
		{"postgres+mariadb", "A changed: before the rollback of B", true, consensus.StepRollback, 0, false, []int{2}, false, 500, 100, consensus.Aborted},
		{"postgres", "before the local transaction", false, consensus.StepDecide, 0, true, nil, false, 100, 100, 0},
		{"postgres", "after the local transaction", false, consensus.StepDecide, 1, false, nil, false, 70, 130, consensus.Committed},
		{"postgres", "A changed: before the rollback of nothing", true, consensus.StepRollback, 0, false, nil, false, 500, 100, consensus.Aborted},
	}
	for _, tt := range tests {
		t.Run(tt.engine+"/"+tt.name, func(t *testing.T) {
			f := newAccounts(t, engineNamed(t, tt.engine))
			ctx := context.Background()
			tx := f.m.Begin()
			a, errA := tx.Get(ctx, storage.Get{Namespace: f.nsA, Table: "accounts", Key: storage.Key{"id": 1}})
			b, errB := tx.Get(ctx, storage.Get{Namespace: f.nsB, Table: "accounts", Key: storage.Key{"id": 2}})
			if err := errors.Join(errA, errB); err != nil {
				t.Fatal(err)
			}
			tx.Put(ctx, storage.Put{Namespace: f.nsA, Table: "accounts", Values: storage.Record{"id": 1, "balance": a["balance"].(int64) - 30}})
			tx.Put(ctx, storage.Put{Namespace: f.nsB, Table: "accounts", Values: storage.Record{"id": 2, "balance": b["balance"].(int64) + 30}})
			if tt.lose {
				f.put(t, f.nsA, 1, 500)
			}
			f.crashAt(tt.step, tt.n)
			err := tx.Commit(ctx)
			f.noCrash()
			if !errors.Is(err, errCrashed) {
				t.Fatalf("commit = %v, want the simulated crash", err)
			}
			for _, k := range []struct {
				ns string
				id int
			}{{f.nsA, 1}, {f.nsB, 2}} {
				m := consensus.MetaOf(f.raw(t, k.ns, k.id))
				if want := slices.Contains(tt.pending, k.id); (m.TxID == tx.ID() && m.Pending()) != want {
					t.Errorf("account %d after the crash: %+v, want left PREPARED by the transfer: %v", k.id, m, want)
				}
			}
			if tt.expire {
				f.advance(f.lifetim + time.Second)
			}
			gotA, gotB, err := f.settle()
			if tt.conflict {
				if !errors.Is(err, ErrConflict) {
					t.Fatalf("reading an undecided young transfer = %v, want a conflict", err)
				}
				return
			}
			if err != nil || gotA != tt.wantA || gotB != tt.wantB {
				t.Errorf("balances = %d, %d, %v; want %d, %d", gotA, gotB, err, tt.wantA, tt.wantB)
			}
			if got, _ := f.m.decision(ctx, tx.ID()); got != tt.settled {
				t.Errorf("coordinator says %v, want %v", got, tt.settled)
			}
		})
	}
}

// TestLocalCommitUnderFence: while the coordinator table is locked as a
// cut's write fence locks it (cut.md), a transfer whose accounts share the
// coordinator's PostgreSQL waits at its decision insert, the first
// statement of its local transaction, holding no lock on any account.
// It commits once the fence is released; cancelled while it waits, it
// reports an unknown status (its pipeline was sent whole, and the server
// may still carry it out), and the decision row alone says whether the
// accounts changed.
func TestLocalCommitUnderFence(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		t.Run(map[bool]string{false: "released", true: "cancelled"}[cancel], func(t *testing.T) {
			f := newAccounts(t, engineNamed(t, "postgres"))
			ctx := context.Background()
			st, err := f.st.ForNamespace(ctx, schema.CoordinatorNamespace)
			if err != nil {
				t.Fatal(err)
			}
			pg := st.(*sqlstore.Store)
			// One connection for the fence, one for the transfers: a first
			// transfer leaves its statements prepared on the connection the
			// next one gets, which then does not wait already at parsing
			// them (a parse of the insert locks the coordinator table too).
			pg.DB().SetMaxOpenConns(2)
			conn, err := pg.DB().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := f.transfer(t); err != nil {
				t.Fatal(err)
			}
			fence, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
			if err != nil {
				t.Fatal(err)
			}
			defer fence.Rollback()
			if _, err := fence.ExecContext(ctx, "LOCK TABLE "+pg.Table(schema.CoordinatorNamespace, schema.CoordinatorTable)+" IN SHARE MODE"); err != nil {
				t.Fatal(err)
			}
			tx := f.m.Begin()
			for _, k := range []struct {
				ns    string
				id    int
				delta int64
			}{{f.nsA, 1, -30}, {f.nsB, 2, 30}} {
				r, err := tx.Get(ctx, storage.Get{Namespace: k.ns, Table: "accounts", Key: storage.Key{"id": k.id}})
				if err != nil {
					t.Fatal(err)
				}
				tx.Put(ctx, storage.Put{Namespace: k.ns, Table: "accounts", Values: storage.Record{"id": k.id, "balance": r["balance"].(int64) + k.delta}})
			}
			commitCtx, stop := context.WithCancel(ctx)
			defer stop()
			done := make(chan error, 1)
			go func() { done <- tx.Commit(commitCtx) }()
			testenv.Await(t, "the decision insert to wait for the fence", func() bool {
				var waiting int
				err := fence.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%'||$1||'%'`, schema.CoordinatorTable).Scan(&waiting)
				return err == nil && waiting > 0
			})
			for _, id := range []int{1, 2} {
				ns := map[int]string{1: f.nsA, 2: f.nsB}[id]
				if _, err := fence.ExecContext(ctx, "SELECT 1 FROM "+pg.Table(ns, "accounts")+" WHERE id = $1 FOR UPDATE NOWAIT", id); err != nil {
					t.Fatalf("account %d is locked while the decision waits for the fence: %v", id, err)
				}
			}
			select {
			case err := <-done:
				t.Fatalf("the commit ended under the fence: %v", err)
			default:
			}
			if cancel {
				stop()
				if err := <-done; !errors.Is(err, ErrUnknownStatus) {
					t.Fatalf("commit cancelled under the fence = %v, want an unknown status", err)
				}
			}
			if err := fence.Rollback(); err != nil {
				t.Fatal(err)
			}
			if cancel {
				// The pipeline and its commit were sent: the server may
				// still carry it out, or not, once the fence is gone.
				testenv.Await(t, "the cancelled local transaction to end on the server", func() bool {
					var active int
					err := conn.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
						AND state <> 'idle' AND pid <> pg_backend_pid() AND query LIKE '%'||$1||'%'`, schema.CoordinatorTable).Scan(&active)
					return err == nil && active == 0
				})
			} else if err := <-done; err != nil {
				t.Fatalf("commit after the fence: %v", err)
			}
			// Whichever way it went, the decision row says it all.
			got, err := f.m.decision(ctx, tx.ID())
			if err != nil || (!cancel && got != consensus.Committed) {
				t.Fatalf("coordinator says %v, %v", got, err)
			}
			wantA, wantB := map[bool]int64{true: 40, false: 70}[got == consensus.Committed], map[bool]int64{true: 160, false: 130}[got == consensus.Committed]
			if a, b, err := f.settle(); err != nil || a != wantA || b != wantB {
				t.Errorf("after the fence, coordinator %v: %d, %d, %v; want %d, %d", got, a, b, err, wantA, wantB)
			}
		})
	}
}

// TestLocalCommitWriteKinds: every kind of write to a record in the
// coordinator's store, written committed in the decision's local
// transaction, leaves what a prepare then a commit would, and fails on
// the same condition when another writer got there first.
func TestLocalCommitWriteKinds(t *testing.T) {
	tests := []struct {
		name    string
		id      int
		del     bool
		other   bool // another writer puts 500 into the record first
		want    any  // the balance after; nil: no record
		success bool
	}{
		{"update", 1, false, false, int64(55), true},
		{"delete", 1, true, false, nil, true},
		{"insert", 7, false, false, int64(55), true},
		{"delete of an absent record", 7, true, false, nil, true},
		{"update of a record changed meanwhile", 1, false, true, int64(500), false},
		{"insert of a record that appeared", 7, false, true, int64(500), false},
		{"delete of an absent record that appeared", 7, true, true, int64(500), false},
	}
	for _, e := range []string{"postgres", "postgres+mariadb"} {
		for _, tt := range tests {
			t.Run(e+"/"+tt.name, func(t *testing.T) {
				f := newAccounts(t, engineNamed(t, e)) // account 1 in A, on the coordinator's PostgreSQL
				ctx := context.Background()
				tx := f.m.Begin()
				if _, err := tx.Get(ctx, storage.Get{Namespace: f.nsA, Table: "accounts", Key: storage.Key{"id": tt.id}}); err != nil {
					t.Fatal(err)
				}
				if tt.del {
					tx.Delete(ctx, storage.Delete{Namespace: f.nsA, Table: "accounts", Key: storage.Key{"id": tt.id}})
				} else {
					tx.Put(ctx, storage.Put{Namespace: f.nsA, Table: "accounts", Values: storage.Record{"id": tt.id, "balance": int64(55)}})
				}
				if tt.other {
					f.put(t, f.nsA, tt.id, 500)
				}
				err := tx.Commit(ctx)
				if tt.success != (err == nil) || !tt.success && !errors.Is(err, ErrConflict) {
					t.Fatalf("commit = %v, want success %v or a conflict", err, tt.success)
				}
				raw := f.raw(t, f.nsA, tt.id)
				switch m := consensus.MetaOf(raw); {
				case tt.want == nil && raw != nil:
					t.Errorf("record left: %v", raw)
				case tt.want != nil && (raw == nil || raw["balance"] != tt.want || m.State != consensus.Committed):
					t.Errorf("record = %v, want balance %v committed", raw, tt.want)
				case tt.want != nil && tt.success && (m.TxID != tx.ID() || raw[schema.BeforePrefix+"balance"] != map[bool]any{true: int64(100), false: nil}[tt.id == 1]):
					t.Errorf("record = %v, want written by %s with its before image", raw, tx.ID())
				}
			})
		}
	}
}
