package cut

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// A model check of DESIGN.md section 5: transfers run the real protocol
// (package consensus) over in-memory stores, one record write at a time,
// in random interleavings, while a cut takes one snapshot per store at its
// own moment. With the coordinator fence held from before the first
// snapshot to after the last, every cut, once recovered, must hold both
// bank invariants. Without the fence, some cut must break them: that
// shows the model can find what it checks for.

var modelTable = schema.Transactional(&storage.TableMetadata{
	Namespace: "bank", Table: "accounts",
	Columns:      []storage.Column{{Name: "id", Type: storage.Int}, {Name: "balance", Type: storage.BigInt}},
	PartitionKey: []string{"id"},
})

// memStore is one store: records by identity.
type memStore map[string]storage.Record

// world is the stores: "a" and "b" hold accounts, "c" the coordinator.
type world map[string]memStore

const coordKey = "coordinator"

func storeOf(m storage.Mutation) string {
	if ns, _ := storage.Target(m); ns == schema.CoordinatorNamespace {
		return "c"
	}
	if p, ok := m.(storage.Put); ok {
		return accountStore(p.Values["id"].(int32))
	}
	return accountStore(m.(storage.Delete).Key["id"].(int32))
}

// Accounts 0 and 1 live in store a, 2 and 3 in store b.
func accountStore(id int32) string {
	if id < 2 {
		return "a"
	}
	return "b"
}

func keyOf(m storage.Mutation) string {
	switch x := m.(type) {
	case storage.Put:
		if ns, _ := storage.Target(m); ns == schema.CoordinatorNamespace {
			return coordKey + x.Values[schema.TxID].(string)
		}
		return fmt.Sprint(x.Values["id"])
	case storage.Delete:
		return fmt.Sprint(x.Key["id"])
	}
	panic("mutation")
}

func holds(rec storage.Record, exprs []storage.Expr) bool {
	for _, e := range exprs {
		v := rec[e.Column]
		switch e.Op {
		case storage.EQ:
			if v == nil || !storage.Equal(v, e.Value) {
				return false
			}
		case storage.IsNull:
			if v != nil {
				return false
			}
		default:
			panic("unmodelled operator " + e.Op.String())
		}
	}
	return true
}

// apply carries out one mutation atomically, as a store does.
func (w world) apply(m storage.Mutation) error {
	s, k := w[storeOf(m)], keyOf(m)
	rec, exists := s[k]
	switch x := m.(type) {
	case storage.Put:
		switch x.Condition.Kind {
		case storage.PutIfNotExists:
			if exists {
				return storage.ErrNoMutation
			}
		case storage.PutIf:
			if !exists || !holds(rec, x.Condition.Exprs) {
				return storage.ErrNoMutation
			}
		}
		next := storage.Record{}
		maps.Copy(next, rec)
		maps.Copy(next, x.Values)
		s[k] = next
	case storage.Delete:
		if x.Condition.Kind == storage.DeleteIf && (!exists || !holds(rec, x.Condition.Exprs)) {
			return storage.ErrNoMutation
		}
		delete(s, k)
	}
	return nil
}

func (w world) snapshot(store string) memStore { return maps.Clone(w[store]) }

// transfer is one transaction, advanced one atomic action at a time.
type transfer struct {
	id       string
	from, to int32
	amount   int64
	tx       *consensus.Tx
	c        *consensus.Commit
	queue    []storage.Mutation // the current step's writes still to apply
	firstErr error
	done     bool
}

func ref(id int32) consensus.Ref { return consensus.Ref{Table: modelTable, Key: storage.Key{"id": id}} }

// next returns whether the transfer's next action writes the coordinator.
func (t *transfer) nextIsDecision() bool {
	return t.c != nil && (t.c.Step() == consensus.StepDecide || t.c.Step() == consensus.StepDecideAbort) && t.queue == nil
}

// step performs one atomic action of the transfer.
func (t *transfer) step(w world, now int64) {
	if t.c == nil { // begin: read both accounts, buffer the writes
		t.tx = consensus.NewTx(t.id, consensus.Snapshot)
		for _, id := range []int32{t.from, t.to} {
			rec := w[accountStore(id)][fmt.Sprint(id)]
			if consensus.MetaOf(rec).Pending() {
				t.done = true // a reader meeting a pending record gives up: a conflict, nothing written
				return
			}
			t.tx.Read(ref(id), rec)
		}
		a := w[accountStore(t.from)][fmt.Sprint(t.from)]["balance"].(int64)
		b := w[accountStore(t.to)][fmt.Sprint(t.to)]["balance"].(int64)
		t.tx.Put(ref(t.from), storage.Record{"balance": a - t.amount})
		t.tx.Put(ref(t.to), storage.Record{"balance": b + t.amount})
		t.c = consensus.NewCommit(t.tx)
		return
	}
	switch t.c.Step() {
	case consensus.StepDecide, consensus.StepDecideAbort:
		t.c.Done(consensus.Result{Err: w.apply(t.c.Decision(now))})
	case consensus.StepCheckDecision:
		t.c.Done(consensus.Result{Decision: consensus.DecisionOf(w["c"][coordKey+t.id])})
	default:
		if t.queue == nil {
			t.queue = t.c.Mutations(now)
			t.firstErr = nil
		}
		if len(t.queue) > 0 {
			if err := w.apply(t.queue[0]); err != nil && t.firstErr == nil {
				t.firstErr = err
			}
			t.queue = t.queue[1:]
		}
		if len(t.queue) == 0 {
			t.queue = nil
			t.c.Done(consensus.Result{Err: t.firstErr})
		}
	}
	t.done = t.c.Step() == consensus.StepDone
}

// recoverCut settles a cut as verify does after a restore: every pending
// record goes the way its coordinator row says, undecided ones back.
func recoverCut(cut world) (total, versions, committed int64) {
	for _, s := range []string{"a", "b"} {
		for k, rec := range cut[s] {
			m := consensus.MetaOf(rec)
			if m.Pending() {
				decision := consensus.DecisionOf(cut["c"][coordKey+m.TxID])
				action := consensus.Recover(rec, decision, 1<<62, 0)
				var id int32
				fmt.Sscan(k, &id)
				mu := consensus.RecoveryMutation(ref(id), rec, action, 1<<62)
				if err := cut.apply(mu); err != nil {
					panic(err)
				}
			}
		}
	}
	for _, s := range []string{"a", "b"} {
		for _, rec := range cut[s] {
			total += rec["balance"].(int64)
			versions += int64(consensus.MetaOf(rec).Version)
		}
	}
	for k, row := range cut["c"] {
		if k != coordKey+"init" && consensus.DecisionOf(row) == consensus.Committed {
			committed++
		}
	}
	return total, versions, committed
}

// runSchedule plays one random interleaving with a cut in it and reports
// whether the recovered cut keeps both invariants.
func runSchedule(seed uint64, fenced bool) (ok bool, detail string) {
	rng := rand.New(rand.NewPCG(seed, 1))
	w := world{"a": {}, "b": {}, "c": {}}
	for id := range int32(4) {
		w.apply(storage.Put{Namespace: "bank", Table: "accounts", Values: storage.Record{"id": id, "balance": int64(100),
			schema.TxID: "init", schema.TxState: int32(consensus.Committed), schema.TxVersion: int32(1)}})
	}
	w.apply(consensus.CoordinatorPut("init", consensus.Committed, 0))
	var ts []*transfer
	for i := range 4 {
		ts = append(ts, &transfer{id: fmt.Sprintf("t%d", i), from: int32(rng.IntN(2)), to: 2 + int32(rng.IntN(2)), amount: int64(1 + rng.IntN(9))})
	}
	cut := world{}
	order := rng.Perm(3) // the order the stores are snapshotted in
	fenceAt := rng.IntN(12)
	fence := false
	snapshots := 0
	for clock := int64(1); ; clock++ {
		allDone := true
		for _, t := range ts {
			allDone = allDone && t.done
		}
		cutting := snapshots < 3 && (int(clock) > fenceAt || allDone)
		if cutting && snapshots == 0 {
			fence = fenced // the fence goes up; snapshots follow
		}
		var eligible []func()
		if cutting {
			eligible = append(eligible, func() {
				s := []string{"a", "b", "c"}[order[snapshots]]
				cut[s] = w.snapshot(s)
				snapshots++
				if snapshots == 3 {
					fence = false
				}
			})
		}
		for _, t := range ts {
			if !t.done && !(fence && t.nextIsDecision()) {
				eligible = append(eligible, func() { t.step(w, clock) })
			}
		}
		if len(eligible) == 0 {
			break
		}
		eligible[rng.IntN(len(eligible))]()
	}
	total, versions, committed := recoverCut(cut)
	if total != 400 || versions != 4+2*committed {
		return false, fmt.Sprintf("total %d (want 400), versions %d (want %d)", total, versions, 4+2*committed)
	}
	return true, ""
}

func TestModelFencedCutsAreConsistent(t *testing.T) {
	for seed := range uint64(20000) {
		if ok, detail := runSchedule(seed, true); !ok {
			t.Fatalf("seed %d: a fenced cut recovered to an inconsistent state: %s", seed, detail)
		}
	}
}

func TestModelFindsUnfencedInconsistency(t *testing.T) {
	broken := 0
	for seed := range uint64(20000) {
		if ok, _ := runSchedule(seed, false); !ok {
			broken++
		}
	}
	t.Logf("%d of 20000 unfenced cuts broke an invariant", broken)
	if broken == 0 {
		t.Fatal("no schedule without the fence broke an invariant: the model cannot tell a cut from no cut")
	}
}
