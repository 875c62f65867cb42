package cut

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
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

// Accounts 0 and 1 live in store a, 2 and 3 in store b; accounts 4 to 7,
// opened by moves, alternate the same way.
func accountStore(id int32) string {
	if id%4 < 2 {
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

// transfer is one transaction, advanced one atomic action at a time. A
// move (amount 0) closes account from and adds its balance to account to,
// opening it if it does not exist: a delete and maybe an insert.
type transfer struct {
	id       string
	from, to int32
	amount   int64 // 0: a move
	tx       *consensus.Tx
	c        *consensus.Commit
	queue    []storage.Mutation // the current step's writes still to apply
	firstErr error
	done     bool
	wrote    int // record writes applied
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
		var balance [2]int64
		for i, id := range []int32{t.from, t.to} {
			rec := w[accountStore(id)][fmt.Sprint(id)]
			// A reader meeting a pending record gives up (a conflict),
			// and so does a transfer or a move from a closed account:
			// nothing written.
			if consensus.MetaOf(rec).Pending() || rec == nil && (i == 0 || t.amount > 0) {
				t.done = true
				return
			}
			t.tx.Read(ref(id), rec)
			if rec != nil {
				balance[i] = rec["balance"].(int64)
			}
		}
		moved := t.amount
		if t.amount == 0 {
			moved = balance[0]
			t.tx.Delete(ref(t.from))
		} else {
			t.tx.Put(ref(t.from), storage.Record{"balance": balance[0] - t.amount})
		}
		t.tx.Put(ref(t.to), storage.Record{"balance": balance[1] + moved})
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
			switch err := w.apply(t.queue[0]); {
			case err == nil:
				t.wrote++
			case t.firstErr == nil:
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

// recoverCut settles a cut and sums it up for the bank invariants.
func recoverCut(cut world) (total, versions, committed int64) {
	settle(cut)
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

// settle recovers a cut as verify does after a restore: every pending
// record goes the way its coordinator row says, undecided ones back.
func settle(cut world) {
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
}

// bank opens accounts 0 to 3 with 100 each, committed by "init", and
// draws n transactions between a's and b's accounts; with moves, one in
// three is a move instead of a transfer (to any account, open or not).
func bank(rng *rand.Rand, n int, moves bool) (world, []*transfer) {
	w := world{"a": {}, "b": {}, "c": {}}
	for id := range int32(4) {
		w.apply(storage.Put{Namespace: "bank", Table: "accounts", Values: storage.Record{"id": id, "balance": int64(100),
			schema.TxID: "init", schema.TxState: int32(consensus.Committed), schema.TxVersion: int32(1)}})
	}
	w.apply(consensus.CoordinatorPut("init", consensus.Committed, 0))
	var ts []*transfer
	for i := range n {
		t := &transfer{id: fmt.Sprintf("t%d", i), from: int32(rng.IntN(2)), to: 2 + int32(rng.IntN(2)), amount: int64(1 + rng.IntN(9))}
		if moves && rng.IntN(3) == 0 {
			t.from, t.to, t.amount = int32(rng.IntN(4)), int32(rng.IntN(8)), 0
			if t.to == t.from {
				t.to += 4
			}
		}
		ts = append(ts, t)
	}
	return w, ts
}

// runSchedule plays one random interleaving with a cut in it and reports
// whether the recovered cut keeps both invariants.
func runSchedule(seed uint64, fenced bool) (ok bool, detail string) {
	rng := rand.New(rand.NewPCG(seed, 1))
	w, ts := bank(rng, 4, false)
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

// The model check of docs/no-snapshot-cut.md: stores a and b have no
// snapshot and are read by a key-paged scan, one record per step, from the
// live store, while the transactions keep running. The coordinator's store
// c has one. Each capture, once recovered, must equal the state at the cut
// C (the stores' recovered state at the moment the fence went up, which
// the model can see and a backup cannot), hence keep the bank total.

// capture is a way of reading stores without snapshots for a cut.
type capture int

const (
	// heldFence: the fence goes up at C and holds until every scan has
	// ended; the coordinator is read under it (no-snapshot-cut.md).
	heldFence capture = iota
	// naiveScan: no fence; the coordinator and the stores are each read at
	// their own moments.
	naiveScan
	// resolvedScan: a fence at C only long enough to read the coordinator,
	// then an unfenced scan that turns each record into its value at C
	// (its current layer if decided by C, else its before image) and gives
	// up on a record whose before image was also decided after C.
	resolvedScan
)

func (c capture) String() string { return [...]string{"held fence", "naive scan", "resolved scan"}[c] }

// scanner reads one store as a key-paged scan: each page is the first
// record past the last key read, from the store as it is at that moment.
type scanner struct {
	store string
	last  int32 // -1 before the first page
	done  bool
}

func (s *scanner) next(w world) (id int32, rec storage.Record, ok bool) {
	id = -1
	for k := range w[s.store] {
		var n int32
		fmt.Sscan(k, &n)
		if n > s.last && (id < 0 || n < id) {
			id = n
		}
	}
	if id < 0 {
		s.done = true
		return 0, nil, false
	}
	s.last = id
	return id, maps.Clone(w[s.store][fmt.Sprint(id)]), true
}

// resolveAt is resolvedScan's rule: a scanned record's value at the cut
// whose coordinator table is coord. lost: the before image is no help,
// the record changed twice since C.
func resolveAt(id int32, rec storage.Record, coord memStore) (at storage.Record, lost bool) {
	committed := func(tx any) bool {
		id, ok := tx.(string)
		return ok && consensus.DecisionOf(coord[coordKey+id]) == consensus.Committed
	}
	if rec[schema.TxID] == nil || committed(rec[schema.TxID]) {
		return rec, false
	}
	if b := rec[schema.BeforePrefix+schema.TxID]; b != nil && !committed(b) {
		return nil, true
	}
	one := world{"a": {}, "b": {}, "c": {}}
	one[accountStore(id)][fmt.Sprint(id)] = rec
	if err := one.apply(consensus.RollbackRecord(ref(id), rec)); err != nil {
		panic(err)
	}
	return one[accountStore(id)][fmt.Sprint(id)], false
}

// accounts lists a settled world's accounts as "id:balance@version".
func accounts(w world) map[string]string {
	out := map[string]string{}
	for _, s := range []string{"a", "b"} {
		for k, rec := range w[s] {
			out[k] = fmt.Sprintf("%d@%d", rec["balance"], consensus.MetaOf(rec).Version)
		}
	}
	return out
}

// recoverable lists the accounts a reader's lazy recovery (DESIGN.md
// section 4) can act on now: pending records whose transaction is decided,
// and, unless the fence holds back the ABORTED insert that comes first,
// those of transactions it takes as expired.
func recoverable(w world, fence bool) []int32 {
	var ids []int32
	for _, s := range []string{"a", "b"} {
		for k, rec := range w[s] {
			m := consensus.MetaOf(rec)
			if !m.Pending() || fence && consensus.DecisionOf(w["c"][coordKey+m.TxID]) == 0 {
				continue
			}
			var id int32
			fmt.Sscan(k, &id)
			ids = append(ids, id)
		}
	}
	slices.Sort(ids) // the schedule depends on the seed only
	return ids
}

// recoverOne is that recovery of one account: abort its transaction if
// undecided, then roll the record the decided way. A roll-back clears the
// before image, as ScalarDB 3.16+ does.
func recoverOne(w world, id int32, now int64) {
	rec := w[accountStore(id)][fmt.Sprint(id)]
	m := consensus.MetaOf(rec)
	if consensus.DecisionOf(w["c"][coordKey+m.TxID]) == 0 {
		w.apply(consensus.CoordinatorPut(m.TxID, consensus.Aborted, now))
	}
	action := consensus.Recover(rec, consensus.DecisionOf(w["c"][coordKey+m.TxID]), now, 0)
	if err := w.apply(consensus.RecoveryMutation(ref(id), rec, action, now)); err != nil {
		panic(err)
	}
}

// runScanSchedule plays one random interleaving of six transactions with a
// capture of the stores without snapshots; with recovery, readers recover
// pending records at random moments too. fellBack: the capture detected
// that it could not be exact (the real design then retries or falls back;
// the model does not judge it). overlapped: a record was written while a
// scan was under way.
func runScanSchedule(seed uint64, how capture, moves, recovery bool) (ok, fellBack, overlapped bool, detail string) {
	rng := rand.New(rand.NewPCG(seed, 2))
	w, ts := bank(rng, 6, moves)
	cutAt := rng.IntN(16)
	scans := []*scanner{{store: "a", last: -1}, {store: "b", last: -1}}
	got := world{"a": {}, "b": {}}
	var truth world // the stores at C, as no backup can see them
	fence, started := false, false
	for clock := int64(1); ; clock++ {
		allDone := true
		for _, t := range ts {
			allDone = allDone && t.done
		}
		if !started && (int(clock) > cutAt || allDone) {
			started = true
			if how != naiveScan {
				truth = world{"a": w.snapshot("a"), "b": w.snapshot("b"), "c": w.snapshot("c")}
				got["c"] = w.snapshot("c")
				fence = how == heldFence
			}
		}
		var eligible []func()
		if started && got["c"] == nil {
			eligible = append(eligible, func() { got["c"] = w.snapshot("c") })
		}
		for _, s := range scans {
			if started && !s.done {
				eligible = append(eligible, func() {
					id, rec, ok := s.next(w)
					if ok && how == resolvedScan {
						var lost bool
						if rec, lost = resolveAt(id, rec, got["c"]); lost {
							fellBack = true
						}
					}
					if rec != nil {
						got[s.store][fmt.Sprint(id)] = rec
					}
					if scans[0].done && scans[1].done {
						fence = false
					}
				})
			}
		}
		if ids := recoverable(w, fence); recovery && len(ids) > 0 {
			eligible = append(eligible, func() { recoverOne(w, ids[rng.IntN(len(ids))], clock) })
		}
		for _, t := range ts {
			if !t.done && !(fence && t.nextIsDecision()) {
				eligible = append(eligible, func() {
					wrote := t.wrote
					t.step(w, clock)
					scanning := started && !(scans[0].done && scans[1].done)
					overlapped = overlapped || scanning && t.wrote > wrote
				})
			}
		}
		if len(eligible) == 0 {
			break
		}
		eligible[rng.IntN(len(eligible))]()
	}
	if fellBack {
		return true, true, overlapped, ""
	}
	// Without moves every committed transaction is a transfer writing two
	// versions: the versions restored are those of the transfers decided
	// before C, and only those.
	total, versions, committed := recoverCut(got)
	if total != 400 || !moves && versions != 4+2*committed {
		return false, false, overlapped, fmt.Sprintf("total %d (want 400), versions %d (%d committed transfers)", total, versions, committed)
	}
	if truth != nil {
		settle(truth)
		if want, have := accounts(truth), accounts(got); !maps.Equal(want, have) {
			return false, false, overlapped, fmt.Sprintf("accounts %v, at the cut %v", have, want)
		}
	}
	return true, false, overlapped, ""
}

func TestModelNoSnapshotCapture(t *testing.T) {
	const seeds = 5000
	for _, tc := range []struct {
		how             capture
		moves, recovery bool
		// exact: every schedule recovers to the state at C (or, for
		// resolvedScan, detects that it cannot); else some schedule must
		// not: the negative controls.
		exact bool
	}{
		{heldFence, false, false, true},
		{heldFence, true, true, true},
		{naiveScan, false, false, false},
		{resolvedScan, false, false, true},
		// A roll-back that clears the before image makes a record changed
		// after C look inserted after C.
		{resolvedScan, false, true, false},
		// A committed delete leaves nothing to scan: resolvedScan cannot
		// see that a record it did not find existed at C.
		{resolvedScan, true, false, false},
	} {
		t.Run(fmt.Sprintf("%v moves=%v recovery=%v", tc.how, tc.moves, tc.recovery), func(t *testing.T) {
			broken, fellBack, overlapped := 0, 0, 0
			for seed := range uint64(seeds) {
				ok, fb, ov, detail := runScanSchedule(seed, tc.how, tc.moves, tc.recovery)
				if fb {
					fellBack++
				}
				if ov {
					overlapped++
				}
				if !ok {
					if tc.exact {
						t.Fatalf("seed %d: the capture recovered to an inconsistent state: %s", seed, detail)
					}
					broken++
				}
			}
			t.Logf("%d of %d schedules broken, %d detected they could not be exact, %d wrote records during the scan", broken, seeds, fellBack, overlapped)
			if overlapped < seeds/4 {
				t.Fatalf("only %d of %d schedules wrote records during the scan: the model does not test a scan under load", overlapped, seeds)
			}
			if !tc.exact && broken == 0 {
				t.Fatal("no schedule broke: the model cannot tell this capture from an exact one")
			}
			if tc.how == resolvedScan && tc.exact && (fellBack == 0 || fellBack == seeds) {
				t.Fatalf("%d of %d schedules fell back: the model does not exercise both branches", fellBack, seeds)
			}
		})
	}
}
