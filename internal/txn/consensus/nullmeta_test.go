package consensus

import (
	"testing"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// imported is a row of a table ScalarDB 3.10+ imported: every transaction
// column NULL (absent), so it is deemed committed.
func imported(id int32, balance int64) storage.Record {
	return storage.Record{"id": id, "balance": balance}
}

// TestPrepareOverNullMetadata: Stillpoint's prepare over an imported row
// writes the before image as ScalarDB 3.10+ does
// (PrepareMutationComposer.createBeforeColumns, v3.16.6): every before_
// column copies its after-image column, except that a NULL tx_version is
// written as before_tx_version = 0, so that a ScalarDB reader, which tests
// before_tx_id or before_tx_version, restores the row instead of deleting it.
func TestPrepareOverNullMetadata(t *testing.T) {
	for _, deleting := range []bool{false, true} {
		tx := NewTx("t1", Snapshot)
		tx.Read(ref(1), imported(1, 100))
		if deleting {
			tx.Delete(ref(1))
		} else {
			tx.Put(ref(1), storage.Record{"balance": int64(90)})
		}
		p := tx.PrepareMutations(5000)[0].(storage.Put)
		want := map[string]any{
			"before_balance": int64(100), "before_tx_version": int32(0),
			"before_tx_id": nil, "before_tx_state": nil, "before_tx_prepared_at": nil, "before_tx_committed_at": nil,
			schema.TxVersion: int32(1),
		}
		for k, v := range want {
			if got, ok := p.Values[k]; !ok || got != v {
				t.Errorf("delete=%v: prepare writes %s = %v (written: %v), want %v", deleting, k, got, ok, v)
			}
		}
		if c := p.Condition; c.Kind != storage.PutIf || len(c.Exprs) != 1 || c.Exprs[0].Column != schema.TxID || c.Exprs[0].Op != storage.IsNull {
			t.Errorf("delete=%v: condition = %+v, want tx_id IS NULL (ScalarDB 3.16+)", deleting, c)
		}
	}
}

// TestRollbackBeforeImageRule: rollback restores the before image iff
// before_tx_id or before_tx_version is not NULL (ScalarDB 3.10+
// TransactionResult.hasBeforeImage), and deletes the record otherwise. A
// restored before_tx_version of 0 is a NULL tx_version
// (ConsensusCommitUtils.createAfterImageColumnsFromBeforeImage, v3.16.6).
func TestRollbackBeforeImageRule(t *testing.T) {
	pending := func(before storage.Record) storage.Record {
		r := storage.Record{"id": int32(1), "balance": int64(90), schema.TxID: "t1", schema.TxState: int32(Prepared), schema.TxVersion: int32(1), schema.TxPreparedAt: int64(5000)}
		for k, v := range before {
			r[k] = v
		}
		return r
	}
	tests := []struct {
		name   string
		stored storage.Record
		// want nil: the record is deleted; else the values restored.
		want storage.Record
	}{
		{"ScalarDB 3.10+ prepare over an imported row: back to NULL metadata",
			pending(storage.Record{"before_balance": int64(100), "before_tx_version": int32(0)}),
			storage.Record{"balance": int64(100), schema.TxID: nil, schema.TxState: nil, schema.TxVersion: nil, schema.TxPreparedAt: nil, schema.TxCommittedAt: nil}},
		{"prepare over a committed record",
			pending(storage.Record{"before_balance": int64(100), "before_tx_id": "a", "before_tx_state": int32(Committed), "before_tx_version": int32(4), "before_tx_prepared_at": int64(1), "before_tx_committed_at": int64(2)}),
			storage.Record{"balance": int64(100), schema.TxID: "a", schema.TxState: int32(Committed), schema.TxVersion: int32(4), schema.TxPreparedAt: int64(1), schema.TxCommittedAt: int64(2)}},
		{"before_tx_id alone counts",
			pending(storage.Record{"before_balance": int64(100), "before_tx_id": "a"}),
			storage.Record{"balance": int64(100), schema.TxID: "a", schema.TxVersion: nil}},
		{"insert: no before image", pending(nil), nil},
		{"before_tx_state alone is no before image (ScalarDB deletes)",
			pending(storage.Record{"before_balance": int64(100), "before_tx_state": int32(Committed)}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HasBeforeImage(tt.stored); got != (tt.want != nil) {
				t.Errorf("HasBeforeImage = %v, want %v", got, tt.want != nil)
			}
			switch mu := RollbackRecord(ref(1), tt.stored).(type) {
			case storage.Delete:
				if tt.want != nil {
					t.Fatalf("rollback deletes the record, want it restored to %v", tt.want)
				}
			case storage.Put:
				if tt.want == nil {
					t.Fatalf("rollback restores %v, want the record deleted", mu.Values)
				}
				for k, v := range tt.want {
					if got, ok := mu.Values[k]; !ok || got != v {
						t.Errorf("rollback writes %s = %v (written: %v), want %v", k, got, ok, v)
					}
				}
				if mu.Values["before_balance"] != nil || mu.Values["before_tx_version"] != nil {
					t.Errorf("rollback must clear the before image (ScalarDB 3.16+): %v", mu.Values)
				}
			}
		})
	}
}
