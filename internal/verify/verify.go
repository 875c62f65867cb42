// Package verify checks that a set of stores holds a transactionally
// consistent state: every pending record resolvable through the
// coordinator, every committed record backed by a COMMITTED decision, and
// the bank invariants where a bank exists.
package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// ErrUnfinishedRestore: the stores are half restored; nothing about them
// can be verified until the restore is run again to its end.
var ErrUnfinishedRestore = errors.New("unfinished restore")

// Options control a verification.
type Options struct {
	// NoRecover only reports what lazy recovery would do.
	NoRecover bool
	// Wait is how long to wait for undecided records younger than the
	// transaction lifetime to expire, so they can be settled.
	Wait time.Duration
	// Poll is the pause between recovery passes while waiting.
	Poll time.Duration
}

// Finding is one record that needs attention, or one broken rule.
type Finding struct {
	Table  string `json:"table"`
	Key    string `json:"key,omitempty"`
	TxID   string `json:"tx_id,omitempty"`
	Detail string `json:"detail"`
}

// Report is the outcome of a verification.
type Report struct {
	Tables     int                         `json:"tables"`
	Records    int                         `json:"records"`
	Recovered  map[string]int              `json:"recovered,omitempty"` // by action
	Pending    []Finding                   `json:"pending,omitempty"`   // undecided or (--no-recover) unsettled
	Violations []Finding                   `json:"violations,omitempty"`
	Bank       map[string]*bank.Invariants `json:"bank,omitempty"` // by first namespace
	bankSetups map[string]*bank.Setup      `json:"-"`
}

// OK reports whether nothing is wrong and nothing is left unsettled.
func (r *Report) OK() bool { return len(r.Violations) == 0 && len(r.Pending) == 0 }

// Run verifies every transactional table the storage holds.
func Run(ctx context.Context, st storage.Store, m *txn.Manager, opts Options) (*Report, error) {
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	r := &Report{Recovered: map[string]int{}, Bank: map[string]*bank.Invariants{}, bankSetups: map[string]*bank.Setup{}}
	if id, err := restore.Unfinished(ctx, st); err != nil {
		return nil, err
	} else if id != "" {
		return nil, fmt.Errorf("%w: these stores hold an unfinished restore of backup %s: run 'stillpoint restore %s' again to finish it", ErrUnfinishedRestore, id, id)
	}
	tables, err := transactionalTables(ctx, st, r)
	if err != nil {
		return nil, err
	}
	r.Tables = len(tables)
	deadline := time.Now().Add(opts.Wait)
	for {
		r.Pending, r.Records = nil, 0
		if err := recoverPass(ctx, st, m, tables, opts, r); err != nil {
			return nil, err
		}
		if len(r.Pending) == 0 || opts.NoRecover || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(opts.Poll):
		}
	}
	if err := checkCoordinator(ctx, st, tables, r); err != nil {
		return nil, err
	}
	for ns, s := range r.bankSetups {
		iv, err := bank.Check(ctx, st, s)
		if err != nil {
			return nil, err
		}
		r.Bank[ns] = &iv
		for _, v := range iv.Violations {
			r.Violations = append(r.Violations, Finding{Table: ns + "." + bank.AccountsTable, Detail: "bank invariant: " + v})
		}
	}
	return r, nil
}

func transactionalTables(ctx context.Context, st storage.Store, r *Report) ([]*storage.TableMetadata, error) {
	namespaces, err := st.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	var out []*storage.TableMetadata
	for _, ns := range namespaces {
		names, err := st.Tables(ctx, ns)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if name == bank.SetupTable {
				s, err := bank.Load(ctx, st, ns)
				if err != nil {
					return nil, err
				}
				if s != nil {
					r.bankSetups[ns] = s
				}
				continue
			}
			m, err := st.TableMetadata(ctx, ns, name)
			if err != nil {
				return nil, err
			}
			if m != nil && schema.IsTransactional(m) {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

func recoverPass(ctx context.Context, st storage.Store, m *txn.Manager, tables []*storage.TableMetadata, opts Options, r *Report) error {
	for _, t := range tables {
		recs, err := st.ScanAll(ctx, storage.ScanAll{Namespace: t.Namespace, Table: t.Table})
		if err != nil {
			return err
		}
		r.Records += len(recs)
		for _, rec := range recs {
			meta := consensus.MetaOf(rec)
			if !meta.Pending() {
				continue
			}
			ref := consensus.Ref{Table: t, Key: consensus.KeyOf(t, rec)}
			f := Finding{Table: t.FullName(), Key: fmt.Sprint(ref.Key), TxID: meta.TxID}
			if opts.NoRecover {
				f.Detail = meta.State.String() + " (not recovered: --no-recover)"
				r.Pending = append(r.Pending, f)
				continue
			}
			action, err := m.RecoverRecord(ctx, ref, rec)
			if err != nil {
				return fmt.Errorf("recover %s %v of transaction %s: %w", t.FullName(), ref.Key, meta.TxID, err)
			}
			if action == consensus.Leave {
				f.Detail = meta.State.String() + ", undecided and younger than the transaction lifetime"
				r.Pending = append(r.Pending, f)
				continue
			}
			r.Recovered[action.String()]++
		}
	}
	return nil
}

// checkCoordinator: a COMMITTED record's writer must have a COMMITTED row.
func checkCoordinator(ctx context.Context, st storage.Store, tables []*storage.TableMetadata, r *Report) error {
	rows, err := st.ScanAll(ctx, storage.ScanAll{Namespace: schema.CoordinatorNamespace, Table: schema.CoordinatorTable})
	if err != nil {
		return fmt.Errorf("read the coordinator table: %w", err)
	}
	decisions := make(map[string]consensus.State, len(rows))
	for _, row := range rows {
		decisions[row[schema.TxID].(string)] = consensus.DecisionOf(row)
	}
	for _, t := range tables {
		recs, err := st.ScanAll(ctx, storage.ScanAll{Namespace: t.Namespace, Table: t.Table,
			Projection: append(t.KeyColumns(), schema.TxID, schema.TxState)})
		if err != nil {
			return err
		}
		for _, rec := range recs {
			meta := consensus.MetaOf(rec)
			if meta.TxID == "" || meta.State != consensus.Committed {
				continue
			}
			if d := decisions[meta.TxID]; d != consensus.Committed {
				what := "no coordinator row"
				if d != 0 {
					what = "coordinator says " + d.String()
				}
				r.Violations = append(r.Violations, Finding{Table: t.FullName(), Key: fmt.Sprint(consensus.KeyOf(t, rec)), TxID: meta.TxID,
					Detail: "record COMMITTED but " + what})
			}
		}
	}
	return nil
}
