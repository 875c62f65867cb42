package restore

import (
	"context"
	"fmt"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// settle finishes the cut: every record left PREPARED or DELETED by a
// transaction in flight at the cut is rolled forward if the restored
// coordinator says COMMITTED, and back otherwise (an undecided one is
// aborted first). No writer of the restored stores can exist yet, so no
// lifetime is waited for. Idempotent: a rerun finds only what is left.
func settle(ctx context.Context, st storage.Store, p *plan) (txn.Settled, error) {
	tables := make([]*storage.TableMetadata, len(p.tables))
	pending := map[*storage.TableMetadata][]storage.Key{}
	for i, t := range p.tables {
		tables[i] = &t.backup.Metadata
		if t.pending != nil && !t.pending.overflow {
			pending[tables[i]] = t.pending.keys
		}
	}
	return settleTables(ctx, st, tables, pending)
}

// Settle finishes the cut in tables as a restore does (settle): for a
// point-in-time recovery, which replays each store's log to its cut mark
// and must then settle what was in flight at the mark.
func Settle(ctx context.Context, st storage.Store, tables []*storage.TableMetadata) (txn.Settled, error) {
	return settleTables(ctx, st, tables, nil)
}

// settleTables settles the pending records of tables. The keys of those
// a restore loaded were noted as they streamed past (pendingRows), so
// finishing the cut reads only them; a table not in pending (loaded by an
// earlier run, or replayed by PITR) is scanned for them.
func settleTables(ctx context.Context, st storage.Store, tables []*storage.TableMetadata, pending map[*storage.TableMetadata][]storage.Key) (txn.Settled, error) {
	var out txn.Settled
	m := txn.NewManager(st, txn.Options{Lifetime: -1})
	for _, meta := range tables {
		if !schema.IsTransactional(meta) {
			continue
		}
		keys, known := pending[meta]
		if !known {
			var err error
			if keys, err = scanPending(ctx, st, meta); err != nil {
				return out, fmt.Errorf("restore: finish the cut: %w", err)
			}
		}
		for _, key := range keys {
			ref := consensus.Ref{Table: meta, Key: key}
			full, err := st.Get(ctx, storage.Get{Namespace: meta.Namespace, Table: meta.Table, Key: ref.Key})
			if err != nil {
				return out, fmt.Errorf("restore: finish the cut: %w", err)
			}
			if full == nil || !consensus.MetaOf(full).Pending() {
				continue
			}
			action, err := m.RecoverRecord(ctx, ref, full)
			if err != nil {
				return out, fmt.Errorf("restore: finish the cut: recover %s %s: %w", meta.FullName(), meta.KeyString(ref.Key), err)
			}
			out.Add(action)
			if action == consensus.Leave { // prepared "after" now: the writer's clock is ahead of this host's
				return out, fmt.Errorf("restore: finish the cut: %s %v of transaction %s was prepared later than this host's clock says it is now; fix the clocks and run the restore again",
					meta.FullName(), meta.KeyString(ref.Key), consensus.MetaOf(full).TxID)
			}
		}
	}
	return out, nil
}

// scanPending returns the keys of a table's pending records, read from
// the store (filtered by the database where it can: inFlight).
func scanPending(ctx context.Context, st storage.Store, meta *storage.TableMetadata) ([]storage.Key, error) {
	cols := meta.KeyColumns()
	for _, c := range schema.TxColumns {
		cols = append(cols, c.Name)
	}
	recs, err := inFlight(ctx, st, storage.ScanAll{Namespace: meta.Namespace, Table: meta.Table, Projection: cols})
	if err != nil {
		return nil, err
	}
	var keys []storage.Key
	for _, rec := range recs {
		if consensus.MetaOf(rec).Pending() {
			keys = append(keys, consensus.KeyOf(meta, rec))
		}
	}
	return keys, nil
}

// maxNotedPending bounds the keys a load notes per table: past it the
// table is scanned instead, so memory stays bounded whatever the backup.
var maxNotedPending = 100_000

// pendingRows notes the keys of the pending records (PREPARED, DELETED)
// of a transactional table as its rows are loaded.
type pendingRows struct {
	state    int   // index of tx_state
	key      []int // indexes of the key columns
	names    []string
	keys     []storage.Key
	overflow bool
}

// newPendingRows returns nil for a table that is not transactional.
func newPendingRows(meta *storage.TableMetadata) *pendingRows {
	if !schema.IsTransactional(meta) {
		return nil
	}
	p := &pendingRows{state: -1, names: meta.KeyColumns()}
	for i, c := range meta.Columns {
		if c.Name == schema.TxState {
			p.state = i
		}
	}
	for _, name := range p.names {
		for i, c := range meta.Columns {
			if c.Name == name {
				p.key = append(p.key, i)
			}
		}
	}
	return p
}

// addValues is add of a row in typed slots; only a pending row is boxed.
func (p *pendingRows) addValues(v *sqlstore.Values) {
	if p != nil && !v.Null[p.state] && v.Cols[p.state].Type == storage.Int && (consensus.Meta{State: consensus.State(v.Int[p.state])}).Pending() {
		p.add(v.Row(nil))
	}
}

// add looks at one loaded row (none for a table that is not
// transactional: p is nil).
func (p *pendingRows) add(row []any) {
	if p == nil {
		return
	}
	state, ok := row[p.state].(int32)
	if !ok || !(consensus.Meta{State: consensus.State(state)}).Pending() || p.overflow {
		return
	}
	if len(p.keys) == maxNotedPending {
		p.overflow, p.keys = true, nil
		return
	}
	k := make(storage.Key, len(p.key))
	for i, idx := range p.key {
		k[p.names[i]] = row[idx]
	}
	p.keys = append(p.keys, k)
}

// inFlight reads the records of a table that may be in flight (a state
// other than COMMITTED; the caller keeps the pending ones), filtered by
// the database where the store can: a restored table may hold millions of
// records, which a plain ScanAll would hold in memory at once.
func inFlight(ctx context.Context, st storage.Store, sc storage.ScanAll) ([]storage.Record, error) {
	if ms, ok := st.(interface {
		ForNamespace(context.Context, string) (storage.Store, error)
	}); ok {
		var err error
		if st, err = ms.ForNamespace(ctx, sc.Namespace); err != nil {
			return nil, err
		}
	}
	if f, ok := st.(storage.FilteredScanner); ok {
		return f.ScanAllWhere(ctx, sc, []storage.Expr{
			{Column: schema.TxState, Op: storage.IsNotNull},
			{Column: schema.TxState, Op: storage.NE, Value: int32(consensus.Committed)},
		})
	}
	return st.ScanAll(ctx, sc)
}
