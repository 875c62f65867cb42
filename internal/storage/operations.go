package storage

import (
	"context"
	"fmt"
)

// Record is a row: column name to canonical value (nil is NULL).
type Record map[string]any

// Key holds the values of key columns, by name.
type Key map[string]any

// Get reads one record by its full primary key.
type Get struct {
	Namespace, Table string
	Key              Key
	Projection       []string // empty: every column
}

// Bound is one end of a clustering-key range. Key holds a prefix of the
// clustering key: every column but the last is matched for equality and the
// last one bounds the range by value, as in ScalarDB.
type Bound struct {
	Key       Key
	Inclusive bool
}

// Scan reads records of one partition, optionally within a clustering range.
type Scan struct {
	Namespace, Table string
	Partition        Key
	Start, End       *Bound
	Ordering         []ClusteringKey // empty: the table's clustering order
	Limit            int             // 0: no limit
	Projection       []string
}

// ScanAll reads every record of a table, in no promised order.
type ScanAll struct {
	Namespace, Table string
	Limit            int
	Projection       []string
}

// Op is a comparison in a condition expression.
type Op int

const (
	EQ Op = iota + 1
	NE
	GT
	GTE
	LT
	LTE
	IsNull
	IsNotNull
)

var opNames = map[Op]string{EQ: "EQ", NE: "NE", GT: "GT", GTE: "GTE", LT: "LT", LTE: "LTE", IsNull: "IS_NULL", IsNotNull: "IS_NOT_NULL"}

func (o Op) String() string { return opNames[o] }

// Expr compares a column with a value (Value is ignored by IS_NULL and IS_NOT_NULL).
type Expr struct {
	Column string
	Op     Op
	Value  any
}

// ConditionKind selects how a mutation is guarded.
type ConditionKind int

const (
	Unconditional ConditionKind = iota
	PutIf
	PutIfExists
	PutIfNotExists
	DeleteIf
	DeleteIfExists
)

var conditionNames = map[ConditionKind]string{
	Unconditional: "unconditional", PutIf: "PutIf", PutIfExists: "PutIfExists",
	PutIfNotExists: "PutIfNotExists", DeleteIf: "DeleteIf", DeleteIfExists: "DeleteIfExists",
}

func (k ConditionKind) String() string { return conditionNames[k] }

// Condition guards a mutation. The zero value is unconditional.
type Condition struct {
	Kind  ConditionKind
	Exprs []Expr // for PutIf and DeleteIf: all must hold
}

// Mutation is a Put or a Delete.
type Mutation interface {
	target() (namespace, table string)
}

// Put writes the given columns (which include the full primary key). Columns
// not named keep their value, or are NULL in a new record.
type Put struct {
	Namespace, Table string
	Values           Record
	Condition        Condition
}

// Delete removes a record by its full primary key.
type Delete struct {
	Namespace, Table string
	Key              Key
	Condition        Condition
}

func (p Put) target() (string, string)    { return p.Namespace, p.Table }
func (d Delete) target() (string, string) { return d.Namespace, d.Table }

// Target returns the namespace and table a mutation writes.
func Target(m Mutation) (namespace, table string) { return m.target() }

// CheckCondition rejects a condition that does not fit the mutation kind.
func CheckCondition(m Mutation) error {
	switch m := m.(type) {
	case Put:
		switch m.Condition.Kind {
		case Unconditional, PutIfExists, PutIfNotExists:
			return nil
		case PutIf:
			if len(m.Condition.Exprs) == 0 {
				return fmt.Errorf("PutIf on %s.%s needs at least one expression", m.Namespace, m.Table)
			}
			return nil
		}
		return fmt.Errorf("a Put on %s.%s cannot carry a %v condition", m.Namespace, m.Table, m.Condition.Kind)
	case Delete:
		switch m.Condition.Kind {
		case Unconditional, DeleteIfExists:
			return nil
		case DeleteIf:
			if len(m.Condition.Exprs) == 0 {
				return fmt.Errorf("DeleteIf on %s.%s needs at least one expression", m.Namespace, m.Table)
			}
			return nil
		}
		return fmt.Errorf("a Delete on %s.%s cannot carry a %v condition", m.Namespace, m.Table, m.Condition.Kind)
	}
	return fmt.Errorf("unknown mutation %T", m)
}

// EachMutator is an optional Store interface, checked by type assertion
// (the fallback is one Mutate per partition): MutateEach applies every
// mutation on its own condition, as separate Puts and Deletes would, in as
// few round trips as the engine allows (one on PostgreSQL). errs[i] is nil
// or the error of mutation i, a NoMutationError when its condition failed;
// the others are applied all the same. An error of the whole call (err)
// means any of them may have been applied. docs/performance-transactions.md
// says why the transaction layer wants this rather than all-or-nothing.
type EachMutator interface {
	MutateEach(ctx context.Context, ms []Mutation) (errs []error, err error)
}

// EachGetter is an optional Store interface, checked by type assertion (the
// fallback is one Get each): GetEach reads several records, of any tables of
// the store, in as few round trips as the engine allows (one on
// PostgreSQL); out[i] is the record of gs[i], nil when there is none.
type EachGetter interface {
	GetEach(ctx context.Context, gs []Get) (out []Record, err error)
}

// AtomicMutator is an optional Store interface, checked by type assertion
// (a store without it gets no single-transaction commit path):
// MutateAtomic applies the mutations in one local transaction of the
// store, all or none. ms[0] is applied first and the others follow in the
// order EachMutator's pipelines lock rows in, so that a caller can put
// first what must wait for a lock on its table (the coordinator insert
// under a cut's write fence) before any row is locked, and two calls never
// wait for each other in a cycle. When a condition fails nothing is
// applied and err is a *FailedMutationError naming it. Any other error may
// have come after the commit was sent (a lost connection): the mutations
// may or may not be applied.
type AtomicMutator interface {
	MutateAtomic(ctx context.Context, ms []Mutation) error
}

// FailedMutationError says which mutation of an atomic batch failed its
// condition, so that nothing of the batch was applied.
type FailedMutationError struct {
	Index int // into the batch
	Err   error
}

func (e *FailedMutationError) Error() string {
	return fmt.Sprintf("mutation %d of an atomic batch: %v", e.Index, e.Err)
}

func (e *FailedMutationError) Unwrap() error { return e.Err }
