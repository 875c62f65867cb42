package consensus

import (
	"slices"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// Isolation is a transaction's isolation level.
type Isolation int

const (
	// Snapshot isolation: reads see committed records; write-write
	// conflicts abort. Write skew is possible.
	Snapshot Isolation = iota
	// Serializable adds validation: the read set is read again and the
	// scans run again before the commit decision; any change aborts.
	Serializable
)

func (i Isolation) String() string {
	if i == Serializable {
		return "SERIALIZABLE"
	}
	return "SNAPSHOT"
}

// read is a record as the transaction saw it (nil Stored: absent).
type read struct {
	Ref    Ref
	Stored storage.Record
}

// write is a buffered write (nil Values and Delete: a delete).
type write struct {
	Ref    Ref
	Values storage.Record // user non-key columns to set
	Delete bool
}

// scan is a scan the transaction ran and the records it saw.
type scan struct {
	Scan storage.Scan
	Seen []seen // in result order
}

// seen is a scanned record: its identity and the transaction that wrote it.
type seen struct{ ID, TxID string }

// Tx is a transaction's view: what it read and what it will write.
type Tx struct {
	ID        string
	Isolation Isolation
	reads     map[string]read
	writes    map[string]write
	order     []string // write order, so mutations come out deterministically
	scans     []scan
}

// NewTx starts an empty transaction.
func NewTx(id string, iso Isolation) *Tx {
	return &Tx{ID: id, Isolation: iso, reads: map[string]read{}, writes: map[string]write{}}
}

// Read records that ref was read as stored (nil: absent). Only the first
// read counts: validation compares against it.
func (t *Tx) Read(ref Ref, stored storage.Record) {
	if _, ok := t.reads[ref.ID()]; !ok {
		t.reads[ref.ID()] = read{Ref: ref, Stored: stored}
	}
}

// HasRead reports whether ref is in the read set.
func (t *Tx) HasRead(ref Ref) bool { _, ok := t.reads[ref.ID()]; return ok }

// RecordScan records a scan and what it returned, for validation.
func (t *Tx) RecordScan(s storage.Scan, tbl *storage.TableMetadata, results []storage.Record) {
	t.scans = append(t.scans, scan{Scan: s, Seen: seenOf(tbl, results)})
}

func seenOf(tbl *storage.TableMetadata, results []storage.Record) []seen {
	out := make([]seen, len(results))
	for i, r := range results {
		out[i] = seen{ID: Ref{Table: tbl, Key: KeyOf(tbl, r)}.ID(), TxID: MetaOf(r).TxID}
	}
	return out
}

// Put buffers a write of some user columns.
func (t *Tx) Put(ref Ref, values storage.Record) {
	id := ref.ID()
	w, ok := t.writes[id]
	if !ok {
		t.order = append(t.order, id)
		w = write{Ref: ref, Values: storage.Record{}}
	}
	if w.Delete {
		w.Delete, w.Values = false, storage.Record{}
	}
	for k, v := range values {
		w.Values[k] = v
	}
	t.writes[id] = w
}

// Delete buffers a delete.
func (t *Tx) Delete(ref Ref) {
	id := ref.ID()
	if _, ok := t.writes[id]; !ok {
		t.order = append(t.order, id)
	}
	t.writes[id] = write{Ref: ref, Delete: true}
}

// Written returns the buffered write of ref: its values, whether it is a
// delete, and whether there is one.
func (t *Tx) Written(ref Ref) (values storage.Record, deleted, ok bool) {
	w, ok := t.writes[ref.ID()]
	return w.Values, w.Delete, ok
}

// Stored returns what the transaction read of ref.
func (t *Tx) Stored(ref Ref) (storage.Record, bool) {
	r, ok := t.reads[ref.ID()]
	return r.Stored, ok
}

// Writes lists the records written, in write order.
func (t *Tx) Writes() []Ref {
	refs := make([]Ref, len(t.order))
	for i, id := range t.order {
		refs[i] = t.writes[id].Ref
	}
	return refs
}

// ReadOnly reports whether the transaction writes nothing.
func (t *Tx) ReadOnly() bool { return len(t.writes) == 0 }

// Unread lists written records the transaction has not read: they must be
// read before prepare, whose condition is "still as read".
func (t *Tx) Unread() []Ref {
	var out []Ref
	for _, id := range t.order {
		if _, ok := t.reads[id]; !ok {
			out = append(out, t.writes[id].Ref)
		}
	}
	return out
}

// PrepareMutations composes, for each write, the conditional write that
// prepares it: new values, this transaction's id, PREPARED or DELETED,
// version+1, and the committed image it replaces copied into before_*.
// The condition is that the record is still what was read. now is in
// milliseconds since the epoch.
func (t *Tx) PrepareMutations(now int64) []storage.Mutation { return t.prepareOf(t.order, now) }

func (t *Tx) prepareOf(ids []string, now int64) []storage.Mutation {
	out := make([]storage.Mutation, 0, len(ids))
	for _, id := range ids {
		out = append(out, t.prepare(id, Prepared, now))
	}
	return out
}

// prepare is the prepare of write id, leaving the record in state (of a
// put: PREPARED, or COMMITTED when it is written committed at once).
func (t *Tx) prepare(id string, state State, now int64) storage.Put {
	w := t.writes[id]
	stored := t.reads[id].Stored
	values := storage.Record{}
	if w.Delete {
		state = Deleted
	} else {
		for k, v := range w.Values {
			values[k] = v
		}
	}
	cond := storage.Condition{Kind: storage.PutIfNotExists}
	version := int32(1)
	if stored != nil {
		m := MetaOf(stored)
		version = m.Version + 1
		cond = storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{{Column: schema.TxID, Op: storage.EQ, Value: m.TxID}}}
		if m.TxID == "" {
			cond.Exprs[0] = storage.Expr{Column: schema.TxID, Op: storage.IsNull}
		}
		for _, c := range schema.UserColumns(w.Ref.Table) {
			if !w.Ref.Table.IsKey(c.Name) {
				values[schema.BeforePrefix+c.Name] = stored[c.Name]
			}
		}
		for _, c := range schema.TxColumns {
			values[schema.BeforePrefix+c.Name] = stored[c.Name]
		}
		// A row with NULL metadata (imported, deemed committed) gets
		// before_tx_version 0, as ScalarDB 3.10+ writes it
		// (PrepareMutationComposer.createBeforeColumns): with before_tx_id
		// NULL too, a reader would otherwise take it for an insert and
		// delete it on rollback (HasBeforeImage).
		if stored[schema.TxVersion] == nil {
			values[schema.BeforePrefix+schema.TxVersion] = int32(0)
		}
	}
	values[schema.TxID] = t.ID
	values[schema.TxState] = int32(state)
	values[schema.TxVersion] = version
	values[schema.TxPreparedAt] = now
	values[schema.TxCommittedAt] = nil
	if state == Committed {
		values[schema.TxCommittedAt] = now
	}
	return storage.Put{
		Namespace: w.Ref.Table.Namespace, Table: w.Ref.Table.Table,
		Values: withKey(w.Ref, values), Condition: cond,
	}
}

// committedOf writes records straight to the layer a prepare then a
// commit would leave, under the prepare's condition (the record is still
// as read): a put as its prepare with COMMITTED and committed_at; a delete
// of a record read as a delete on the same condition; a delete of a record
// read as absent as its prepare and its commit, so that it still fails if
// the record appeared. All must be applied in one local transaction.
func (t *Tx) committedOf(ids []string, now int64) []storage.Mutation {
	out := make([]storage.Mutation, 0, len(ids))
	for _, id := range ids {
		w := t.writes[id]
		p := t.prepare(id, Committed, now)
		switch {
		case !w.Delete:
			out = append(out, p)
		case t.reads[id].Stored == nil:
			out = append(out, p, CommitRecord(w.Ref, t.ID, Deleted, now))
		default:
			out = append(out, storage.Delete{Namespace: p.Namespace, Table: p.Table, Key: w.Ref.Key,
				Condition: storage.Condition{Kind: storage.DeleteIf, Exprs: p.Condition.Exprs}})
		}
	}
	return out
}

// CommitMutations roll this transaction's prepared records forward.
func (t *Tx) CommitMutations(now int64) []storage.Mutation { return t.commitOf(t.order, now) }

func (t *Tx) commitOf(ids []string, now int64) []storage.Mutation {
	out := make([]storage.Mutation, 0, len(ids))
	for _, id := range ids {
		w := t.writes[id]
		state := Prepared
		if w.Delete {
			state = Deleted
		}
		out = append(out, CommitRecord(w.Ref, t.ID, state, now))
	}
	return out
}

// RollbackMutations put back exactly what the transaction read, on the
// records it managed to prepare (the condition skips the others).
func (t *Tx) RollbackMutations() []storage.Mutation { return t.rollbackOf(t.order) }

func (t *Tx) rollbackOf(ids []string) []storage.Mutation {
	out := make([]storage.Mutation, 0, len(ids))
	for _, id := range ids {
		w := t.writes[id]
		stored := t.reads[id].Stored
		tbl := w.Ref.Table
		if stored == nil {
			out = append(out, storage.Delete{Namespace: tbl.Namespace, Table: tbl.Table, Key: w.Ref.Key,
				Condition: storage.Condition{Kind: storage.DeleteIf, Exprs: []storage.Expr{{Column: schema.TxID, Op: storage.EQ, Value: t.ID}}}})
			continue
		}
		values := storage.Record{}
		for _, c := range tbl.NonKeyColumns() {
			values[c.Name] = stored[c.Name]
		}
		out = append(out, storage.Put{Namespace: tbl.Namespace, Table: tbl.Table, Values: withKey(w.Ref, values),
			Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{{Column: schema.TxID, Op: storage.EQ, Value: t.ID}}}})
	}
	return out
}

// NeedsValidation reports whether commit must validate: SERIALIZABLE
// with a record read but not written, or a scan.
func (t *Tx) NeedsValidation() bool {
	return t.Isolation == Serializable && (len(t.ValidationReads()) > 0 || len(t.scans) > 0)
}

// ValidationReads lists the records whose reads validation must repeat:
// those read but not written (a written record is guarded by its prepare).
func (t *Tx) ValidationReads() []Ref {
	var out []Ref
	for id, r := range t.reads {
		if _, written := t.writes[id]; !written {
			out = append(out, r.Ref)
		}
	}
	slices.SortFunc(out, func(a, b Ref) int {
		if a.ID() < b.ID() {
			return -1
		}
		return 1
	})
	return out
}

// Unchanged reports whether a record read again at validation is still the
// one first read: same writer, same state.
func (t *Tx) Unchanged(ref Ref, now storage.Record) bool {
	was := t.reads[ref.ID()].Stored
	if (was == nil) != (now == nil) {
		return false
	}
	if was == nil {
		return true
	}
	a, b := MetaOf(was), MetaOf(now)
	return a.TxID == b.TxID && a.State == b.State && a.Version == b.Version
}

// Scans lists the scans to run again at validation.
func (t *Tx) Scans() []storage.Scan {
	out := make([]storage.Scan, len(t.scans))
	for i, s := range t.scans {
		out[i] = s.Scan
	}
	return out
}

// ScanUnchanged reports whether scan i returns the same records, written by
// the same transactions, as when it first ran. Records this transaction
// wrote itself are guarded by prepare and are not compared.
func (t *Tx) ScanUnchanged(i int, tbl *storage.TableMetadata, results []storage.Record) bool {
	return slices.Equal(t.othersOnly(t.scans[i].Seen), t.othersOnly(seenOf(tbl, results)))
}

func (t *Tx) othersOnly(records []seen) []seen {
	var out []seen
	for _, r := range records {
		if _, own := t.writes[r.ID]; !own {
			out = append(out, r)
		}
	}
	return out
}
