package compat

import "fmt"

// Where the outcomes come from (paths under core/src/main/java/com/scalar/db/
// transaction/consensuscommit/ at the era's tag; docs/compat.md has the table).
const (
	ruleCommitted = "a COMMITTED record is never checked against the coordinator (TransactionResult; §7)"
	ruleForward   = "lazy recovery finds COMMITTED and rolls forward: tx_state 3, before_ kept up to 3.15, NULLed from 3.16 (RecoveryHandler, CommitMutationComposer; §9)"
	ruleBack      = "lazy recovery finds ABORTED and rolls back: before_x copied to x, before_ kept up to 3.15, NULLed from 3.16 (RollbackMutationComposer; §9)"
	ruleExpired   = "no coordinator row and older than 15 s: ABORTED is inserted, then rolled back (RecoveryHandler.TRANSACTION_LIFETIME_MILLIS; §9)"
	ruleNoBefore  = "rolled back without a before image: the record is deleted (RollbackMutationComposer; §9)"
	ruleDeleted   = "a DELETED record rolled forward is deleted (CommitMutationComposer; §9)"
	ruleGroup     = "the parent row lists the child: the group's state is the transaction's (Coordinator.getStateForGroupCommit; §6)"
	ruleDelayed   = "a delayed group's row is keyed by the full id (CommitHandlerWithGroupCommit.Emitter.emitDelayedGroup; §6)"
	ruleNotListed = "a parent row that does not list the child is not its state; none by the full id, expired: aborted (Coordinator.getStateForGroupCommit, putStateForLazyRecoveryRollback; §6)"
	ruleOnePhase  = "one-phase commit writes COMMITTED records and no coordinator row (OnePhaseCommitMutationComposer; §7)"
	ruleImported  = "NULL tx_state is deemed committed (TransactionResult, 3.10+; §8)"
	ruleOverNull  = "before_tx_version = 0 marks a before image of a NULL-metadata row: rollback restores the row with NULL metadata, never deletes it (RollbackMutationComposer, 3.10+; §8)"
)

// records writes the records of every state the era can produce, each with
// how ScalarDB settles it.
func (w *writer) records() {
	e := w.f.Era
	key := func(id int) map[string]any { return map[string]any{"id": id} }
	vals := func(id, balance int) map[string]any {
		return map[string]any{"owner": fmt.Sprintf("owner-%d", id), "balance": balance}
	}
	// prepare is what prepare writes over old (nil meta: a new record, or a
	// NULL-metadata one): tx_committed_at is not written, so it keeps the
	// old value (PrepareMutationComposer; §9).
	prepare := func(old *meta, v map[string]any, id string, state int) image {
		m := &meta{id: id, state: state, version: 1, prepared: t0 + 1000}
		if old != nil {
			m.version, m.committed = old.version+1, old.committed
		}
		return image{vals: v, meta: m}
	}
	forward := func(p image) image {
		m := *p.meta
		m.state = stateCommitted
		return image{vals: p.vals, meta: &m}
	}

	// Consensus Commit without extras: every era.
	old := w.committed(vals(1, 100))
	w.write(accounts, key(1), old, nil, settled{"committed", true, old, nil, Committed, ruleCommitted})

	old = w.committed(vals(2, 100))
	id := w.txID()
	w.decide(id, stateCommitted)
	second := image{vals: vals(2, 120), meta: &meta{id: id, state: stateCommitted, version: 2, prepared: t0 + 100, committed: t0 + 105}}
	// Its commit left the before image (3.4 to 3.15) or NULLed it (3.16+).
	before := &old
	if e.ClearBeforeImage {
		before = nil
	}
	w.write(accounts, key(2), second, before, settled{"committed over a committed version", true, second, before, Committed, ruleCommitted})

	for _, c := range []struct {
		n        int
		name     string
		state    int // PREPARED (an update) or DELETED
		decision int // 0: none
	}{
		{3, "prepared update, committed at the coordinator", statePrepared, stateCommitted},
		{4, "prepared update, aborted at the coordinator", statePrepared, stateAborted},
		{5, "prepared update, undecided past the lifetime", statePrepared, 0},
		{8, "deleted, committed at the coordinator", stateDeleted, stateCommitted},
		{9, "deleted, aborted at the coordinator", stateDeleted, stateAborted},
		{10, "deleted, undecided past the lifetime", stateDeleted, 0},
	} {
		old := w.committed(vals(c.n, 100))
		id := w.txID()
		v := vals(c.n, 100+c.n*10)
		if c.state == stateDeleted {
			v = old.vals // a delete keeps the user columns (§9)
		}
		p := prepare(old.meta, v, id, c.state)
		s := settled{name: c.name, present: true, a: old, b: &old, decision: Aborted, rule: ruleBack}
		switch {
		case c.decision == stateCommitted && c.state == stateDeleted:
			s.present, s.decision, s.rule = false, Committed, ruleDeleted
		case c.decision == stateCommitted:
			s.a, s.decision, s.rule = forward(p), Committed, ruleForward
		case c.decision == 0:
			s.rule = ruleExpired
		}
		if c.decision != 0 {
			w.decide(id, c.decision)
		}
		w.write(accounts, key(c.n), p, &old, s)
	}
	for _, c := range []struct {
		n       int
		name    string
		decided bool
	}{{6, "prepared insert, aborted at the coordinator", true}, {7, "prepared insert, undecided past the lifetime", false}} {
		id := w.txID()
		if c.decided {
			w.decide(id, stateAborted)
		}
		w.write(accounts, key(c.n), prepare(nil, vals(c.n, 50), id, statePrepared), nil, settled{c.name, false, image{}, nil, Aborted, ruleNoBefore})
	}
	if e.DeletePlaceholder {
		// A delete of an absent record: a DELETED placeholder, NULL user
		// columns, version 1 (3.9.7+ PrepareMutationComposer; §9).
		p := prepare(nil, map[string]any{"owner": nil, "balance": nil}, w.txID(), stateDeleted)
		w.write(accounts, key(11), p, nil, settled{"deleted placeholder of an absent record, undecided", false, image{}, nil, Aborted, ruleNoBefore})
	}

	// A table with clustering keys, one of them DESC.
	ev := func(day, seq int) map[string]any { return map[string]any{"device": "dev-a", "day": day, "seq": seq} }
	evVals := func(note string) map[string]any {
		return map[string]any{"reading": 1.5, "ratio": 0.25, "note": note, "raw": []byte{0, 1, 0xfe}, "flag": true}
	}
	old = w.committed(evVals("first"))
	w.write(events, ev(1, 10), old, nil, settled{"committed (clustering keys)", true, old, nil, Committed, ruleCommitted})
	for _, c := range []struct {
		seq      int
		name     string
		decision int
	}{{9, "prepared update, committed (clustering keys)", stateCommitted}, {8, "prepared update, undecided (clustering keys)", 0}} {
		old := w.committed(evVals("first"))
		p := prepare(old.meta, evVals("second"), w.txID(), statePrepared)
		s := settled{c.name, true, old, &old, Aborted, ruleExpired}
		if c.decision != 0 {
			w.decide(p.meta.id, c.decision)
			s.a, s.decision, s.rule = forward(p), Committed, ruleForward
		}
		w.write(events, ev(1, c.seq), p, &old, s)
	}

	if e.GroupCommit {
		w.groupCommit(key, vals, prepare, forward)
	}
	if e.OnePhase {
		id := w.txID()
		a := image{vals: vals(40, 40), meta: &meta{id: id, state: stateCommitted, version: 1, prepared: t0 + 2000, committed: t0 + 2000}}
		w.write(accounts, key(40), a, nil, settled{"one-phase insert, no coordinator row", true, a, nil, NoDecision, ruleOnePhase})
		// Over an existing record, with a group-commit id (the slot is
		// cancelled; CommitHandlerWithGroupCommit.onePhaseCommitRecords):
		// before_ NULL, version +1.
		a = image{vals: vals(41, 141), meta: &meta{id: w.groupID(parentID(5)), state: stateCommitted, version: 2, prepared: t0 + 2000, committed: t0 + 2000}}
		w.write(accounts, key(41), a, nil, settled{"one-phase update with a group-commit id, no coordinator row", true, a, nil, NoDecision, ruleOnePhase})
	}
	if e.Imported {
		w.imported(prepare, forward)
	}
}

// parentID is a 24-character group-commit parent id ([0-9A-Za-z], §6).
func parentID(n int) string { return fmt.Sprintf("Grp%021d", n) }

// groupCommit writes records of group-commit transactions (3.13+, §6).
func (w *writer) groupCommit(key func(int) map[string]any, vals func(int, int) map[string]any,
	prepare func(*meta, map[string]any, string, int) image, forward func(image) image) {
	child := func(full string) string { _, c := parentOf(full); return c }
	p1 := parentID(1)
	// Two members of a normal group: the parent row lists both children.
	old := w.committed(vals(30, 100))
	upd := prepare(old.meta, vals(30, 130), w.groupID(p1), statePrepared)
	w.write(accounts, key(30), upd, &old, settled{"group member update, group committed", true, forward(upd), &old, Committed, ruleGroup})
	ins := prepare(nil, vals(31, 31), w.groupID(p1), statePrepared)
	w.write(accounts, key(31), ins, nil, settled{"group member insert, group committed", true, forward(ins), nil, Committed, ruleGroup})
	w.coord[p1] = coordRow{state: stateCommitted, children: child(upd.meta.id) + "," + child(ins.meta.id)}

	// A child of that parent the row does not list, undecided.
	old = w.committed(vals(33, 100))
	p := prepare(old.meta, vals(33, 133), w.groupID(p1), statePrepared)
	w.write(accounts, key(33), p, &old, settled{"group child not listed by its parent's COMMITTED row, undecided", true, old, &old, Aborted, ruleNotListed})

	// A delayed group: one row keyed by the full id.
	old = w.committed(vals(32, 100))
	p = prepare(old.meta, vals(32, 132), w.groupID(parentID(2)), statePrepared)
	w.decide(p.meta.id, stateCommitted)
	w.write(accounts, key(32), p, &old, settled{"delayed group, committed under the full id", true, forward(p), &old, Committed, ruleDelayed})

	// Aborted explicitly: an ABORTED row keyed by the full id.
	old = w.committed(vals(34, 100))
	p = prepare(old.meta, vals(34, 134), w.groupID(parentID(3)), statePrepared)
	w.decide(p.meta.id, stateAborted)
	w.write(accounts, key(34), p, &old, settled{"group transaction aborted under the full id", true, old, &old, Aborted, ruleBack})

	// A delayed commit beside a lazy recovery's parent-id ABORTED row with
	// no children, which decides nothing for any child (§6, case C).
	old = w.committed(vals(35, 100))
	p4 := parentID(4)
	p = prepare(old.meta, vals(35, 135), w.groupID(p4), statePrepared)
	w.coord[p4] = coordRow{state: stateAborted}
	w.decide(p.meta.id, stateCommitted)
	w.write(accounts, key(35), p, &old, settled{"delayed commit beside a childless ABORTED parent row", true, forward(p), &old, Committed, ruleDelayed})
}

// imported writes the imported table's rows: NULL metadata, and writes
// prepared over such rows (3.10+, §8).
func (w *writer) imported(prepare func(*meta, map[string]any, string, int) image, forward func(image) image) {
	key := func(id int) map[string]any { return map[string]any{"id": id} }
	row := func(id int) image {
		return image{vals: map[string]any{"note": fmt.Sprintf("legacy-%d", id), "qty": id}}
	}
	imp := row(50)
	w.write(legacy, key(50), imp, nil, settled{"imported row, NULL metadata", true, imp, nil, NoDecision, ruleImported})
	for _, c := range []struct {
		n        int
		name     string
		state    int
		decision int
	}{
		{51, "prepared update over an imported row, aborted", statePrepared, stateAborted},
		{52, "prepared update over an imported row, undecided", statePrepared, 0},
		{53, "prepared update over an imported row, committed", statePrepared, stateCommitted},
		{54, "deleted over an imported row, undecided", stateDeleted, 0},
	} {
		imp := row(c.n)
		v := map[string]any{"note": fmt.Sprintf("changed-%d", c.n), "qty": c.n + 1000}
		if c.state == stateDeleted {
			v = imp.vals
		}
		p := prepare(nil, v, w.txID(), c.state)
		s := settled{c.name, true, imp, &imp, Aborted, ruleOverNull}
		if c.decision != 0 {
			w.decide(p.meta.id, c.decision)
		}
		if c.decision == stateCommitted {
			s.a, s.decision, s.rule = forward(p), Committed, ruleForward
		}
		w.write(legacy, key(c.n), p, &imp, s)
	}
}
