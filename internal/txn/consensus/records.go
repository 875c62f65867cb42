// Package consensus is the Consensus Commit protocol as a pure state
// machine: it says which conditional writes and reads a transaction, or a
// reader recovering someone else's transaction, must perform, and it learns
// their outcomes. It performs no I/O, reads no clock and starts no
// goroutine, so every transition is tested, and model-checked, without a
// database. Package txn drives it against real stores.
package consensus

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// State is a record's or a transaction's state (DESIGN.md section 2).
type State int32

const (
	Prepared  State = 1
	Deleted   State = 2
	Committed State = 3
	Aborted   State = 4
	Unknown   State = 5
)

func (s State) String() string {
	switch s {
	case Prepared:
		return "PREPARED"
	case Deleted:
		return "DELETED"
	case Committed:
		return "COMMITTED"
	case Aborted:
		return "ABORTED"
	case Unknown:
		return "UNKNOWN"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Meta is the transaction metadata of a stored record.
type Meta struct {
	TxID        string // "" when NULL: imported data, deemed committed
	State       State  // Committed when NULL
	Version     int32
	PreparedAt  int64 // milliseconds since the epoch
	CommittedAt int64
}

// MetaOf reads a record's transaction metadata.
func MetaOf(r storage.Record) Meta {
	m := Meta{State: Committed}
	if v, ok := r[schema.TxID].(string); ok {
		m.TxID = v
	}
	if v, ok := r[schema.TxState].(int32); ok {
		m.State = State(v)
	}
	if v, ok := r[schema.TxVersion].(int32); ok {
		m.Version = v
	}
	if v, ok := r[schema.TxPreparedAt].(int64); ok {
		m.PreparedAt = v
	}
	if v, ok := r[schema.TxCommittedAt].(int64); ok {
		m.CommittedAt = v
	}
	return m
}

// Pending reports whether a record holds an undecided write.
func (m Meta) Pending() bool { return m.State == Prepared || m.State == Deleted }

// Ref names one record: its table and full primary key.
type Ref struct {
	Table *storage.TableMetadata
	Key   storage.Key
}

// Get reads the record, every column.
func (r Ref) Get() storage.Get {
	return storage.Get{Namespace: r.Table.Namespace, Table: r.Table.Table, Key: r.Key}
}

// ID is a stable string identity of the record, used as a map key.
func (r Ref) ID() string {
	var b strings.Builder
	b.WriteString(r.Table.FullName())
	for _, c := range r.Table.KeyColumns() {
		s := encodeValue(r.Key[c])
		b.WriteString("|")
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteString(":")
		b.WriteString(s)
	}
	return b.String()
}

func encodeValue(v any) string {
	switch x := v.(type) {
	case []byte:
		return "x" + hex.EncodeToString(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// KeyOf extracts the primary key of a record.
func KeyOf(t *storage.TableMetadata, r storage.Record) storage.Key {
	k := storage.Key{}
	for _, c := range t.KeyColumns() {
		k[c] = r[c]
	}
	return k
}

// UserValues keeps only the table's own columns of a record.
func UserValues(t *storage.TableMetadata, r storage.Record) storage.Record {
	out := storage.Record{}
	for _, c := range schema.UserColumns(t) {
		if v, ok := r[c.Name]; ok {
			out[c.Name] = v
		}
	}
	return out
}

func withKey(ref Ref, values storage.Record) storage.Record {
	out := storage.Record{}
	for k, v := range ref.Key {
		out[k] = v
	}
	for k, v := range values {
		out[k] = v
	}
	return out
}

func ifTxIs(id string, states ...State) storage.Condition {
	exprs := []storage.Expr{{Column: schema.TxID, Op: storage.EQ, Value: id}}
	if len(states) == 1 {
		exprs = append(exprs, storage.Expr{Column: schema.TxState, Op: storage.EQ, Value: int32(states[0])})
	}
	return storage.Condition{Kind: storage.PutIf, Exprs: exprs}
}

func deleteIfTxIs(id string, state State) storage.Condition {
	c := ifTxIs(id, state)
	c.Kind = storage.DeleteIf
	return c
}

// CommitRecord rolls a pending record of transaction id forward: a
// prepared write becomes COMMITTED, a prepared delete removes the record.
func CommitRecord(ref Ref, id string, state State, now int64) storage.Mutation {
	if state == Deleted {
		return storage.Delete{Namespace: ref.Table.Namespace, Table: ref.Table.Table, Key: ref.Key, Condition: deleteIfTxIs(id, Deleted)}
	}
	return storage.Put{
		Namespace: ref.Table.Namespace, Table: ref.Table.Table,
		Values:    withKey(ref, storage.Record{schema.TxState: int32(Committed), schema.TxCommittedAt: now}),
		Condition: ifTxIs(id, Prepared),
	}
}

// RollbackRecord restores a pending record of transaction id from its
// before image, or removes it when it had none (it was an insert). Any
// reader can compose it from the stored record alone. The before image is
// cleared in the same write, as ScalarDB 3.16+ does (3.4 to 3.15 leave it;
// nothing reads the before image of a committed record).
func RollbackRecord(ref Ref, stored storage.Record) storage.Mutation {
	m := MetaOf(stored)
	if !HasBeforeImage(stored) {
		return storage.Delete{Namespace: ref.Table.Namespace, Table: ref.Table.Table, Key: ref.Key, Condition: deleteIfTxIs(m.TxID, m.State)}
	}
	values := storage.Record{}
	for _, c := range ref.Table.NonKeyColumns() {
		if strings.HasPrefix(c.Name, schema.BeforePrefix) && schema.IsReserved(ref.Table, c.Name) {
			values[c.Name] = nil
			continue
		}
		values[c.Name] = stored[schema.BeforePrefix+c.Name]
	}
	// before_tx_version 0 stands for a NULL tx_version (see PrepareMutations).
	if v, ok := values[schema.TxVersion].(int32); ok && v == 0 {
		values[schema.TxVersion] = nil
	}
	return storage.Put{Namespace: ref.Table.Namespace, Table: ref.Table.Table, Values: withKey(ref, values), Condition: ifTxIs(m.TxID, m.State)}
}

// HasBeforeImage reports whether a pending record carries a before image,
// by ScalarDB 3.10+'s rule (TransactionResult.hasBeforeImage, v3.10.0 to
// v3.19.0): before_tx_id or before_tx_version is not NULL. A prepare over
// a row with NULL metadata writes before_tx_version = 0 (PrepareMutations)
// so that the row is restored, not taken for an insert. Every decision
// between restoring and deleting (lazy recovery, verify, restore) is this one.
func HasBeforeImage(stored storage.Record) bool {
	return stored[schema.BeforePrefix+schema.TxID] != nil || stored[schema.BeforePrefix+schema.TxVersion] != nil
}
