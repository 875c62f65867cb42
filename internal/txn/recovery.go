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
		err := m.store.Put(ctx, consensus.CoordinatorPut(meta.TxID, consensus.Aborted, m.millis()))
		if err != nil && !errors.Is(err, storage.ErrNoMutation) {
			return action, err
		}
		// Whoever decided first, the row now says what happened.
		if decision, err = m.decision(ctx, meta.TxID); err != nil {
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

// Recovery says what lazy recovery would do now about a stored record,
// given its transaction's decision (0: none), without doing it.
func (m *Manager) Recovery(stored storage.Record, decision consensus.State) consensus.Recovery {
	return consensus.Recover(stored, decision, m.millis(), m.lifetime.Milliseconds())
}

// Decision reads the coordinator's decision for a transaction (0: none).
func (m *Manager) decision(ctx context.Context, txID string) (consensus.State, error) {
	row, err := m.store.Get(ctx, consensus.CoordinatorGet(txID))
	if err != nil {
		return 0, err
	}
	return consensus.DecisionOf(row), nil
}
