package txn

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/txn/txntest"
)

// scalarDBPending is a pending record as ScalarDB's PrepareMutationComposer
// writes it (v3.16.6): the new value, the writer's id, PREPARED or DELETED,
// and the before image of what it replaced.
type scalarDBPending struct {
	state  consensus.State
	before storage.Record // before_* columns; nil: an insert, no before image
}

var (
	// Over a record committed by transaction "init" at version 1.
	overCommitted = scalarDBPending{consensus.Prepared, storage.Record{
		"before_balance": int64(100), "before_tx_id": "init", "before_tx_state": int32(consensus.Committed),
		"before_tx_version": int32(1), "before_tx_prepared_at": int64(1), "before_tx_committed_at": int64(2)}}
	// Over a row imported with NULL metadata (3.10+): before_tx_version 0,
	// the other before_tx_* NULL.
	overImported = scalarDBPending{consensus.Prepared, storage.Record{"before_balance": int64(100), "before_tx_version": int32(0)}}
	// A delete of the committed record.
	deleting = scalarDBPending{consensus.Deleted, overCommitted.before}
	inserted = scalarDBPending{consensus.Prepared, nil}
)

// Outcomes of recovery, as ScalarDB's RecoveryHandler and
// RollbackMutationComposer leave the record.
var (
	forward      = storage.Record{"balance": int64(90), schema.TxState: int32(consensus.Committed)}
	backToInit   = storage.Record{"balance": int64(100), schema.TxID: "init", schema.TxState: int32(consensus.Committed), schema.TxVersion: int32(1)}
	backToNull   = storage.Record{"balance": int64(100), schema.TxID: nil, schema.TxState: nil, schema.TxVersion: nil}
	untouched    = storage.Record{"balance": int64(90), schema.TxState: int32(consensus.Prepared)}
	recordIsGone storage.Record
)

// TestRecoverScalarDBRecords: records left pending by ScalarDB transactions
// (group commit, NULL-metadata rows) settle as ScalarDB would settle them,
// on each engine, with the coordinator table of 3.4 and of 3.13 with group
// commit. The expected outcome of each case is ScalarDB's (research file
// sections 6, 8 and 9), not what this code does.
func TestRecoverScalarDBRecords(t *testing.T) {
	const uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"
	parent := func(i int) string { return fmt.Sprintf("P%023d", i) }
	type row = txntest.Row
	rw := func(id string, s consensus.State, children string) row {
		return row{ID: id, State: s, Children: children}
	}
	tests := []struct {
		name    string
		id      func(p string) string // the writer's id, given a parent id unique to the case
		pending scalarDBPending
		rows    func(p, full string) []row // coordinator rows before recovery
		groups  bool                       // the rows need tx_child_ids (3.13 table only)
		expired bool                       // prepared longer ago than the lifetime
		action  consensus.Recovery
		record  storage.Record             // nil: deleted
		after   func(p, full string) []row // coordinator rows after, of the parent and full ids
	}{
		{"normal group committed, lists the child", func(p string) string { return p + "$" + uuid }, overCommitted,
			func(p, _ string) []row { return []row{rw(p, consensus.Committed, "x,"+uuid)} }, true, false,
			consensus.RollForward, forward, nil},
		{"normal group committed, ':' delimiter of 3.13.0", func(p string) string { return p + ":" + uuid }, overCommitted,
			func(p, _ string) []row { return []row{rw(p, consensus.Committed, uuid)} }, true, false,
			consensus.RollForward, forward, nil},
		{"group aborted as a whole", func(p string) string { return p + "$" + uuid }, overCommitted,
			func(p, _ string) []row { return []row{rw(p, consensus.Aborted, uuid)} }, true, false,
			consensus.RollBack, backToInit, nil},
		{"parent lists other children only, young: the writer may still decide", func(p string) string { return p + "$" + uuid }, overCommitted,
			func(p, _ string) []row { return []row{rw(p, consensus.Committed, "x,y")} }, true, false,
			consensus.Leave, untouched, nil},
		{"parent lists other children only, expired: aborted under the full id", func(p string) string { return p + "$" + uuid }, overCommitted,
			func(p, _ string) []row { return []row{rw(p, consensus.Committed, "x,y")} }, true, true,
			consensus.RollBack, backToInit,
			func(p, full string) []row {
				return []row{rw(p, consensus.Committed, "x,y"), rw(full, consensus.Aborted, "")}
			}},
		{"delayed group committed under the full id", func(p string) string { return p + "$" + uuid }, overCommitted,
			func(_, full string) []row { return []row{rw(full, consensus.Committed, "")} }, false, true,
			consensus.RollForward, forward, nil},
		{"no row, expired: parent ABORTED with no children, then the full id", func(p string) string { return p + "$" + uuid }, overCommitted,
			func(string, string) []row { return nil }, false, true,
			consensus.RollBack, backToInit,
			func(p, full string) []row {
				return []row{rw(p, consensus.Aborted, ""), rw(full, consensus.Aborted, "")}
			}},
		{"a recovery stopped after the parent's row: the next one aborts the full id", func(p string) string { return p + "$" + uuid }, deleting,
			func(p, _ string) []row { return []row{rw(p, consensus.Aborted, "")} }, false, true,
			consensus.RollBack, backToInit,
			func(p, full string) []row {
				return []row{rw(p, consensus.Aborted, ""), rw(full, consensus.Aborted, "")}
			}},
		{"parent ABORTED with no children decides nothing while young", func(p string) string { return p + "$" + uuid }, overCommitted,
			func(p, _ string) []row { return []row{rw(p, consensus.Aborted, "")} }, false, false,
			consensus.Leave, untouched, nil},
		{"group-commit insert, expired: deleted", func(p string) string { return p + "$" + uuid }, inserted,
			func(string, string) []row { return nil }, false, true,
			consensus.RollBack, recordIsGone, nil},
		{"delete by a normal group committed: gone", func(p string) string { return p + "$" + uuid }, deleting,
			func(p, _ string) []row { return []row{rw(p, consensus.Committed, uuid)} }, true, false,
			consensus.RollForward, recordIsGone, nil},
		{"plain id over an imported row, expired: back to NULL metadata", func(string) string { return uuid }, overImported,
			func(string, string) []row { return nil }, false, true,
			consensus.RollBack, backToNull, nil},
		{"group commit over an imported row, aborted: back to NULL metadata", func(p string) string { return p + "$" + uuid }, overImported,
			func(_, full string) []row { return []row{rw(full, consensus.Aborted, "")} }, false, false,
			consensus.RollBack, backToNull, nil},
	}
	for _, engine := range txntest.Engines {
		for _, layout := range []struct {
			name  string
			coord *storage.TableMetadata
		}{{"3.4 coordinator", txntest.Coordinator34}, {"3.13 group-commit coordinator", txntest.Coordinator313}} {
			t.Run(engine+"/"+layout.name, func(t *testing.T) {
				ctx := context.Background()
				st, tbl := txntest.Accounts(t, engine, layout.coord)
				ns := tbl.Namespace
				now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
				m := NewManager(st, Options{Now: func() time.Time { return now }})
				for i, tt := range tests {
					if tt.groups && layout.coord == txntest.Coordinator34 {
						continue
					}
					p := parent(i)
					full := tt.id(p)
					txntest.PutRows(t, st, tt.rows(p, full)...)
					prepared := now.Add(-time.Second)
					if tt.expired {
						prepared = now.Add(-DefaultLifetime - time.Second)
					}
					rec := storage.Record{"id": int32(i), "balance": int64(90), schema.TxID: full, schema.TxState: int32(tt.pending.state),
						schema.TxVersion: int32(2), schema.TxPreparedAt: prepared.UnixMilli()}
					for k, v := range tt.pending.before {
						rec[k] = v
					}
					if err := st.Put(ctx, storage.Put{Namespace: ns, Table: tbl.Table, Values: rec}); err != nil {
						t.Fatal(err)
					}
					ref := consensus.Ref{Table: tbl, Key: storage.Key{"id": int32(i)}}
					action, err := m.RecoverRecord(ctx, ref, rec)
					if err != nil || action != tt.action {
						t.Errorf("%s: recovery = %v, %v; want %v", tt.name, action, err, tt.action)
					}
					got, err := st.Get(ctx, storage.Get{Namespace: ns, Table: tbl.Table, Key: ref.Key})
					if err != nil {
						t.Fatal(err)
					}
					switch {
					case tt.record == nil && got != nil:
						t.Errorf("%s: record left as %v, want it deleted", tt.name, got)
					case tt.record != nil && got == nil:
						t.Errorf("%s: record deleted, want %v", tt.name, tt.record)
					}
					for k, v := range tt.record {
						if got != nil && !storage.Equal(got[k], v) {
							t.Errorf("%s: %s = %v, want %v (record %v)", tt.name, k, got[k], v, got)
						}
					}
					if tt.after == nil {
						continue
					}
					want := map[string]row{}
					for _, r := range tt.after(p, full) {
						want[r.ID] = r
					}
					for _, id := range []string{p, full} {
						r, ok := txntest.GetRow(t, st, id)
						if w, wok := want[id]; ok != wok || (ok && (r.State != w.State || r.Children != w.Children)) {
							t.Errorf("%s: coordinator row %s = %+v (exists %v), want %+v (exists %v)", tt.name, id, r, ok, w, wok)
						}
					}
				}
			})
		}
	}
}

// TestPrepareOverImportedRow: Stillpoint's own prepare over a row imported
// with NULL metadata leaves what ScalarDB 3.10+ leaves
// (PrepareMutationComposer.createBeforeColumns): before_tx_version 0 and
// the other before_tx_* NULL, so a ScalarDB reader restores the row rather
// than deleting it; and its rollback returns the row to NULL metadata. A
// record written committed at once, in the decision's local transaction,
// carries the same before image.
func TestPrepareOverImportedRow(t *testing.T) {
	for _, engine := range txntest.Engines {
		for _, separate := range []bool{true, false} {
			t.Run(engine+map[bool]string{true: "/prepared then rolled back", false: "/committed with the decision"}[separate], func(t *testing.T) {
				ctx := context.Background()
				st, tbl := txntest.Accounts(t, engine, txntest.Coordinator34)
				ns := tbl.Namespace
				now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
				m := NewManager(st, Options{Now: func() time.Time { return now }, SeparateDecision: separate})
				key := storage.Key{"id": int32(1)}
				if err := st.Put(ctx, storage.Put{Namespace: ns, Table: tbl.Table, Values: storage.Record{"id": int32(1), "balance": int64(100)}}); err != nil {
					t.Fatal(err)
				}
				if separate {
					m.hooks.crashAt = func(s consensus.Step) (int, bool) { return 0, s == consensus.StepDecide }
				}
				tx := m.Begin()
				if err := tx.Put(ctx, storage.Put{Namespace: ns, Table: tbl.Table, Values: storage.Record{"id": int32(1), "balance": int64(90)}}); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(ctx); (err == nil) == separate {
					t.Fatalf("commit = %v (stopped before its decision: %v)", err, separate)
				}
				m.hooks.crashAt = nil
				raw := func() storage.Record {
					r, err := st.Get(ctx, storage.Get{Namespace: ns, Table: tbl.Table, Key: key})
					if err != nil || r == nil {
						t.Fatalf("read the record: %v, %v", r, err)
					}
					return r
				}
				written := raw()
				want := map[string]any{"before_tx_version": int32(0), "before_tx_id": nil, "before_tx_state": nil, "before_balance": int64(100), schema.TxVersion: int32(1)}
				if !separate {
					want[schema.TxState], want["balance"] = int32(consensus.Committed), int64(90)
				}
				for k, v := range want {
					if !storage.Equal(written[k], v) {
						t.Errorf("written record: %s = %v, want %v (%v)", k, written[k], v, written)
					}
				}
				if !separate {
					return
				}
				now = now.Add(DefaultLifetime + time.Second)
				if action, err := m.RecoverRecord(ctx, consensus.Ref{Table: tbl, Key: key}, written); err != nil || action != consensus.RollBack {
					t.Fatalf("recovery = %v, %v; want roll back", action, err)
				}
				for k, v := range backToNull {
					if got := raw(); !storage.Equal(got[k], v) {
						t.Errorf("rolled back: %s = %v, want %v (%v)", k, got[k], v, got)
					}
				}
			})
		}
	}
}
