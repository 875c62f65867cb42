package consensus

import (
	"errors"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Step is what the commit of a transaction needs its driver to do next.
type Step int

const (
	// StepPrepare: apply Mutations (conditional prepares); report any error.
	StepPrepare Step = iota + 1
	// StepValidate: read ValidationReads and re-run Scans; report Valid.
	StepValidate
	// StepDecide: apply Decision (insert COMMITTED); this is the commit
	// point. With LocalMutations, apply the decision first and them after
	// it in one local transaction of the coordinator's store, all or none.
	StepDecide
	// StepCheckDecision: read the coordinator row; report its Decision.
	StepCheckDecision
	// StepDecideAbort: apply Decision (insert ABORTED).
	StepDecideAbort
	// StepCommitRecords: apply Mutations; failures are left to lazy recovery.
	StepCommitRecords
	// StepRollback: apply Mutations; failures are left to lazy recovery.
	StepRollback
	// StepDone: Outcome is final.
	StepDone
)

var stepNames = map[Step]string{
	StepPrepare: "prepare", StepValidate: "validate", StepDecide: "decide", StepCheckDecision: "check decision",
	StepDecideAbort: "decide abort", StepCommitRecords: "commit records", StepRollback: "rollback", StepDone: "done",
}

func (s Step) String() string { return stepNames[s] }

// Outcome is what the client is told.
type Outcome int

const (
	Undecided Outcome = iota
	OutcomeCommitted
	OutcomeAborted
	// OutcomeUnknown: the commit decision may or may not have been recorded;
	// the client must not be told success or failure.
	OutcomeUnknown
)

func (o Outcome) String() string {
	return [...]string{"undecided", "committed", "aborted", "unknown"}[o]
}

// ErrValidation is the cause of an abort by SERIALIZABLE validation.
var ErrValidation = errors.New("validation failed: a record or scan result read by the transaction changed before commit")

// Result is what the driver observed while carrying out a step.
type Result struct {
	Err      error // any failure; errors.Is(Err, storage.ErrNoMutation) for a failed condition
	Valid    bool  // StepValidate: everything read is unchanged
	Decision State // StepCheckDecision: the coordinator row's state, 0 when absent
	// LocalConflict (StepDecide): the local transaction rolled back because
	// the condition of one of LocalMutations failed, so the decision did
	// not land either.
	LocalConflict bool
}

// maxDecisionChecks bounds the decide/check loop when decisions race.
const maxDecisionChecks = 3

// Commit is the commit protocol of one transaction.
type Commit struct {
	tx      *Tx
	step    Step
	outcome Outcome
	cause   error
	// sentCommit: a COMMITTED insert may have landed, so an abort can no
	// longer be assumed.
	sentCommit bool
	checks     int
	// Which writes each step covers, by id: prepared by StepPrepare (and
	// rolled back on abort), written with the decision, committed after it.
	prepared, withDecision, after []string
	// fold: withDecision is written committed at once, not prepared first.
	fold bool
}

// NewCommit starts committing tx: every record prepared, then the
// decision, then the commit records.
func NewCommit(tx *Tx) *Commit { return NewCommitLocal(tx, nil) }

// NewCommitLocal starts committing tx where local tells the records held
// by the coordinator's store, a store that applies writes atomically
// (storage.AtomicMutator; nil: none). Their writes join the decision
// insert in one local transaction of that store, so the decision row
// exists iff they are written. Where no validation is needed they are not
// even prepared: only the other stores' records are, then the local
// transaction writes these straight to their committed layer, on their
// prepare's condition ("last resource"). Otherwise every record is
// prepared and validated, and the local transaction writes their commit
// records. docs/performance-transactions.md has the argument.
func NewCommitLocal(tx *Tx, local func(Ref) bool) *Commit {
	c := &Commit{tx: tx, step: StepPrepare, prepared: tx.order, after: tx.order}
	if local != nil {
		c.after = nil
		for _, id := range tx.order {
			if local(tx.writes[id].Ref) {
				c.withDecision = append(c.withDecision, id)
			} else {
				c.after = append(c.after, id)
			}
		}
		if c.fold = len(c.withDecision) > 0 && !tx.NeedsValidation(); c.fold {
			c.prepared = c.after
		}
	}
	switch {
	case tx.ReadOnly() && tx.Isolation == Serializable:
		c.step = StepValidate
	case tx.ReadOnly():
		c.step, c.outcome = StepDone, OutcomeCommitted
	case len(c.prepared) == 0:
		c.step = StepDecide
	}
	return c
}

// Step is the step to carry out now.
func (c *Commit) Step() Step { return c.step }

// Outcome is final once Step is StepDone.
func (c *Commit) Outcome() Outcome { return c.outcome }

// Cause is why a transaction aborted or its outcome is unknown.
func (c *Commit) Cause() error { return c.cause }

// Mutations are the writes of StepPrepare, StepCommitRecords and StepRollback.
func (c *Commit) Mutations(now int64) []storage.Mutation {
	switch c.step {
	case StepPrepare:
		return c.tx.prepareOf(c.prepared, now)
	case StepCommitRecords:
		return c.tx.commitOf(c.after, now)
	case StepRollback:
		return c.tx.rollbackOf(c.prepared)
	}
	return nil
}

// LocalTransaction is what StepDecide applies in one local transaction
// of the coordinator's store when LocalMutations has any: the decision
// first, then them.
func (c *Commit) LocalTransaction(now int64) []storage.Mutation {
	return append([]storage.Mutation{c.Decision(now)}, c.LocalMutations(now)...)
}

// LocalMutations are the writes that join the decision of StepDecide in
// one local transaction (none: the decision is a single insert).
func (c *Commit) LocalMutations(now int64) []storage.Mutation {
	switch {
	case c.step != StepDecide:
		return nil
	case c.fold:
		return c.tx.committedOf(c.withDecision, now)
	}
	return c.tx.commitOf(c.withDecision, now)
}

// Decision is the coordinator insert of StepDecide and StepDecideAbort.
func (c *Commit) Decision(now int64) storage.Put {
	if c.step == StepDecide {
		return CoordinatorPut(c.tx.ID, Committed, now)
	}
	return CoordinatorPut(c.tx.ID, Aborted, now)
}

// Done reports the result of the current step and moves on.
func (c *Commit) Done(r Result) {
	switch c.step {
	case StepPrepare:
		if r.Err != nil {
			c.abort(r.Err)
			return
		}
		c.step = StepDecide
		if c.tx.Isolation == Serializable && !c.fold {
			c.step = StepValidate
		}
	case StepValidate:
		switch {
		case r.Err != nil:
			c.abort(r.Err)
		case !r.Valid:
			c.abort(ErrValidation)
		case c.tx.ReadOnly():
			c.step, c.outcome = StepDone, OutcomeCommitted
		default:
			c.step = StepDecide
		}
	case StepDecide:
		if r.LocalConflict { // a failed prepare, in effect
			c.abort(r.Err)
			return
		}
		c.sentCommit = true
		if r.Err == nil {
			c.step, c.outcome = StepCommitRecords, OutcomeCommitted
			return
		}
		// Someone decided first (a reader's lazy recovery aborting us), or
		// the insert's fate is unknown: read what was decided.
		c.cause = r.Err
		c.step = StepCheckDecision
	case StepCheckDecision:
		c.checks++
		switch {
		case r.Err != nil:
			c.finish(OutcomeUnknown, r.Err)
		case r.Decision == Committed:
			c.step, c.outcome = StepCommitRecords, OutcomeCommitted
		case r.Decision == Aborted:
			c.step, c.outcome = StepRollback, OutcomeAborted
		case c.checks >= maxDecisionChecks:
			c.finish(OutcomeUnknown, c.cause)
		default:
			// No row: the commit insert did not land. Fix the outcome by
			// deciding abort ourselves.
			c.step = StepDecideAbort
		}
	case StepDecideAbort:
		switch {
		case r.Err == nil:
			c.step, c.outcome = StepRollback, OutcomeAborted
		case errors.Is(r.Err, storage.ErrNoMutation) && c.checks < maxDecisionChecks:
			c.step = StepCheckDecision
		case c.sentCommit:
			c.finish(OutcomeUnknown, r.Err)
		default:
			// Nobody can ever insert COMMITTED for us, so the transaction
			// is aborted; its prepared records wait for lazy recovery.
			c.finish(OutcomeAborted, c.cause)
		}
	case StepCommitRecords, StepRollback:
		c.step = StepDone
	}
}

func (c *Commit) abort(cause error) {
	if c.tx.ReadOnly() { // nothing prepared, nothing to decide
		c.finish(OutcomeAborted, cause)
		return
	}
	c.cause = cause
	c.step = StepDecideAbort
}

func (c *Commit) finish(o Outcome, cause error) {
	c.step, c.outcome = StepDone, o
	if cause != nil {
		c.cause = cause
	}
}
