package verify_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
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
	if err := bank.Create(context.Background(), f.st, f.m, *f.s, nil); err != nil {
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

// accounts reads every account record as stored, by namespace.
func (f *fixture) accounts(t *testing.T) map[string][]storage.Record {
	t.Helper()
	out := map[string][]storage.Record{}
	for _, ns := range f.s.Namespaces {
		recs, err := f.st.ScanAll(context.Background(), storage.ScanAll{Namespace: ns, Table: bank.AccountsTable})
		if err != nil {
			t.Fatal(err)
		}
		out[ns] = recs
	}
	return out
}

func TestVerifySettlesWhatACrashLeft(t *testing.T) {
	tests := []struct {
		name     string
		decision consensus.State
		age      time.Duration
		// Without --repair: records recovery could settle now, and records
		// of transactions that may still be running.
		pending, inFlight int
		// With --repair: what recovery did to both records (zero: nothing).
		recovered txn.Settled
		transfers int64
	}{
		{"committed, committer may still run", consensus.Committed, 0, 0, 2, txn.Settled{RolledForward: 2}, 1},
		{"committed, committer gone", consensus.Committed, 20 * time.Second, 2, 0, txn.Settled{RolledForward: 2}, 1},
		{"aborted, aborter may still run", consensus.Aborted, 0, 0, 2, txn.Settled{RolledBack: 2}, 0},
		{"undecided, expired", 0, 20 * time.Second, 2, 0, txn.Settled{RolledBack: 2}, 0},
		{"undecided, young", 0, time.Second, 0, 2, txn.Settled{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.halfTransfer(t, tt.decision)
			ctx := context.Background()
			f.clock = f.clock.Add(tt.age)
			before := f.accounts(t)
			dry, err := verify.Run(ctx, f.st, f.m, verify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if after := f.accounts(t); !reflect.DeepEqual(before, after) {
				t.Fatalf("verify without --repair changed the stores:\nbefore %v\nafter  %v", before, after)
			}
			if len(dry.Pending) != tt.pending || dry.InFlight != tt.inFlight || len(dry.Violations) != 0 || dry.OK() != (tt.pending == 0) {
				t.Fatalf("without --repair: want %d pending, %d in flight, no violation: %+v", tt.pending, tt.inFlight, dry)
			}
			// The invariants hold on the state recovery would make, so they
			// can be checked without settling anything.
			if iv := dry.Bank["bank_0"]; iv == nil || !iv.OK() || iv.CommittedTransfers != tt.transfers || iv.Total != 400 {
				t.Fatalf("bank on the settled view: %+v", iv)
			}
			rep, err := verify.Run(ctx, f.st, f.m, verify.Options{Repair: true})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Fatalf("after --repair: %+v", rep)
			}
			if tt.recovered == (txn.Settled{}) {
				if rep.InFlight != 2 || *rep.Recovered != tt.recovered || !reflect.DeepEqual(before, f.accounts(t)) {
					t.Fatalf("young undecided records must be counted in flight and left alone: %+v", rep)
				}
				return
			}
			if *rep.Recovered != tt.recovered || rep.InFlight != 0 {
				t.Errorf("recovered = %+v (in flight %d), want %+v", *rep.Recovered, rep.InFlight, tt.recovered)
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
	t.Run("committed record of an aborted transaction", func(t *testing.T) {
		f := newFixture(t)
		err := f.st.Put(ctx, storage.Put{Namespace: "bank_1", Table: bank.AccountsTable, Values: storage.Record{
			"account_id": 1, schema.TxID: "ghost", schema.TxState: int32(consensus.Committed)}})
		if err == nil {
			err = f.st.Put(ctx, consensus.CoordinatorPut("ghost", consensus.Aborted, 1))
		}
		if err != nil {
			t.Fatal(err)
		}
		rep, err := verify.Run(ctx, f.st, f.m, verify.Options{})
		if err != nil || rep.OK() {
			t.Fatalf("want a violation: %+v, %v", rep, err)
		}
		v := rep.Violations[0]
		if v.Table != "bank_1.accounts" || v.TxID != "ghost" || v.Key != "account_id=1" {
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

// sql runs a statement on a namespace's SQLite file behind the storage's
// back, the way damage arrives.
func (f *fixture) sql(t *testing.T, ns, q string, args ...any) {
	t.Helper()
	st, err := f.st.Store(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.(*sqlstore.Store).DB().Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestVerifyReportsMalformedData(t *testing.T) {
	ctx := context.Background()
	const metadata = `DELETE FROM "scalardb$metadata" WHERE full_table_name = 'bank_0.accounts' AND column_name IN ('before_tx_state', 'before_balance')`
	tests := []struct {
		name   string
		damage func(t *testing.T, f *fixture)
		table  string // the finding names it
		detail string
	}{
		{"NULL balance", func(t *testing.T, f *fixture) {
			f.sql(t, "bank_0", `UPDATE "bank_0$accounts" SET balance = NULL WHERE account_id = 1`)
		}, "bank_0.accounts", "account_id 1"},
		{"balance of another type", func(t *testing.T, f *fixture) {
			f.sql(t, "bank_0", `UPDATE "scalardb$metadata" SET data_type = 'TEXT' WHERE full_table_name = 'bank_0.accounts' AND column_name = 'balance'`)
		}, "bank_0.accounts", "balance"},
		{"half the before image in the metadata, expired undecided records", func(t *testing.T, f *fixture) {
			f.halfTransfer(t, 0)
			f.clock = f.clock.Add(time.Minute)
			f.sql(t, "bank_0", metadata)
		}, "bank_0.accounts", "before_tx_state"},
		{"1 of 13 metadata rows, as a killed restore left it", func(t *testing.T, f *fixture) {
			f.halfTransfer(t, 0)
			f.clock = f.clock.Add(time.Minute)
			f.sql(t, "bank_0", `DELETE FROM "scalardb$metadata" WHERE full_table_name = 'bank_0.accounts' AND column_name <> 'account_id'`)
		}, "bank_0.accounts", "balance"},
		{"setup row without namespaces", func(t *testing.T, f *fixture) {
			f.sql(t, "bank_0", `UPDATE "bank_0$bank_setup" SET namespaces = NULL`)
		}, "bank_0.bank_setup", "namespaces"},
	}
	for _, tt := range tests {
		for _, repair := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/repair=%v", tt.name, repair), func(t *testing.T) {
				f := newFixture(t)
				tt.damage(t, f)
				// A fresh storage reads the damaged metadata, as a new process does.
				st := multistorage.New(f.st.Config())
				defer st.Close()
				before := f.accounts(t)
				rep, err := verify.Run(ctx, st, txn.NewManager(st, txn.Options{Now: func() time.Time { return f.clock }}), verify.Options{Repair: repair})
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, v := range rep.Violations {
					found = found || v.Table == tt.table && strings.Contains(v.Key+" "+v.Detail, tt.detail)
				}
				if !found || rep.OK() {
					t.Errorf("want a violation naming %s and %q: %+v", tt.table, tt.detail, rep.Violations)
				}
				// Healthy tables may be repaired; the damaged one is not touched.
				if after := f.accounts(t); !reflect.DeepEqual(before["bank_0"], after["bank_0"]) {
					t.Errorf("records of a table verify cannot read must not be touched:\nbefore %v\nafter  %v", before["bank_0"], after["bank_0"])
				}
			})
		}
	}
}

// Verifying an empty data directory creates nothing in it.
func TestVerifyOfNothingCreatesNothing(t *testing.T) {
	cfg := testenv.Embedded(t)
	st := multistorage.New(cfg)
	defer st.Close()
	rep, err := verify.Run(context.Background(), st, txn.NewManager(st, txn.Options{}), verify.Options{})
	if err != nil || !rep.OK() || rep.Tables != 0 {
		t.Fatalf("%+v, %v", rep, err)
	}
	if files, _ := os.ReadDir(cfg.DataDir); len(files) != 0 {
		t.Errorf("verify created %v", files)
	}
}
