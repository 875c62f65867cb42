package txn

import (
	"context"
	"errors"
	"fmt"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// Transaction is one Consensus Commit transaction. It is not safe for
// concurrent use.
type Transaction struct {
	m        *Manager
	tx       *consensus.Tx
	finished bool
}

// ID is the transaction's id, the key of its coordinator row.
func (t *Transaction) ID() string { return t.tx.ID }

func (t *Transaction) ref(ctx context.Context, namespace, table string, key storage.Key) (consensus.Ref, error) {
	if t.finished {
		return consensus.Ref{}, ErrFinished
	}
	tbl, err := t.m.Table(ctx, namespace, table)
	if err != nil {
		return consensus.Ref{}, err
	}
	k, err := storage.NormalizeKey(tbl, key, tbl.KeyColumns(), "transactional access")
	if err != nil {
		return consensus.Ref{}, invalid(err)
	}
	return consensus.Ref{Table: tbl, Key: k}, nil
}

// Get reads a record's own columns (nil: no such record), seeing this
// transaction's writes.
func (t *Transaction) Get(ctx context.Context, g storage.Get) (storage.Record, error) {
	ref, err := t.ref(ctx, g.Namespace, g.Table, g.Key)
	if err != nil {
		return nil, err
	}
	if err := storage.CheckProjection(ref.Table, g.Projection); err != nil {
		return nil, invalid(err)
	}
	stored, err := t.read(ctx, ref)
	if err != nil {
		return nil, err
	}
	return project(t.view(ref, stored), g.Projection), nil
}

// GetEach reads several records as Get reads each, in one round trip per
// store where the store allows it (storage.EachGetter). out[i] is the
// record of gs[i], nil when there is none.
func (t *Transaction) GetEach(ctx context.Context, gs []storage.Get) ([]storage.Record, error) {
	refs := make([]consensus.Ref, len(gs))
	for i, g := range gs {
		ref, err := t.ref(ctx, g.Namespace, g.Table, g.Key)
		if err != nil {
			return nil, err
		}
		if err := storage.CheckProjection(ref.Table, g.Projection); err != nil {
			return nil, invalid(err)
		}
		refs[i] = ref
	}
	if err := t.readEach(ctx, refs); err != nil {
		return nil, err
	}
	out := make([]storage.Record, len(gs))
	for i, ref := range refs {
		stored, _ := t.tx.Stored(ref)
		out[i] = project(t.view(ref, stored), gs[i].Projection)
	}
	return out, nil
}

// readEach puts into the read set the records it does not hold yet, read
// together; a record found pending goes through read, which settles it.
func (t *Transaction) readEach(ctx context.Context, refs []consensus.Ref) error {
	var todo []consensus.Ref
	seen := map[string]bool{}
	for _, ref := range refs {
		if !t.tx.HasRead(ref) && !seen[ref.ID()] {
			seen[ref.ID()] = true
			todo = append(todo, ref)
		}
	}
	if len(todo) > 1 {
		recs, err := t.m.getEach(ctx, todo)
		if err != nil {
			return t.storageErr(err)
		}
		for i, ref := range todo {
			if recs[i] == nil || !consensus.MetaOf(recs[i]).Pending() {
				t.tx.Read(ref, recs[i])
			}
		}
	}
	for _, ref := range todo {
		if _, err := t.read(ctx, ref); err != nil {
			return err
		}
	}
	return nil
}

// read returns the committed record as this transaction sees it, reading
// it from the store the first time.
func (t *Transaction) read(ctx context.Context, ref consensus.Ref) (storage.Record, error) {
	if stored, ok := t.tx.Stored(ref); ok {
		return stored, nil
	}
	get := ref.Get()
	stored, err := t.m.store.Get(ctx, get)
	if err != nil {
		return nil, t.storageErr(err)
	}
	if waited, err := t.awaitCommit(ctx, stored); err != nil {
		return nil, err
	} else if waited {
		if stored, err = t.m.store.Get(ctx, get); err != nil {
			return nil, t.storageErr(err)
		}
	}
	if stored != nil && consensus.MetaOf(stored).Pending() {
		return nil, t.pending(ctx, ref, stored)
	}
	t.tx.Read(ref, stored)
	return stored, nil
}

// awaitCommit waits for the asynchronous commit records of the transaction
// that left a record pending, when this manager committed it and they are
// not written yet, and reports whether it waited: the record is then to be
// read again. A client so reads what it committed before (read your
// writes) instead of meeting its own PREPARED records.
func (t *Transaction) awaitCommit(ctx context.Context, stored ...storage.Record) (bool, error) {
	if t.m.async == nil {
		return false, nil
	}
	waited := false
	for _, r := range stored {
		if r == nil || !consensus.MetaOf(r).Pending() {
			continue
		}
		w, err := t.m.async.await(ctx, consensus.MetaOf(r).TxID)
		if err != nil {
			return false, err
		}
		waited = waited || w
	}
	return waited, nil
}

// pending handles a record another transaction left undecided: recover it
// and report a conflict, so the caller retries on the settled record.
func (t *Transaction) pending(ctx context.Context, ref consensus.Ref, stored storage.Record) error {
	meta := consensus.MetaOf(stored)
	action, err := t.m.RecoverRecord(ctx, ref, stored)
	if err != nil {
		t.m.log.Warn("lazy recovery failed", "table", ref.Table.FullName(), "tx", meta.TxID, "err", err)
	}
	return &TxError{TxID: t.tx.ID, Kind: ErrConflict, Cause: fmt.Errorf("%s record of transaction %s in %s (%s)", meta.State, meta.TxID, ref.Table.FullName(), action)}
}

// view is a record as this transaction sees it: the committed image with
// its own buffered write on top.
func (t *Transaction) view(ref consensus.Ref, stored storage.Record) storage.Record {
	values, deleted, written := t.tx.Written(ref)
	if deleted || (!written && stored == nil) {
		return nil
	}
	out := storage.Record{}
	if stored != nil {
		out = consensus.UserValues(ref.Table, stored)
	} else {
		for k, v := range ref.Key {
			out[k] = v
		}
		for _, c := range ref.Table.NonKeyColumns() {
			if !schema.IsReserved(ref.Table, c.Name) {
				out[c.Name] = nil
			}
		}
	}
	for k, v := range values {
		out[k] = v
	}
	return out
}

func project(r storage.Record, cols []string) storage.Record {
	if r == nil || len(cols) == 0 {
		return r
	}
	out := storage.Record{}
	for _, c := range cols {
		out[c] = r[c]
	}
	return out
}

// Scan reads a partition (or a clustering range of it), seeing this
// transaction's writes.
func (t *Transaction) Scan(ctx context.Context, s storage.Scan) ([]storage.Record, error) {
	if t.finished {
		return nil, ErrFinished
	}
	tbl, err := t.m.Table(ctx, s.Namespace, s.Table)
	if err != nil {
		return nil, err
	}
	if err := checkScan(tbl, s); err != nil {
		return nil, invalid(err)
	}
	full := s
	full.Projection = nil
	recs, err := t.m.store.Scan(ctx, full)
	if err != nil {
		return nil, t.storageErr(err)
	}
	if waited, err := t.awaitCommit(ctx, recs...); err != nil {
		return nil, err
	} else if waited {
		if recs, err = t.m.store.Scan(ctx, full); err != nil {
			return nil, t.storageErr(err)
		}
	}
	for _, r := range recs {
		if consensus.MetaOf(r).Pending() {
			return nil, t.pending(ctx, consensus.Ref{Table: tbl, Key: consensus.KeyOf(tbl, r)}, r)
		}
	}
	t.tx.RecordScan(full, tbl, recs)
	var out []storage.Record
	seen := map[string]bool{}
	for _, r := range recs {
		ref := consensus.Ref{Table: tbl, Key: consensus.KeyOf(tbl, r)}
		t.tx.Read(ref, r)
		stored, _ := t.tx.Stored(ref) // the first read wins: repeatable reads
		seen[ref.ID()] = true
		if v := t.view(ref, stored); v != nil {
			out = append(out, project(v, s.Projection))
		}
	}
	// Records this transaction inserted into the scanned range.
	for _, ref := range t.tx.Writes() {
		if seen[ref.ID()] || ref.Table != tbl || !inScan(tbl, s, ref.Key) {
			continue
		}
		if stored, _ := t.tx.Stored(ref); stored == nil {
			if v := t.view(ref, nil); v != nil {
				out = append(out, project(v, s.Projection))
			}
		}
	}
	sortScan(tbl, s, out)
	if s.Limit > 0 && len(out) > s.Limit {
		out = out[:s.Limit]
	}
	return out, nil
}

func checkScan(tbl *storage.TableMetadata, s storage.Scan) error {
	if _, err := storage.NormalizeKey(tbl, s.Partition, tbl.PartitionKey, "scan partition"); err != nil {
		return err
	}
	if _, err := storage.NormalizeBound(tbl, s.Start, "start"); err != nil {
		return err
	}
	if _, err := storage.NormalizeBound(tbl, s.End, "end"); err != nil {
		return err
	}
	if err := storage.CheckOrdering(tbl, s.Ordering); err != nil {
		return err
	}
	return storage.CheckProjection(tbl, s.Projection)
}

// Put buffers a write of the given columns (which include the full key);
// columns not named keep their values. Conditions are not supported in a
// transaction: read the record and decide in the application.
func (t *Transaction) Put(ctx context.Context, p storage.Put) error {
	if p.Condition.Kind != storage.Unconditional {
		return invalid(fmt.Errorf("put into %s.%s: conditions are not supported inside a transaction; read the record and decide", p.Namespace, p.Table))
	}
	tbl, err := t.m.Table(ctx, p.Namespace, p.Table)
	if err != nil {
		return err
	}
	values, err := storage.NormalizeRecord(tbl, p.Values)
	if err != nil {
		return invalid(err)
	}
	for c := range values {
		if schema.IsReserved(tbl, c) {
			return invalid(fmt.Errorf("put into %s: column %q belongs to the transaction layout and cannot be written", tbl.FullName(), c))
		}
	}
	ref, err := t.ref(ctx, p.Namespace, p.Table, consensus.KeyOf(tbl, values))
	if err != nil {
		return err
	}
	for _, k := range tbl.KeyColumns() {
		delete(values, k)
	}
	t.tx.Put(ref, values)
	return nil
}

// Delete buffers a delete.
func (t *Transaction) Delete(ctx context.Context, d storage.Delete) error {
	if d.Condition.Kind != storage.Unconditional {
		return invalid(fmt.Errorf("delete from %s.%s: conditions are not supported inside a transaction", d.Namespace, d.Table))
	}
	ref, err := t.ref(ctx, d.Namespace, d.Table, d.Key)
	if err != nil {
		return err
	}
	t.tx.Delete(ref)
	return nil
}

// Abort discards the transaction. Nothing was written before Commit, so
// nothing needs undoing.
func (t *Transaction) Abort() { t.finished = true }

// Commit runs the protocol: prepare, validate (SERIALIZABLE), decide,
// commit records. It returns nil once the decision COMMITTED is recorded,
// an ErrConflict error if the transaction aborted, and an ErrUnknownStatus
// error if the decision cannot be confirmed either way.
func (t *Transaction) Commit(ctx context.Context) error {
	if t.finished {
		return ErrFinished
	}
	t.finished = true
	// Prepare's condition is "still as read": read what was written blind.
	if err := t.readEach(ctx, t.tx.Unread()); err != nil {
		return t.conflict(err)
	}
	atomic, local := t.m.local(ctx)
	c := consensus.NewCommitLocal(t.tx, local)
	for c.Step() != consensus.StepDone {
		if h := t.m.hooks.crashAt; h != nil {
			if n, crash := h(c.Step()); crash {
				t.crash(ctx, c, atomic, n)
				return errCrashed
			}
		}
		c.Done(t.carryOut(ctx, c, atomic))
	}
	switch c.Outcome() {
	case consensus.OutcomeCommitted:
		return nil
	case consensus.OutcomeUnknown:
		return &TxError{TxID: t.tx.ID, Kind: ErrUnknownStatus, Cause: c.Cause()}
	}
	return t.conflict(c.Cause())
}

func (t *Transaction) conflict(cause error) error {
	var te *TxError
	if errors.As(cause, &te) {
		return te
	}
	return &TxError{TxID: t.tx.ID, Kind: ErrConflict, Cause: cause}
}

func (t *Transaction) carryOut(ctx context.Context, c *consensus.Commit, atomic storage.AtomicMutator) consensus.Result {
	now := t.m.millis()
	switch c.Step() {
	case consensus.StepDecide:
		ms := c.LocalTransaction(now)
		if len(ms) == 1 { // the decision alone
			return consensus.Result{Err: t.m.decide(ctx, ms[0].(storage.Put))}
		}
		// The decision first: a cut's write fence blocks it before any
		// record is locked (docs/performance-transactions.md).
		err := atomic.MutateAtomic(ctx, ms)
		var failed *storage.FailedMutationError
		return consensus.Result{Err: err, LocalConflict: errors.As(err, &failed) && failed.Index > 0}
	case consensus.StepPrepare:
		return consensus.Result{Err: t.m.mutate(ctx, c.Mutations(now))}
	case consensus.StepValidate:
		valid, err := t.validate(ctx)
		return consensus.Result{Valid: valid, Err: err}
	case consensus.StepDecideAbort:
		return consensus.Result{Err: t.m.decide(ctx, c.Decision(now))}
	case consensus.StepCheckDecision:
		d, err := t.m.decision(ctx, t.tx.ID)
		return consensus.Result{Err: err, Decision: d}
	case consensus.StepCommitRecords, consensus.StepRollback:
		if c.Step() == consensus.StepCommitRecords && t.m.async != nil {
			t.m.async.add(t.tx.ID, c.Mutations(now))
			return consensus.Result{}
		}
		// The outcome is decided; a record left behind is lazy recovery's.
		if err := t.m.mutate(ctx, c.Mutations(now)); err != nil && !errors.Is(err, storage.ErrNoMutation) {
			t.m.log.Info("records left for lazy recovery", "tx", t.tx.ID, "step", c.Step(), "err", err)
		}
		return consensus.Result{}
	}
	return consensus.Result{Err: fmt.Errorf("unexpected step %v", c.Step())}
}

// crash applies the first n writes of the current step and stops. The
// decision and the writes that join it are one write: all or none.
func (t *Transaction) crash(ctx context.Context, c *consensus.Commit, atomic storage.AtomicMutator, n int) {
	now := t.m.millis()
	switch c.Step() {
	case consensus.StepDecide, consensus.StepDecideAbort:
		if ms := c.LocalTransaction(now); n > 0 && len(ms) > 1 {
			_ = atomic.MutateAtomic(ctx, ms)
		} else if n > 0 {
			_ = t.m.store.Put(ctx, c.Decision(now))
		}
	default:
		ms := c.Mutations(now)
		for _, mu := range ms[:min(n, len(ms))] {
			_ = t.m.store.Mutate(ctx, []storage.Mutation{mu})
		}
	}
}

func (t *Transaction) validate(ctx context.Context) (bool, error) {
	refs := t.tx.ValidationReads()
	now, err := t.m.getEach(ctx, refs)
	if err != nil {
		return false, err
	}
	for i, ref := range refs {
		if !t.tx.Unchanged(ref, now[i]) {
			return false, nil
		}
	}
	for i, s := range t.tx.Scans() {
		tbl, err := t.m.Table(ctx, s.Namespace, s.Table)
		if err != nil {
			return false, err
		}
		recs, err := t.m.store.Scan(ctx, s)
		if err != nil {
			return false, err
		}
		if !t.tx.ScanUnchanged(i, tbl, recs) {
			return false, nil
		}
	}
	return true, nil
}

func (t *Transaction) storageErr(err error) error {
	if errors.Is(err, storage.ErrRetriable) {
		return &TxError{TxID: t.tx.ID, Kind: ErrConflict, Cause: err}
	}
	return err
}

// inScan reports whether a key lies in a scan's partition and range.
func inScan(tbl *storage.TableMetadata, s storage.Scan, key storage.Key) bool {
	for _, c := range tbl.PartitionKey {
		pv, err := storage.Normalize(mustType(tbl, c), s.Partition[c])
		if err != nil || !storage.Equal(pv, key[c]) {
			return false
		}
	}
	return withinBound(tbl, s.Start, key, 1) && withinBound(tbl, s.End, key, -1)
}

// withinBound checks one end of a range; sign is 1 for a start, -1 for an end.
func withinBound(tbl *storage.TableMetadata, b *storage.Bound, key storage.Key, sign int) bool {
	if b == nil {
		return true
	}
	cols := storage.BoundColumns(tbl, b)
	for i, c := range cols {
		bv, err := storage.Normalize(mustType(tbl, c), b.Key[c])
		if err != nil {
			return false
		}
		cmp := storage.Compare(key[c], bv) * sign
		if i < len(cols)-1 {
			if cmp != 0 {
				return false
			}
			continue
		}
		return cmp > 0 || (cmp == 0 && b.Inclusive)
	}
	return true
}

func mustType(tbl *storage.TableMetadata, c string) storage.DataType {
	t, _ := tbl.ColumnType(c)
	return t
}

// sortScan orders merged scan results as the store would have.
func sortScan(tbl *storage.TableMetadata, s storage.Scan, recs []storage.Record) {
	ordering := s.Ordering
	if len(ordering) == 0 {
		ordering = tbl.ClusteringKey
	}
	storage.SortRecords(recs, ordering)
}
