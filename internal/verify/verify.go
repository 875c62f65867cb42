// Package verify checks that a set of stores holds a transactionally
// consistent state: every committed record backed by a COMMITTED decision,
// every pending record resolvable through the coordinator, and the bank
// invariants where a bank exists. It reads one consistent cut of the
// stores, so it is exact on a live system, and it writes nothing unless
// asked to repair.
package verify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/hint"
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

// DefaultFenceTimeout bounds the wait for the coordinator fence.
const DefaultFenceTimeout = 5 * time.Second

// Options control a verification.
type Options struct {
	// Repair settles PREPARED and DELETED records by lazy recovery (with
	// the manager's transaction lifetime) before checking. Without it
	// verify writes nothing and reports what recovery would do.
	Repair bool
	// Wait (with Repair) is how long to keep settling records that are
	// undecided and younger than the lifetime, waiting for them to expire.
	Wait time.Duration
	// Poll is the pause between recovery passes while waiting.
	Poll time.Duration
	// FenceTimeout bounds the wait for the coordinator fence that fixes
	// the cut (default DefaultFenceTimeout).
	FenceTimeout time.Duration
}

// Finding is one record that needs attention, or one broken rule.
type Finding struct {
	Table  string `json:"table"`
	Key    string `json:"key,omitempty"`
	TxID   string `json:"tx_id,omitempty"`
	Detail string `json:"detail"`
}

// String is the finding on one line; parts it does not have are left out.
func (f Finding) String() string {
	s := f.Table
	if f.Key != "" {
		s += " " + f.Key
	}
	if f.TxID != "" {
		s += " (transaction " + f.TxID + ")"
	}
	return s + ": " + f.Detail
}

// Report is the outcome of a verification.
type Report struct {
	Tables  int `json:"tables"`
	Records int `json:"records"`
	// InFlight counts pending records of transactions that may still be
	// running (younger than the lifetime): normal on a live system.
	InFlight int `json:"in_flight"`
	// CommittedWithoutDecision counts COMMITTED records whose transaction
	// has no coordinator row: ScalarDB 3.16+'s one-phase commit writes
	// none, and 3.19 deletes rows of finished transactions. Information,
	// not a violation: see docs/recovery-compat.md for what verify can
	// still prove about them.
	CommittedWithoutDecision int          `json:"committed_without_coordinator_row"`
	Recovered                *txn.Settled `json:"recovered,omitempty"` // with Repair
	// Pending lists records lazy recovery would settle now: their writer
	// decided or outlived the lifetime and did not finish.
	Pending    []Finding                   `json:"pending,omitempty"`
	Violations []Finding                   `json:"violations,omitempty"`
	Bank       map[string]*bank.Invariants `json:"bank,omitempty"` // by first namespace
}

// OK reports whether nothing is wrong and nothing is left to settle.
func (r *Report) OK() bool { return len(r.Violations) == 0 && len(r.Pending) == 0 }

func (r *Report) violation(f Finding) { r.Violations = append(r.Violations, f) }

// Run verifies every transactional table the storage holds, at one cut
// taken under the coordinator fence (DESIGN.md section 5): a transaction
// that commits while verify reads is either wholly in the cut or not at
// all, so a live system is judged as exactly as a quiet one. m supplies
// the transaction lifetime and clock, and carries out repairs.
func Run(ctx context.Context, st storage.Store, m *txn.Manager, opts Options) (*Report, error) {
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.FenceTimeout <= 0 {
		opts.FenceTimeout = DefaultFenceTimeout
	}
	// Only namespaces that exist are read: looking for one that does not
	// would create its file in the embedded default.
	namespaces, err := st.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	if slices.Contains(namespaces, config.StillpointNamespace) {
		if id, err := restore.Unfinished(ctx, st); err != nil {
			return nil, err
		} else if id != "" {
			return nil, hint.Run(fmt.Errorf("%w: these stores hold an unfinished restore of backup %s: run the restore again, from the same repository, to finish it", ErrUnfinishedRestore, id), "restore", id)
		}
	}
	r := &Report{Bank: map[string]*bank.Invariants{}}
	inv, err := inventory(ctx, st, namespaces, r)
	if err != nil {
		return nil, err
	}
	if opts.Repair {
		// Wait only for the records the first pass had to leave: on a live
		// system new transactions keep leaving young records behind.
		deadline := time.Now().Add(opts.Wait)
		var waitFor map[string]bool
		r.Recovered = &txn.Settled{}
		for {
			left, err := settle(ctx, m, inv.tables, r.Recovered)
			if err != nil {
				return nil, err
			}
			if waitFor == nil {
				waitFor = left
			}
			maps.DeleteFunc(waitFor, func(id string, _ bool) bool { return !left[id] })
			if len(waitFor) == 0 || !time.Now().Before(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(opts.Poll):
			}
		}
	}
	if err := check(ctx, st, m, inv, opts.FenceTimeout, r); err != nil {
		return nil, err
	}
	return r, nil
}

// stores is what verify found: the transactional tables it can read
// whole, the banks, and whether there is a coordinator table.
type stores struct {
	tables      []*storage.TableMetadata
	banks       map[string]*bank.Setup
	coordinator *storage.TableMetadata
}

func inventory(ctx context.Context, st storage.Store, namespaces []string, r *Report) (*stores, error) {
	inv := &stores{banks: map[string]*bank.Setup{}}
	for _, ns := range namespaces {
		if ns == schema.CoordinatorNamespace {
			m, err := st.TableMetadata(ctx, ns, schema.CoordinatorTable)
			if err != nil {
				return nil, err
			}
			inv.coordinator = m
			continue
		}
		names, err := st.Tables(ctx, ns)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if name == bank.SetupTable {
				s, err := bank.Load(ctx, st, ns)
				if err != nil {
					r.violation(Finding{Table: ns + "." + name, Detail: err.Error()})
				} else if s != nil {
					inv.banks[ns] = s
				}
				continue
			}
			m, err := st.TableMetadata(ctx, ns, name)
			if err != nil {
				return nil, err
			}
			if m == nil || !meantTransactional(m) {
				continue
			}
			if problem := layoutProblem(m); problem != "" {
				r.violation(Finding{Table: m.FullName(), Detail: problem})
				continue
			}
			inv.tables = append(inv.tables, m)
		}
	}
	r.Tables = len(inv.tables)
	return inv, nil
}

// meantTransactional: the table carries any transaction column, so it is
// transactional or a damaged transactional table.
func meantTransactional(m *storage.TableMetadata) bool {
	for _, c := range schema.TxColumns {
		if _, ok := m.Column(c.Name); ok {
			return true
		}
		if _, ok := m.Column(schema.BeforePrefix + c.Name); ok {
			return true
		}
	}
	return false
}

// layoutProblem compares a table with the transactional layout of its own
// columns. Recovery of a record whose before image it cannot read would
// take the record for an insert and delete it, so such a table is neither
// checked nor repaired.
func layoutProblem(m *storage.TableMetadata) string {
	user := *m
	user.Columns = slices.DeleteFunc(slices.Clone(m.Columns), func(c storage.Column) bool { return schema.IsReserved(m, c.Name) })
	want := schema.Transactional(&user)
	var problems []string
	for _, c := range want.Columns {
		if got, ok := m.Column(c.Name); !ok {
			problems = append(problems, "missing column "+c.Name)
		} else if got.Type != c.Type {
			problems = append(problems, fmt.Sprintf("column %s is %v, want %v", c.Name, got.Type, c.Type))
		}
	}
	for _, c := range m.Columns {
		if _, ok := want.Column(c.Name); !ok {
			problems = append(problems, "unexpected column "+c.Name)
		}
	}
	if len(problems) == 0 {
		return ""
	}
	return "the metadata does not hold a whole transactional layout (" + strings.Join(problems, "; ") +
		"): the table is neither checked nor repaired until its metadata is whole"
}

// settle runs lazy recovery over the pending records it reads now, adding
// what it did to recovered, and returns the records it had to leave.
func settle(ctx context.Context, m *txn.Manager, tables []*storage.TableMetadata, recovered *txn.Settled) (map[string]bool, error) {
	left := map[string]bool{}
	for _, t := range tables {
		recs, err := m.Store().ScanAll(ctx, storage.ScanAll{Namespace: t.Namespace, Table: t.Table})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue // the check reads it again and reports it
		}
		for _, rec := range recs {
			meta := consensus.MetaOf(rec)
			if !meta.Pending() || recordProblem(rec, meta) != "" {
				continue
			}
			ref := consensus.Ref{Table: t, Key: consensus.KeyOf(t, rec)}
			action, err := m.RecoverRecord(ctx, ref, rec)
			if err != nil {
				return nil, fmt.Errorf("recover %s %s of transaction %s: %w", t.FullName(), t.KeyString(ref.Key), meta.TxID, err)
			}
			if action == consensus.Leave {
				left[ref.ID()+" "+meta.TxID] = true
				continue
			}
			recovered.Add(action)
		}
	}
	return left, nil
}

// recordProblem names what makes a record's transaction metadata
// unreadable, or returns "".
func recordProblem(rec storage.Record, meta consensus.Meta) string {
	if v := rec[schema.TxState]; v != nil {
		if _, ok := v.(int32); !ok {
			return fmt.Sprintf("tx_state %v (%T) is not an INT", v, v)
		}
	}
	switch meta.State {
	case consensus.Prepared, consensus.Deleted:
		if meta.TxID == "" {
			return meta.State.String() + " with no tx_id"
		}
	case consensus.Committed:
	default:
		return fmt.Sprintf("tx_state %d is not a record state (PREPARED, DELETED or COMMITTED)", meta.State)
	}
	return ""
}

// check reads every table at one cut and judges each record against the
// coordinator's decisions in the same cut.
func check(ctx context.Context, st storage.Store, m *txn.Manager, inv *stores, fenceTimeout time.Duration, r *Report) error {
	c, err := openCut(ctx, st, inv, fenceTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	var transfers int64
	decisions := map[string]consensus.CoordinatorRow{}
	if c.coordinator != nil {
		err := c.coordinator.ReadTable(ctx, inv.coordinator, func(row storage.Record) error {
			if bank.IsCommittedTransfer(row) {
				transfers++
			}
			if id, ok := row[schema.TxID].(string); ok {
				decisions[id], _ = consensus.CoordinatorRowOf(row)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the coordinator table: %w", err)
		}
	}
	accounts := map[string][]storage.Record{}
	for _, t := range inv.tables {
		err := c.snapshots[t.Namespace].ReadTable(ctx, t, func(rec storage.Record) error {
			r.Records++
			if settled := r.judge(m, t, rec, decisions); settled != nil && t.Table == bank.AccountsTable {
				accounts[t.Namespace] = append(accounts[t.Namespace], settled)
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.violation(Finding{Table: t.FullName(), Detail: "cannot read the table: " + err.Error()})
		}
	}
	for _, ns := range slices.Sorted(maps.Keys(inv.banks)) {
		iv := bank.Tally(inv.banks[ns], accounts, transfers)
		r.Bank[ns] = &iv
		for _, v := range iv.Violations {
			r.violation(Finding{Table: ns + "." + bank.AccountsTable, Detail: "bank invariant: " + v})
		}
	}
	return nil
}

// judge reports what is wrong with one record of the cut and returns the
// record as recovery would leave it (nil: absent), or nil when it cannot
// be read.
func (r *Report) judge(m *txn.Manager, t *storage.TableMetadata, rec storage.Record, decisions map[string]consensus.CoordinatorRow) storage.Record {
	meta := consensus.MetaOf(rec)
	ref := consensus.Ref{Table: t, Key: consensus.KeyOf(t, rec)}
	f := Finding{Table: t.FullName(), Key: t.KeyString(ref.Key), TxID: meta.TxID}
	if p := recordProblem(rec, meta); p != "" {
		f.Detail = "cannot read the record's transaction metadata: " + p
		r.violation(f)
		return nil
	}
	decision := consensus.Decide(meta.TxID, decisions)
	if !meta.Pending() {
		// A record committed through the coordinator has its decision in
		// the cut; one committed without it (one-phase commit) has none.
		switch {
		case meta.TxID == "" || decision == consensus.Committed:
		case decision == 0:
			r.CommittedWithoutDecision++
		default:
			f.Detail = "record COMMITTED but coordinator says " + decision.String()
			r.violation(f)
		}
		return rec
	}
	action := m.Recovery(rec, decision)
	expired := m.Recovery(rec, 0) == consensus.AbortExpired
	switch {
	case action == consensus.AbortExpired:
		f.Detail = meta.State.String() + ", no decision, older than the transaction lifetime: --repair aborts it and rolls it back"
		r.Pending = append(r.Pending, f)
	case expired:
		f.Detail = meta.State.String() + ", the coordinator says " + decision.String() + " and its writer did not finish within the transaction lifetime: --repair will " + action.String()
		r.Pending = append(r.Pending, f)
	default:
		r.InFlight++
	}
	// In the cut, a transaction without a decision decides after it, so
	// none of its records is COMMITTED there: it rolls back.
	if decision != consensus.Committed {
		action = consensus.RollBack
	} else {
		action = consensus.RollForward
	}
	switch mu := consensus.RecoveryMutation(ref, rec, action, 0).(type) {
	case storage.Put:
		settled := maps.Clone(rec)
		maps.Copy(settled, mu.Values)
		return settled
	default:
		return nil // deleted
	}
}

// theCut is one snapshot per store, by namespace, and the coordinator's.
type theCut struct {
	*cut.Cut
	snapshots   map[string]cut.Snapshot // by namespace
	coordinator cut.Snapshot            // nil: no coordinator table
}

// router is a storage that routes namespaces to stores (multistorage);
// any other Store is one store holding everything.
type router interface {
	StoreName(namespace string) (string, error)
	Store(ctx context.Context, name string) (storage.Store, error)
}

// openCut fixes one cut of every store the tables live in, under the
// coordinator fence, held only while the snapshots open. With no
// coordinator table there is no decision to fence: the snapshots are
// opened as they are.
func openCut(ctx context.Context, st storage.Store, inv *stores, fenceTimeout time.Duration) (*theCut, error) {
	storeOf := func(string) (string, storage.Store, error) { return "", st, nil }
	if rt, ok := st.(router); ok {
		storeOf = func(ns string) (string, storage.Store, error) {
			name, err := rt.StoreName(ns)
			if err != nil {
				return "", nil, err
			}
			s, err := rt.Store(ctx, name)
			return name, s, err
		}
	}
	namespaces := map[string]string{}
	engines := map[string]cut.Engine{}
	add := func(ns string) error {
		name, s, err := storeOf(ns)
		if err != nil {
			return err
		}
		namespaces[ns] = name
		if _, ok := engines[name]; !ok {
			if engines[name], err = cut.EngineOf(s); err != nil {
				return err
			}
		}
		return nil
	}
	for _, t := range inv.tables {
		if err := add(t.Namespace); err != nil {
			return nil, err
		}
	}
	var c *cut.Cut
	var err error
	if inv.coordinator != nil {
		if err := add(schema.CoordinatorNamespace); err != nil {
			return nil, err
		}
		c, err = cut.Take(ctx, namespaces[schema.CoordinatorNamespace], engines, fenceTimeout, cut.DefaultMaxHold)
	} else {
		c, err = cut.Open(ctx, engines, cut.DefaultMaxHold)
	}
	if err != nil {
		return nil, err
	}
	out := &theCut{Cut: c, snapshots: map[string]cut.Snapshot{}}
	for ns, name := range namespaces {
		out.snapshots[ns] = c.Snapshots[name]
	}
	if inv.coordinator != nil {
		out.coordinator = out.snapshots[schema.CoordinatorNamespace]
	}
	return out, nil
}
