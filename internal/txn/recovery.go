package txn

import (
	"context"
	"errors"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// RecoverRecord settles a pending record the way lazy recovery does: roll
// it forward if its transaction committed, back if it aborted, and abort
// it first if it is older than the lifetime with no decision. It returns
// what it did (consensus.Leave when the writer may still be deciding).
func (m *Manager) RecoverRecord(ctx context.Context, ref consensus.Ref, stored storage.Record) (consensus.Recovery, error) {
	meta := consensus.MetaOf(stored)
	decision, err := m.decision(ctx, meta.TxID)
	if err != nil {
		return 0, err
	}
	action := m.Recovery(stored, decision)
	if action == consensus.AbortExpired {
		if decision, err = m.abort(ctx, meta.TxID); err != nil {
			return action, err
		}
		action = m.Recovery(stored, decision)
	}
	if action != consensus.RollForward && action != consensus.RollBack {
		return action, nil
	}
	err = m.store.Mutate(ctx, []storage.Mutation{consensus.RecoveryMutation(ref, stored, action, m.millis())})
	if errors.Is(err, storage.ErrNoMutation) { // another reader got there first
		err = nil
	}
	return action, err
}

// abort decides ABORTED for an expired transaction with the inserts
// ScalarDB makes, in its order, and returns the decision the coordinator
// then holds: whoever decided first, the rows now say what happened.
func (m *Manager) abort(ctx context.Context, txID string) (consensus.State, error) {
	for _, put := range consensus.AbortPuts(txID, m.millis()) {
		err := m.store.Put(ctx, put)
		if err == nil {
			continue
		}
		if !errors.Is(err, storage.ErrNoMutation) {
			return 0, err
		}
		// The row exists: the writer decided first, or a group holds the
		// parent id. Stop if the rows decide now, as ScalarDB does.
		if d, err := m.decision(ctx, txID); err != nil || d != 0 {
			return d, err
		}
	}
	return m.decision(ctx, txID)
}

// Settled counts the records lazy recovery settled.
type Settled struct {
	RolledForward int `json:"rolled_forward"`
	RolledBack    int `json:"rolled_back"`
}

// Add counts what RecoverRecord did to one record.
func (s *Settled) Add(r consensus.Recovery) {
	switch r {
	case consensus.RollForward:
		s.RolledForward++
	case consensus.RollBack:
		s.RolledBack++
	}
}

// Recovery says what lazy recovery would do now about a stored record,
// given its transaction's decision (0: none), without doing it.
func (m *Manager) Recovery(stored storage.Record, decision consensus.State) consensus.Recovery {
	return consensus.Recover(stored, decision, m.millis(), m.lifetime.Milliseconds())
}

// decision reads the coordinator's decision for a transaction (0: none),
// reading the rows consensus.DecisionKeys names until they decide.
func (m *Manager) decision(ctx context.Context, txID string) (consensus.State, error) {
	rows := map[string]consensus.CoordinatorRow{}
	for _, k := range consensus.DecisionKeys(txID) {
		rec, err := m.store.Get(ctx, consensus.CoordinatorGet(k))
		if err != nil {
			return 0, err
		}
		if row, ok := consensus.CoordinatorRowOf(rec); ok {
			rows[k] = row
		}
		if d := consensus.Decide(txID, rows); d != 0 {
			return d, nil
		}
	}
	return 0, nil
}
