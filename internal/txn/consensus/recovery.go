package consensus

import "github.com/stillpoint/stillpoint/internal/storage"

// Recovery is what a reader must do about a pending record it met.
type Recovery int

const (
	// Leave: the writer may still be deciding; do nothing yet.
	Leave Recovery = iota + 1
	// RollForward: the coordinator says COMMITTED.
	RollForward
	// RollBack: the coordinator says ABORTED.
	RollBack
	// AbortExpired: no decision and the write outlived the transaction
	// lifetime: insert ABORTED for it, then read the decision again (the
	// writer may have won the race to decide).
	AbortExpired
	// Nothing: the record is not pending.
	Nothing
)

func (r Recovery) String() string {
	return [...]string{"?", "leave", "roll forward", "roll back", "abort expired", "nothing"}[r]
}

// NoLifetime is the lifetime when no writer can be alive (after a
// restore): every write prepared up to now has expired.
const NoLifetime = -1

// Recover decides what to do about a stored record given the coordinator's
// decision for its transaction (0 when there is no row). now and lifetime
// are in milliseconds: the only clock in the protocol, and only used to
// tell an abandoned write from a slow one. A write expires once now is
// past prepared_at + lifetime, as in ScalarDB (RecoveryHandler,
// v3.4.9 to v3.19.0: current > prepared_at + TRANSACTION_LIFETIME_MILLIS).
func Recover(stored storage.Record, decision State, now, lifetime int64) Recovery {
	m := MetaOf(stored)
	if !m.Pending() {
		return Nothing
	}
	switch decision {
	case Committed:
		return RollForward
	case Aborted:
		return RollBack
	}
	if now-m.PreparedAt > lifetime {
		return AbortExpired
	}
	return Leave
}

// RecoveryMutation is the write that carries out a roll forward or back of
// a stored pending record.
func RecoveryMutation(ref Ref, stored storage.Record, r Recovery, now int64) storage.Mutation {
	m := MetaOf(stored)
	if r == RollForward {
		return CommitRecord(ref, m.TxID, m.State, now)
	}
	return RollbackRecord(ref, stored)
}
