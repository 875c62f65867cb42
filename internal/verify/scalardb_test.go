package verify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/txn/txntest"
	"github.com/stillpoint/stillpoint/internal/verify"
)

// TestVerifyJudgesCommittedRecordsAsScalarDB: COMMITTED records left by
// ScalarDB's one-phase commit (3.16+, no coordinator row) and group commit
// (3.13+, the decision under the parent id) are no violation; a COMMITTED
// record whose own decision says ABORTED is. The verdict of each record is
// ScalarDB's rule (research file sections 6 and 7), on each engine with a
// 3.13 group-commit coordinator table.
func TestVerifyJudgesCommittedRecordsAsScalarDB(t *testing.T) {
	const parent, other = "Ab3dE5gH7jK9mN1pQ3sT5vW7", "Zz3dE5gH7jK9mN1pQ3sT5vW7"
	const child = "0f8fad5b-d9cb-469f-a165-70867728950e"
	type row = txntest.Row
	tests := []struct {
		name string
		txID any // nil: imported with NULL metadata
		rows []row
		// violation: the finding's detail; "" none.
		violation string
		// noRow: counted as committed without a coordinator row.
		noRow bool
	}{
		{"one-phase commit", "opc-" + child, nil, "", true},
		{"one-phase commit under group commit, parent blocked by a lazy recovery", other + "$" + child,
			[]row{{ID: other, State: consensus.Aborted}}, "", true},
		{"normal group member", parent + "$" + child, []row{{ID: parent, State: consensus.Committed, Children: "x," + child}}, "", false},
		{"delayed group", parent + "$d", []row{{ID: parent + "$d", State: consensus.Committed}}, "", false},
		{"two-phase commit", "tpc-" + child, []row{{ID: "tpc-" + child, State: consensus.Committed}}, "", false},
		{"imported row", nil, nil, "", false},
		{"group that aborted", parent + "$a", []row{{ID: parent + "$a", State: consensus.Aborted}}, "coordinator says ABORTED", false},
		{"plain id that aborted", "abt-" + child, []row{{ID: "abt-" + child, State: consensus.Aborted}}, "coordinator says ABORTED", false},
	}
	for _, engine := range txntest.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			st, tbl := txntest.Accounts(t, engine, txntest.Coordinator313)
			ns := tbl.Namespace
			wantNoRow := 0
			for i, tt := range tests {
				txntest.PutRows(t, st, tt.rows...)
				rec := storage.Record{"id": int32(i), "balance": int64(100)}
				if tt.txID != nil {
					// As OnePhaseCommitMutationComposer (v3.16.6) and a commit
					// leave it: COMMITTED, before image NULL.
					rec[schema.TxID], rec[schema.TxState], rec[schema.TxVersion] = tt.txID, int32(consensus.Committed), int32(1)
					rec[schema.TxPreparedAt], rec[schema.TxCommittedAt] = int64(1), int64(1)
				}
				if err := st.Put(ctx, storage.Put{Namespace: ns, Table: tbl.Table, Values: rec}); err != nil {
					t.Fatal(err)
				}
				if tt.noRow {
					wantNoRow++
				}
			}
			// A record a normal group left PREPARED long ago, the group's
			// row listing it: --repair rolls it forward (not: aborts it).
			txntest.PutRows(t, st, row{ID: "Pend5gH7jK9mN1pQ3sT5vW7x", State: consensus.Committed, Children: child})
			err := st.Put(ctx, storage.Put{Namespace: ns, Table: tbl.Table, Values: storage.Record{"id": int32(len(tests)), "balance": int64(1),
				schema.TxID: "Pend5gH7jK9mN1pQ3sT5vW7x$" + child, schema.TxState: int32(consensus.Prepared), schema.TxVersion: int32(1), schema.TxPreparedAt: int64(1)}})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := verify.Run(ctx, st, txn.NewManager(st, txn.Options{}), verify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			found := map[string]string{}
			for _, v := range rep.Violations {
				found[v.Key] = v.Detail
			}
			for i, tt := range tests {
				key := fmt.Sprintf("id=%d", i)
				got := found[key]
				delete(found, key)
				if (tt.violation == "") != (got == "") || !strings.Contains(got, tt.violation) {
					t.Errorf("%s: violation %q, want %q", tt.name, got, tt.violation)
				}
			}
			if len(found) != 0 {
				t.Errorf("other violations: %v", rep.Violations)
			}
			if rep.CommittedWithoutDecision != wantNoRow || rep.Records != len(tests)+1 {
				t.Errorf("%d of %d records counted committed without a coordinator row, want %d of %d", rep.CommittedWithoutDecision, rep.Records, wantNoRow, len(tests)+1)
			}
			if len(rep.Pending) != 1 || !strings.Contains(rep.Pending[0].Detail, "the coordinator says COMMITTED") || !strings.Contains(rep.Pending[0].Detail, "roll forward") {
				t.Errorf("pending = %+v, want the group member to be rolled forward", rep.Pending)
			}
		})
	}
}
