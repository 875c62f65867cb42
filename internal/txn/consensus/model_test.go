package consensus

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// A model check of the decision's local transaction against the cut
// (DESIGN.md section 5, docs/performance-transactions.md), as
// internal/cut/model_test.go checks the separate decision: transfers run
// NewCommitLocal over two in-memory stores, "c" holding the coordinator
// and accounts 0 and 1, "b" accounts 2 and 3, one write at a time (the
// decision and its local writes as one), while readers recover any
// pending record at once (lifetime 0: the most eager recovery) and a cut
// snapshots the two stores at two moments. With the write fence held
// between them, every cut must recover to the bank invariants; without
// it some must not.

// lworld is the stores: store name, then key ("tx:"+id for coordinator rows).
type lworld map[string]map[string]storage.Record

func lplace(m storage.Mutation) (store, key string) {
	if p, ok := m.(storage.Put); ok && p.Namespace == schema.CoordinatorNamespace {
		return "c", "tx:" + p.Values[schema.TxID].(string)
	}
	var id int32
	switch m := m.(type) {
	case storage.Put:
		id = m.Values["id"].(int32)
	case storage.Delete:
		id = m.Key["id"].(int32)
	}
	return accountPlace(id)
}

func accountPlace(id int32) (store, key string) {
	return map[bool]string{true: "c", false: "b"}[id < 2], fmt.Sprint(id)
}

// write is one conditional write, as a store applies it.
func (w lworld) write(m storage.Mutation) error {
	store, key := lplace(m)
	rec, exists := w[store][key]
	var cond storage.Condition
	switch m := m.(type) {
	case storage.Put:
		cond = m.Condition
	case storage.Delete:
		cond = m.Condition
	}
	ok := exists
	switch cond.Kind {
	case storage.PutIfNotExists:
		ok = !exists
	case storage.PutIf, storage.DeleteIf:
		for _, e := range cond.Exprs {
			v := rec[e.Column]
			ok = ok && (e.Op == storage.IsNull && v == nil || e.Op == storage.EQ && v != nil && storage.Equal(v, e.Value))
		}
	default:
		ok = true
	}
	if !ok {
		return storage.ErrNoMutation
	}
	if p, isPut := m.(storage.Put); isPut {
		next := maps.Clone(rec)
		if next == nil {
			next = storage.Record{}
		}
		maps.Copy(next, p.Values)
		w[store][key] = next
	} else {
		delete(w[store], key)
	}
	return nil
}

// writeAll applies writes to store c all or none, as MutateAtomic does.
func (w lworld) writeAll(ms []storage.Mutation) error {
	trial := lworld{"c": maps.Clone(w["c"]), "b": w["b"]}
	for i, m := range ms {
		if err := trial.write(m); err != nil {
			return &storage.FailedMutationError{Index: i, Err: err}
		}
	}
	w["c"] = trial["c"]
	return nil
}

// ltransfer is one transfer, advanced one atomic action at a time.
type ltransfer struct {
	id       string
	from, to int32
	c        *Commit
	queue    []storage.Mutation
	firstErr error
	done     bool
}

func (t *ltransfer) decidesNext() bool {
	return t.c != nil && (t.c.Step() == StepDecide || t.c.Step() == StepDecideAbort)
}

func (t *ltransfer) step(w lworld, now int64) {
	if t.c == nil {
		tx := NewTx(t.id, Snapshot)
		for i, id := range []int32{t.from, t.to} {
			store, key := accountPlace(id)
			rec := w[store][key]
			if MetaOf(rec).Pending() { // a conflict: the transfer gives up
				t.done = true
				return
			}
			tx.Read(ref(id), rec)
			tx.Put(ref(id), storage.Record{"balance": rec["balance"].(int64) + []int64{-7, 7}[i]})
		}
		t.c = NewCommitLocal(tx, func(r Ref) bool { return r.Key["id"].(int32) < 2 })
		return
	}
	switch t.c.Step() {
	case StepDecide:
		err := w.writeAll(t.c.LocalTransaction(now))
		var failed *storage.FailedMutationError
		t.c.Done(Result{Err: err, LocalConflict: errors.As(err, &failed) && failed.Index > 0})
	case StepDecideAbort:
		t.c.Done(Result{Err: w.write(t.c.Decision(now))})
	case StepCheckDecision:
		t.c.Done(Result{Decision: DecisionOf(w["c"]["tx:"+t.id])})
	default:
		if t.queue == nil {
			t.queue, t.firstErr = t.c.Mutations(now), nil
		}
		if len(t.queue) > 0 {
			if err := w.write(t.queue[0]); err != nil && t.firstErr == nil {
				t.firstErr = err
			}
			t.queue = t.queue[1:]
		}
		if len(t.queue) == 0 {
			t.queue = nil
			t.c.Done(Result{Err: t.firstErr})
		}
	}
	t.done = t.c.Step() == StepDone
}

// recoverOne is a reader's lazy recovery of the pending record key: the
// ABORTED insert when there is no decision (held back by the fence), else
// the roll forward or back.
func recoverOne(w lworld, store, key string, fence bool, now int64) {
	rec := w[store][key]
	var id int32
	fmt.Sscan(key, &id)
	switch action := Recover(rec, DecisionOf(w["c"]["tx:"+MetaOf(rec).TxID]), now, NoLifetime); action {
	case AbortExpired:
		if !fence {
			_ = w.write(CoordinatorPut(MetaOf(rec).TxID, Aborted, now))
		}
	case RollForward, RollBack:
		_ = w.write(RecoveryMutation(ref(id), rec, action, now))
	}
}

// settled recovers a cut as restore does and checks the bank invariants:
// the total, and one version step per account per committed transfer.
func settled(cut lworld) error {
	for _, store := range []string{"c", "b"} {
		for key, rec := range cut[store] {
			if MetaOf(rec).Pending() {
				recoverOne(cut, store, key, false, 1<<62)
				recoverOne(cut, store, key, false, 1<<62)
			}
		}
	}
	var total, versions, committed int64
	for _, store := range []string{"c", "b"} {
		for key, rec := range cut[store] {
			switch {
			case key[0] == 't':
				if DecisionOf(rec) == Committed {
					committed++
				}
			case MetaOf(rec).Pending():
				return fmt.Errorf("account %s still pending after recovery", key)
			default:
				total += rec["balance"].(int64)
				versions += int64(MetaOf(rec).Version)
			}
		}
	}
	if total != 400 || versions != 4+2*committed {
		return fmt.Errorf("total %d (want 400), versions %d (want %d for %d committed transfers)", total, versions, 4+2*committed, committed)
	}
	return nil
}

// localSchedule plays one random interleaving of four transfers, eager
// readers and a cut, and checks the recovered final state and cut.
func localSchedule(seed uint64, fenced bool) (final, atCut error) {
	rng := rand.New(rand.NewPCG(seed, 2))
	w := lworld{"c": {}, "b": {}}
	for id := range int32(4) {
		_ = w.write(storage.Put{Values: storage.Record{"id": id, "balance": int64(100),
			schema.TxID: "init", schema.TxState: int32(Committed), schema.TxVersion: int32(1)}})
	}
	var ts []*ltransfer
	for i := range 4 {
		from := int32(rng.IntN(4))
		ts = append(ts, &ltransfer{id: fmt.Sprint(i), from: from, to: (from + 1 + int32(rng.IntN(3))) % 4})
	}
	cut := lworld{}
	order := []string{"c", "b"}
	rng.Shuffle(2, func(i, j int) { order[i], order[j] = order[j], order[i] })
	fenceAt, fence, snapshots := rng.IntN(16), false, 0
	for now := int64(1); ; now++ {
		var actions []func()
		busy := false
		for _, t := range ts {
			busy = busy || !t.done
		}
		if snapshots < 2 && (int(now) > fenceAt || !busy) {
			fence = fenced // up from the cut's start to its last snapshot
			actions = append(actions, func() {
				cut[order[snapshots]] = maps.Clone(w[order[snapshots]])
				snapshots++
				fence = fence && snapshots < 2
			})
		}
		for _, t := range ts {
			if !t.done && !(fence && t.decidesNext()) {
				actions = append(actions, func() { t.step(w, now) })
			}
		}
		for id := range int32(4) {
			store, key := accountPlace(id)
			if MetaOf(w[store][key]).Pending() {
				actions = append(actions, func() { recoverOne(w, store, key, fence, now) })
			}
		}
		if len(actions) == 0 || !busy && snapshots == 2 {
			break
		}
		actions[rng.IntN(len(actions))]()
	}
	return settled(w), settled(cut)
}

func TestModelLocalDecisionCuts(t *testing.T) {
	broken := 0
	for seed := range uint64(5000) {
		for _, fenced := range []bool{true, false} {
			final, atCut := localSchedule(seed, fenced)
			switch {
			case final != nil:
				t.Fatalf("seed %d (fenced %v): the final state: %v", seed, fenced, final)
			case fenced && atCut != nil:
				t.Fatalf("seed %d: a fenced cut: %v", seed, atCut)
			case atCut != nil:
				broken++
			}
		}
	}
	t.Logf("%d of 5000 unfenced cuts broke an invariant", broken)
	if broken == 0 {
		t.Fatal("no cut without the fence broke an invariant: the model cannot tell a cut from no cut")
	}
}
