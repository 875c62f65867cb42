package verify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/verify"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fixture struct {
	st    *multistorage.Storage
	m     *txn.Manager
	s     *bank.Setup
	clock time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{st: multistorage.New(testenv.Embedded(t)), clock: time.Unix(1_800_000_000, 0)}
	t.Cleanup(func() { f.st.Close() })
	f.m = txn.NewManager(f.st, txn.Options{Now: func() time.Time { return f.clock }})
	f.s = &bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 2, InitialBalance: 100}
	if err := bank.Create(context.Background(), f.st, f.m, *f.s); err != nil {
		t.Fatal(err)
	}
	return f
}

// halfTransfer writes what a transfer that died after prepare leaves: both
// records PREPARED, and the coordinator's decision if one is given. It uses
// the protocol core itself, so the records are exactly what a real
// transaction writes.
func (f *fixture) halfTransfer(t *testing.T, decision consensus.State) {
	ctx := context.Background()
	tx := consensus.NewTx(bank.TransferPrefix+"crashed", consensus.Snapshot)
	for i, ns := range f.s.Namespaces {
		tbl, err := f.m.Table(ctx, ns, bank.AccountsTable)
		if err != nil {
			t.Fatal(err)
		}
		ref := consensus.Ref{Table: tbl, Key: storage.Key{"account_id": int32(0)}}
		stored, err := f.st.Get(ctx, storage.Get{Namespace: ns, Table: bank.AccountsTable, Key: ref.Key})
		if err != nil {
			t.Fatal(err)
		}
		tx.Read(ref, stored)
		tx.Put(ref, storage.Record{"balance": stored["balance"].(int64) + []int64{-10, 10}[i]})
	}
	for _, mu := range tx.PrepareMutations(f.clock.UnixMilli()) {
		if err := f.st.Mutate(ctx, []storage.Mutation{mu}); err != nil {
			t.Fatal(err)
		}
	}
	if decision != 0 {
		if err := f.st.Put(ctx, consensus.CoordinatorPut(tx.ID, decision, f.clock.UnixMilli())); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifySettlesWhatACrashLeft(t *testing.T) {
	tests := []struct {
		name      string
		decision  consensus.State
		age       time.Duration
		wantOK    bool
		recovered string
		transfers int64
	}{
		{"committed", consensus.Committed, 0, true, "roll forward", 1},
		{"aborted", consensus.Aborted, 0, true, "roll back", 0},
		{"undecided, expired", 0, 20 * time.Second, true, "roll back", 0},
		{"undecided, young", 0, time.Second, false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.halfTransfer(t, tt.decision)
			ctx := context.Background()
			dry, err := verify.Run(ctx, f.st, f.m, verify.Options{NoRecover: true})
			if err != nil || dry.OK() || len(dry.Pending) != 2 {
				t.Fatalf("--no-recover must report both pending records and change nothing: %+v, %v", dry, err)
			}
			f.clock = f.clock.Add(tt.age)
			rep, err := verify.Run(ctx, f.st, f.m, verify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() != tt.wantOK {
				t.Fatalf("OK = %v, want %v: %+v", rep.OK(), tt.wantOK, rep)
			}
			if !tt.wantOK {
				if len(rep.Pending) != 2 || !strings.Contains(rep.Pending[0].Detail, "younger than the transaction lifetime") {
					t.Fatalf("young undecided records must be reported, not touched: %+v", rep.Pending)
				}
				return
			}
			if rep.Recovered[tt.recovered] != 2 {
				t.Errorf("recovered = %v, want 2 × %s", rep.Recovered, tt.recovered)
			}
			iv := rep.Bank["bank_0"]
			if iv == nil || !iv.OK() || iv.CommittedTransfers != tt.transfers || iv.Total != 400 {
				t.Errorf("bank after recovery: %+v", iv)
			}
		})
	}
}

func TestVerifyFindsViolations(t *testing.T) {
	ctx := context.Background()
	t.Run("committed record without a decision", func(t *testing.T) {
		f := newFixture(t)
		err := f.st.Put(ctx, storage.Put{Namespace: "bank_1", Table: bank.AccountsTable, Values: storage.Record{
			"account_id": 1, schema.TxID: "ghost", schema.TxState: int32(consensus.Committed)}})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := verify.Run(ctx, f.st, f.m, verify.Options{})
		if err != nil || rep.OK() {
			t.Fatalf("want a violation: %+v, %v", rep, err)
		}
		v := rep.Violations[0]
		if v.Table != "bank_1.accounts" || v.TxID != "ghost" || !strings.Contains(v.Key, "account_id:1") {
			t.Errorf("violation must name the table, key and transaction: %+v", v)
		}
	})
	t.Run("money lost", func(t *testing.T) {
		f := newFixture(t)
		err := f.st.Put(ctx, storage.Put{Namespace: "bank_0", Table: bank.AccountsTable, Values: storage.Record{"account_id": 1, "balance": int64(1)}})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := verify.Run(ctx, f.st, f.m, verify.Options{})
		if err != nil || rep.OK() || !strings.Contains(rep.Violations[0].Detail, "total balance 301, want 400") {
			t.Fatalf("want the total violation: %+v, %v", rep, err)
		}
	})
}
