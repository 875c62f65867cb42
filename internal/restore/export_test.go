package restore

import (
	"context"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// For the tests of package restore_test, which make half states by hand.
const (
	JournalNamespace = journalNamespace
	JournalTable     = journalTable
	WholeItem        = wholeItem
	StateInProgress  = stateInProgress
	StateComplete    = stateComplete
	StateDone        = stateDone
)

var JournalLayout = journalLayout

// JournalState is the state of the whole restore in st's journal ("" if
// there is none).
func JournalState(ctx context.Context, st storage.Store) (string, error) {
	j, err := readJournal(ctx, st)
	return j[wholeItem].state, err
}

// SetMaxNotedPending bounds the pending keys a load notes per table, until
// the test ends.
func SetMaxNotedPending(t interface{ Cleanup(func()) }, n int) {
	old := maxNotedPending
	maxNotedPending = n
	t.Cleanup(func() { maxNotedPending = old })
}
