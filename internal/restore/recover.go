package restore

import (
	"context"
	"fmt"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
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
	for i, t := range p.tables {
		tables[i] = &t.backup.Metadata
	}
	return Settle(ctx, st, tables)
}

// Settle finishes the cut in tables as a restore does (settle): for a
// point-in-time recovery, which replays each store's log to its cut mark
// and must then settle what was in flight at the mark.
func Settle(ctx context.Context, st storage.Store, tables []*storage.TableMetadata) (txn.Settled, error) {
	var out txn.Settled
	m := txn.NewManager(st, txn.Options{Lifetime: -1})
	for _, meta := range tables {
		if !schema.IsTransactional(meta) {
			continue
		}
		cols := meta.KeyColumns()
		for _, c := range schema.TxColumns {
			cols = append(cols, c.Name)
		}
		recs, err := inFlight(ctx, st, storage.ScanAll{Namespace: meta.Namespace, Table: meta.Table, Projection: cols})
		if err != nil {
			return out, fmt.Errorf("restore: finish the cut: %w", err)
		}
		for _, rec := range recs {
			if !consensus.MetaOf(rec).Pending() {
				continue
			}
			ref := consensus.Ref{Table: meta, Key: consensus.KeyOf(meta, rec)}
			full, err := st.Get(ctx, storage.Get{Namespace: meta.Namespace, Table: meta.Table, Key: ref.Key})
			if err != nil {
				return out, fmt.Errorf("restore: finish the cut: %w", err)
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
