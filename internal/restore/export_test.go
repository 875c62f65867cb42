package restore

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
