package consensus

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
)

var accounts = schema.Transactional(&storage.TableMetadata{
	Namespace: "bank", Table: "accounts",
	Columns:      []storage.Column{{Name: "id", Type: storage.Int}, {Name: "balance", Type: storage.BigInt}},
	PartitionKey: []string{"id"},
})

func ref(id int32) Ref { return Ref{Table: accounts, Key: storage.Key{"id": id}} }

func committed(id int32, balance int64, txID string, version int32) storage.Record {
	return storage.Record{"id": id, "balance": balance, schema.TxID: txID, schema.TxState: int32(Committed), schema.TxVersion: version, schema.TxPreparedAt: int64(1), schema.TxCommittedAt: int64(2)}
}

var errNoMutation = &storage.NoMutationError{Table: "x", Condition: storage.PutIf}

// drive runs a commit to the end, answering each step from results. It
// returns the steps and, for each, the accounts it writes ("decide"
// lists those written with the decision).
func drive(t *testing.T, c *Commit, results map[Step][]Result) ([]Step, []string, *Commit) {
	t.Helper()
	var steps []Step
	var trace []string
	for c.Step() != StepDone {
		s := c.Step()
		steps = append(steps, s)
		if len(steps) > 20 {
			t.Fatalf("commit does not terminate: %v", steps)
		}
		ms := c.Mutations(0)
		if s == StepDecide {
			ms = c.LocalMutations(0)
		}
		if len(ms) > 0 {
			trace = append(trace, fmt.Sprint(s, " ", accountsOf(ms)))
		}
		var r Result
		if rs := results[s]; len(rs) > 0 {
			r, results[s] = rs[0], rs[1:]
		}
		c.Done(r)
	}
	return steps, trace, c
}

// accountsOf lists the accounts mutations write, in order.
func accountsOf(ms []storage.Mutation) []any {
	var out []any
	for _, m := range ms {
		switch m := m.(type) {
		case storage.Put:
			out = append(out, m.Values["id"])
		case storage.Delete:
			out = append(out, m.Key["id"])
		}
	}
	return out
}

func transfer(iso Isolation) *Tx {
	tx := NewTx("t1", iso)
	tx.Read(ref(1), committed(1, 100, "a", 1))
	tx.Read(ref(2), committed(2, 100, "b", 3))
	tx.Put(ref(1), storage.Record{"balance": int64(90)})
	tx.Put(ref(2), storage.Record{"balance": int64(110)})
	return tx
}

func TestCommitTransitions(t *testing.T) {
	ambiguous := errors.New("connection reset")
	tests := []struct {
		name    string
		iso     Isolation
		results map[Step][]Result
		steps   []Step
		outcome Outcome
	}{
		{"happy snapshot", Snapshot, nil,
			[]Step{StepPrepare, StepDecide, StepCommitRecords}, OutcomeCommitted},
		{"happy serializable", Serializable, map[Step][]Result{StepValidate: {{Valid: true}}},
			[]Step{StepPrepare, StepValidate, StepDecide, StepCommitRecords}, OutcomeCommitted},
		{"prepare conflict aborts", Snapshot, map[Step][]Result{StepPrepare: {{Err: errNoMutation}}},
			[]Step{StepPrepare, StepDecideAbort, StepRollback}, OutcomeAborted},
		{"validation failure aborts", Serializable, map[Step][]Result{StepValidate: {{Valid: false}}},
			[]Step{StepPrepare, StepValidate, StepDecideAbort, StepRollback}, OutcomeAborted},
		{"decision lost to a reader's abort", Snapshot,
			map[Step][]Result{StepDecide: {{Err: errNoMutation}}, StepCheckDecision: {{Decision: Aborted}}},
			[]Step{StepPrepare, StepDecide, StepCheckDecision, StepRollback}, OutcomeAborted},
		{"ambiguous decide that landed", Snapshot,
			map[Step][]Result{StepDecide: {{Err: ambiguous}}, StepCheckDecision: {{Decision: Committed}}},
			[]Step{StepPrepare, StepDecide, StepCheckDecision, StepCommitRecords}, OutcomeCommitted},
		{"ambiguous decide that did not land", Snapshot,
			map[Step][]Result{StepDecide: {{Err: ambiguous}}, StepCheckDecision: {{}}},
			[]Step{StepPrepare, StepDecide, StepCheckDecision, StepDecideAbort, StepRollback}, OutcomeAborted},
		{"ambiguous decide, coordinator unreadable", Snapshot,
			map[Step][]Result{StepDecide: {{Err: ambiguous}}, StepCheckDecision: {{Err: ambiguous}}},
			[]Step{StepPrepare, StepDecide, StepCheckDecision}, OutcomeUnknown},
		{"ambiguous decide, abort insert fails too", Snapshot,
			map[Step][]Result{StepDecide: {{Err: ambiguous}}, StepCheckDecision: {{}}, StepDecideAbort: {{Err: ambiguous}}},
			[]Step{StepPrepare, StepDecide, StepCheckDecision, StepDecideAbort}, OutcomeUnknown},
		{"abort insert fails before any commit insert", Snapshot,
			map[Step][]Result{StepPrepare: {{Err: errNoMutation}}, StepDecideAbort: {{Err: ambiguous}}},
			[]Step{StepPrepare, StepDecideAbort}, OutcomeAborted},
		{"delayed commit insert beats our abort insert", Snapshot,
			map[Step][]Result{StepDecide: {{Err: ambiguous}}, StepCheckDecision: {{}, {Decision: Committed}}, StepDecideAbort: {{Err: errNoMutation}}},
			[]Step{StepPrepare, StepDecide, StepCheckDecision, StepDecideAbort, StepCheckDecision, StepCommitRecords}, OutcomeCommitted},
		{"no decision ever readable gives unknown", Snapshot,
			map[Step][]Result{StepDecide: {{Err: ambiguous}}, StepDecideAbort: {{Err: errNoMutation}, {Err: errNoMutation}, {Err: errNoMutation}}},
			[]Step{StepPrepare, StepDecide, StepCheckDecision, StepDecideAbort, StepCheckDecision, StepDecideAbort, StepCheckDecision}, OutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, _, c := drive(t, NewCommit(transfer(tt.iso)), tt.results)
			if !equalSteps(steps, tt.steps) {
				t.Errorf("steps = %v, want %v", steps, tt.steps)
			}
			if c.Outcome() != tt.outcome {
				t.Errorf("outcome = %v, want %v", c.Outcome(), tt.outcome)
			}
		})
	}
}

func equalSteps(a, b []Step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadOnly(t *testing.T) {
	tx := NewTx("r", Snapshot)
	tx.Read(ref(1), committed(1, 1, "a", 1))
	if steps, _, c := drive(t, NewCommit(tx), nil); len(steps) != 0 || c.Outcome() != OutcomeCommitted {
		t.Fatalf("read-only snapshot commit: steps %v outcome %v", steps, c.Outcome())
	}
	tx = NewTx("r", Serializable)
	tx.Read(ref(1), committed(1, 1, "a", 1))
	steps, _, c := drive(t, NewCommit(tx), map[Step][]Result{StepValidate: {{Valid: false}}})
	if !equalSteps(steps, []Step{StepValidate}) || c.Outcome() != OutcomeAborted {
		t.Fatalf("read-only serializable failing validation: steps %v outcome %v (must write nothing)", steps, c.Outcome())
	}
}

func TestPrepareMutations(t *testing.T) {
	tx := NewTx("t1", Snapshot)
	tx.Read(ref(1), committed(1, 100, "a", 4))
	tx.Read(ref(2), nil)
	imported := storage.Record{"id": int32(3), "balance": int64(7)}
	tx.Read(ref(3), imported)
	tx.Put(ref(1), storage.Record{"balance": int64(90)})
	tx.Put(ref(2), storage.Record{"balance": int64(10)})
	tx.Delete(ref(3))
	ms := tx.PrepareMutations(1000)
	if len(ms) != 3 {
		t.Fatalf("got %d mutations", len(ms))
	}
	update := ms[0].(storage.Put)
	if update.Condition.Kind != storage.PutIf || update.Condition.Exprs[0].Value != "a" {
		t.Errorf("update condition = %+v, want PutIf tx_id = a", update.Condition)
	}
	want := storage.Record{"balance": int64(90), schema.TxID: "t1", schema.TxState: int32(Prepared), schema.TxVersion: int32(5),
		"before_balance": int64(100), "before_tx_id": "a", "before_tx_state": int32(Committed), "before_tx_version": int32(4)}
	for k, v := range want {
		if update.Values[k] != v {
			t.Errorf("prepare of update: %s = %v, want %v", k, update.Values[k], v)
		}
	}
	insert := ms[1].(storage.Put)
	if insert.Condition.Kind != storage.PutIfNotExists || insert.Values[schema.TxVersion] != int32(1) || insert.Values["before_tx_state"] != nil {
		t.Errorf("prepare of insert = %+v", insert)
	}
	del := ms[2].(storage.Put)
	if del.Values[schema.TxState] != int32(Deleted) || del.Condition.Exprs[0].Op != storage.IsNull || del.Values["before_tx_version"] != int32(0) {
		t.Errorf("prepare of delete over imported data = %+v", del)
	}
}

func TestRecover(t *testing.T) {
	prepared := storage.Record{"id": int32(1), schema.TxID: "x", schema.TxState: int32(Prepared), schema.TxPreparedAt: int64(1000)}
	deleted := storage.Record{"id": int32(1), schema.TxID: "x", schema.TxState: int32(Deleted), schema.TxPreparedAt: int64(1000)}
	const lifetime = 15000
	tests := []struct {
		name     string
		rec      storage.Record
		decision State
		now      int64
		want     Recovery
		lifetime int64 // 0: 15 s
	}{
		{"committed record", committed(1, 1, "x", 1), 0, 99999, Nothing, 0},
		{"prepared, coordinator committed", prepared, Committed, 1001, RollForward, 0},
		{"prepared, coordinator aborted", prepared, Aborted, 1001, RollBack, 0},
		{"prepared, no row, young", prepared, 0, 1000 + lifetime - 1, Leave, 0},
		// ScalarDB: expired iff now > prepared_at + lifetime
		// (RecoveryHandler, v3.4.9 and v3.16.6).
		{"prepared, no row, exactly the lifetime old", prepared, 0, 1000 + lifetime, Leave, 0},
		{"prepared, no row, expired", prepared, 0, 1000 + lifetime + 1, AbortExpired, 0},
		{"prepared, no row, no lifetime (after a restore)", prepared, 0, 1000, AbortExpired, NoLifetime},
		{"deleted, coordinator committed", deleted, Committed, 1001, RollForward, 0},
		{"deleted, coordinator aborted", deleted, Aborted, 1001, RollBack, 0},
		{"deleted, no row, young", deleted, 0, 2000, Leave, 0},
		{"deleted, no row, expired", deleted, 0, 1000 + lifetime + 1, AbortExpired, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lt := tt.lifetime
			if lt == 0 {
				lt = lifetime
			}
			if got := Recover(tt.rec, tt.decision, tt.now, lt); got != tt.want {
				t.Errorf("Recover = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRollbackRecordRestoresBeforeImage(t *testing.T) {
	tx := NewTx("t1", Snapshot)
	before := committed(1, 100, "a", 4)
	tx.Read(ref(1), before)
	tx.Put(ref(1), storage.Record{"balance": int64(90)})
	prepared := tx.PrepareMutations(5000)[0].(storage.Put).Values
	back := RollbackRecord(ref(1), prepared).(storage.Put)
	for _, c := range []string{"balance", schema.TxID, schema.TxState, schema.TxVersion, schema.TxPreparedAt, schema.TxCommittedAt} {
		if !storage.Equal(back.Values[c], before[c]) {
			t.Errorf("rollback: %s = %v, want %v", c, back.Values[c], before[c])
		}
	}
	if back.Values["before_balance"] != nil || back.Condition.Exprs[0].Value != "t1" {
		t.Errorf("rollback must clear the before image and be conditional on the writer: %+v", back)
	}
	// An insert has no before image: rollback deletes.
	tx2 := NewTx("t2", Snapshot)
	tx2.Read(ref(9), nil)
	tx2.Put(ref(9), storage.Record{"balance": int64(1)})
	ins := tx2.PrepareMutations(1)[0].(storage.Put).Values
	if d, ok := RollbackRecord(ref(9), ins).(storage.Delete); !ok || d.Condition.Kind != storage.DeleteIf {
		t.Errorf("rollback of an insert = %#v, want a conditional delete", RollbackRecord(ref(9), ins))
	}
}

func TestValidation(t *testing.T) {
	tx := transfer(Serializable)
	tx.Read(ref(5), committed(5, 1, "c", 2))
	refs := tx.ValidationReads()
	if len(refs) != 1 || refs[0].ID() != ref(5).ID() {
		t.Fatalf("validation reads = %v, want only the unwritten record 5", refs)
	}
	if !tx.Unchanged(ref(5), committed(5, 1, "c", 2)) {
		t.Error("same record reported changed")
	}
	if tx.Unchanged(ref(5), committed(5, 2, "d", 3)) {
		t.Error("record rewritten by another transaction reported unchanged")
	}
	if tx.Unchanged(ref(5), nil) {
		t.Error("deleted record reported unchanged")
	}
}

// A user column before_x with no column x is the user's own (ScalarDB's
// rule): rollback restores it from its twin before_before_x.
func TestRollbackRestoresUserBeforeColumn(t *testing.T) {
	notes := schema.Transactional(&storage.TableMetadata{
		Namespace: "app", Table: "notes",
		Columns:      []storage.Column{{Name: "id", Type: storage.Int}, {Name: "before_note", Type: storage.Text}},
		PartitionKey: []string{"id"},
	})
	r := Ref{Table: notes, Key: storage.Key{"id": int32(1)}}
	tx := NewTx("t1", Snapshot)
	tx.Read(r, storage.Record{"id": int32(1), "before_note": "old", schema.TxID: "a", schema.TxState: int32(Committed), schema.TxVersion: int32(1)})
	tx.Put(r, storage.Record{"before_note": "new"})
	prepared := tx.PrepareMutations(5000)[0].(storage.Put).Values
	if prepared["before_before_note"] != "old" {
		t.Fatalf("prepare: before_before_note = %v, want the old value", prepared["before_before_note"])
	}
	back := RollbackRecord(r, prepared).(storage.Put).Values
	if back["before_note"] != "old" || back["before_before_note"] != nil {
		t.Errorf("rollback: before_note = %v (want old), before_before_note = %v (want cleared)", back["before_note"], back["before_before_note"])
	}
}

// TestLocalCommitTransitions: records in the coordinator's store join the
// decision's local transaction, written committed at once where no
// validation is needed, as commit records after validation otherwise;
// a failed condition there aborts as a failed prepare does.
func TestLocalCommitTransitions(t *testing.T) {
	ambiguous := errors.New("connection reset")
	localConflict := Result{Err: &storage.FailedMutationError{Index: 1, Err: errNoMutation}, LocalConflict: true}
	none, first, both := []int32{}, []int32{1}, []int32{1, 2}
	tests := []struct {
		name     string
		iso      Isolation
		validate bool    // the transaction also read account 3 without writing it
		local    []int32 // accounts in the coordinator's store
		results  map[Step][]Result
		steps    []Step
		trace    []string
		outcome  Outcome
	}{
		{"nothing local", Snapshot, false, none, nil,
			[]Step{StepPrepare, StepDecide, StepCommitRecords}, []string{"prepare [1 2]", "commit records [1 2]"}, OutcomeCommitted},
		{"one local", Snapshot, false, first, nil,
			[]Step{StepPrepare, StepDecide, StepCommitRecords}, []string{"prepare [2]", "decide [1]", "commit records [2]"}, OutcomeCommitted},
		{"all local: one local transaction", Snapshot, false, both, nil,
			[]Step{StepDecide, StepCommitRecords}, []string{"decide [1 2]"}, OutcomeCommitted},
		{"all local, serializable, every read written", Serializable, false, both, nil,
			[]Step{StepDecide, StepCommitRecords}, []string{"decide [1 2]"}, OutcomeCommitted},
		{"all local, serializable, validation needed", Serializable, true, both, map[Step][]Result{StepValidate: {{Valid: true}}},
			[]Step{StepPrepare, StepValidate, StepDecide, StepCommitRecords}, []string{"prepare [1 2]", "decide [1 2]"}, OutcomeCommitted},
		{"one local, serializable, validation fails", Serializable, true, first, map[Step][]Result{StepValidate: {{Valid: false}}},
			[]Step{StepPrepare, StepValidate, StepDecideAbort, StepRollback}, []string{"prepare [1 2]", "rollback [1 2]"}, OutcomeAborted},
		{"one local, its condition fails", Snapshot, false, first, map[Step][]Result{StepDecide: {localConflict}},
			[]Step{StepPrepare, StepDecide, StepDecideAbort, StepRollback}, []string{"prepare [2]", "decide [1]", "rollback [2]"}, OutcomeAborted},
		{"all local, a condition fails", Snapshot, false, both, map[Step][]Result{StepDecide: {localConflict}},
			[]Step{StepDecide, StepDecideAbort, StepRollback}, []string{"decide [1 2]"}, OutcomeAborted},
		{"one local, decision lost to a reader's abort", Snapshot, false, first,
			map[Step][]Result{StepDecide: {{Err: errNoMutation}}, StepCheckDecision: {{Decision: Aborted}}},
			[]Step{StepPrepare, StepDecide, StepCheckDecision, StepRollback}, []string{"prepare [2]", "decide [1]", "rollback [2]"}, OutcomeAborted},
		{"one local, ambiguous local commit that landed", Snapshot, false, first,
			map[Step][]Result{StepDecide: {{Err: ambiguous}}, StepCheckDecision: {{Decision: Committed}}},
			[]Step{StepPrepare, StepDecide, StepCheckDecision, StepCommitRecords}, []string{"prepare [2]", "decide [1]", "commit records [2]"}, OutcomeCommitted},
		{"one local, ambiguous local commit that did not land", Snapshot, false, first,
			map[Step][]Result{StepDecide: {{Err: ambiguous}}, StepCheckDecision: {{}}},
			[]Step{StepPrepare, StepDecide, StepCheckDecision, StepDecideAbort, StepRollback}, []string{"prepare [2]", "decide [1]", "rollback [2]"}, OutcomeAborted},
		{"all local, ambiguous, coordinator unreadable", Snapshot, false, both,
			map[Step][]Result{StepDecide: {{Err: ambiguous}}, StepCheckDecision: {{Err: ambiguous}}},
			[]Step{StepDecide, StepCheckDecision}, []string{"decide [1 2]"}, OutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := transfer(tt.iso)
			if tt.validate {
				tx.Read(ref(3), committed(3, 100, "c", 1))
			}
			local := func(r Ref) bool { return slices.Contains(tt.local, r.Key["id"].(int32)) }
			steps, trace, c := drive(t, NewCommitLocal(tx, local), tt.results)
			if !slices.Equal(steps, tt.steps) || !slices.Equal(trace, tt.trace) {
				t.Errorf("steps = %v, writes %q; want %v, %q", steps, trace, tt.steps, tt.trace)
			}
			if c.Outcome() != tt.outcome {
				t.Errorf("outcome = %v, want %v", c.Outcome(), tt.outcome)
			}
		})
	}
}

// TestCommittedLayer: a record written committed at once holds what its
// prepare then its commit would leave, on its prepare's condition.
func TestCommittedLayer(t *testing.T) {
	tx := NewTx("t1", Snapshot)
	tx.Read(ref(1), committed(1, 100, "a", 1))
	tx.Read(ref(2), committed(2, 50, "b", 3))
	tx.Read(ref(3), nil)
	tx.Read(ref(4), nil)
	tx.Put(ref(1), storage.Record{"balance": int64(90)})
	tx.Delete(ref(2))
	tx.Put(ref(3), storage.Record{"balance": int64(10)})
	tx.Delete(ref(4))
	prepares := tx.PrepareMutations(5000)
	got := tx.committedOf(tx.order, 5000)
	// account 1: the prepare, COMMITTED at 5000.
	want := prepares[0].(storage.Put)
	want.Values[schema.TxState], want.Values[schema.TxCommittedAt] = int32(Committed), int64(5000)
	if !reflect.DeepEqual(got[0], storage.Mutation(want)) {
		t.Errorf("update: %v\nwant %v", got[0], want)
	}
	// account 2: a delete on the prepare's condition.
	if d, ok := got[1].(storage.Delete); !ok || d.Condition.Kind != storage.DeleteIf ||
		!reflect.DeepEqual(d.Condition.Exprs, prepares[1].(storage.Put).Condition.Exprs) {
		t.Errorf("delete: %v, want a DeleteIf on %v", got[1], prepares[1].(storage.Put).Condition)
	}
	// account 3: the insert, COMMITTED, only if still absent.
	if p := got[2].(storage.Put); p.Condition.Kind != storage.PutIfNotExists || p.Values[schema.TxState] != int32(Committed) || p.Values["balance"] != int64(10) {
		t.Errorf("insert: %v", p)
	}
	// account 4, read absent: its prepare and its commit, so that it
	// still fails if the record appeared.
	if len(got) != 5 || !reflect.DeepEqual(got[3], prepares[3]) || !reflect.DeepEqual(got[4], CommitRecord(ref(4), "t1", Deleted, 5000)) {
		t.Errorf("delete of an absent record: %v", got[3:])
	}
}
