// Package bank is the acid test (DESIGN.md section 8): accounts spread over
// several stores, transfers between accounts in different stores, and two
// invariants that any consistent state keeps.
package bank

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

const (
	// AccountsTable holds the accounts of one namespace.
	AccountsTable = "accounts"
	// SetupTable (non-transactional, in the first namespace) records how
	// the bank was set up, so the invariants can be checked later.
	SetupTable = "bank_setup"
	// TransferPrefix starts the id of every transfer transaction, so its
	// coordinator row can be counted.
	TransferPrefix = "transfer-"
	setupPrefix    = "bank-setup-"
)

// DefaultNamespaces are two namespaces: on the embedded default, two SQLite
// databases beside the coordinator's.
var DefaultNamespaces = []string{"bank_0", "bank_1"}

// Setup describes a bank.
type Setup struct {
	Namespaces     []string `json:"namespaces"`
	Accounts       int      `json:"accounts"` // per namespace
	InitialBalance int64    `json:"initial_balance"`
}

// Tables returns the schema of a bank over the given namespaces.
func Tables(namespaces []string) []schema.Table {
	var out []schema.Table
	for _, ns := range namespaces {
		out = append(out, schema.Table{Transactional: true, User: &storage.TableMetadata{
			Namespace: ns, Table: AccountsTable,
			Columns:      []storage.Column{{Name: "account_id", Type: storage.Int}, {Name: "balance", Type: storage.BigInt}},
			PartitionKey: []string{"account_id"},
		}})
	}
	out = append(out, schema.Table{User: &storage.TableMetadata{
		Namespace: namespaces[0], Table: SetupTable,
		Columns: []storage.Column{{Name: "id", Type: storage.Int}, {Name: "namespaces", Type: storage.Text},
			{Name: "accounts", Type: storage.Int}, {Name: "initial_balance", Type: storage.BigInt}},
		PartitionKey: []string{"id"},
	}})
	return out
}

// Create makes the tables and the accounts. It refuses a bank that exists.
// progress, when not nil, is told of each batch of accounts created.
func Create(ctx context.Context, target schema.Target, m *txn.Manager, s Setup, progress func(accounts int)) error {
	if len(s.Namespaces) < 2 {
		return errors.New("the bank needs at least two namespaces, so transfers cross stores")
	}
	if s.Accounts < 1 {
		return errors.New("the bank needs at least one account per namespace")
	}
	if existing, err := Load(ctx, m.Store(), s.Namespaces[0]); err != nil {
		return err
	} else if existing != nil {
		return fmt.Errorf("a bank already exists in namespace %s; drop it or use it as it is", s.Namespaces[0])
	}
	if _, err := schema.Create(ctx, target, Tables(s.Namespaces)); err != nil {
		return err
	}
	const batch = 100
	for _, ns := range s.Namespaces {
		for lo := 0; lo < s.Accounts; lo += batch {
			err := m.Run(ctx, 5, func(ctx context.Context, tx *txn.Transaction) error {
				for id := lo; id < min(lo+batch, s.Accounts); id++ {
					if err := tx.Put(ctx, storage.Put{Namespace: ns, Table: AccountsTable,
						Values: storage.Record{"account_id": id, "balance": s.InitialBalance}}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("create accounts in %s: %w", ns, err)
			}
			if progress != nil {
				progress(min(batch, s.Accounts-lo))
			}
		}
	}
	return m.Store().Put(ctx, storage.Put{Namespace: s.Namespaces[0], Table: SetupTable, Values: storage.Record{
		"id": 0, "namespaces": strings.Join(s.Namespaces, ","), "accounts": s.Accounts, "initial_balance": s.InitialBalance,
	}})
}

// Load reads the setup of the bank whose first namespace is ns (nil: none).
// A setup row it cannot read is an error naming what is wrong.
func Load(ctx context.Context, st storage.Store, ns string) (*Setup, error) {
	m, err := st.TableMetadata(ctx, ns, SetupTable)
	if err != nil || m == nil {
		return nil, err
	}
	r, err := st.Get(ctx, storage.Get{Namespace: ns, Table: SetupTable, Key: storage.Key{"id": 0}})
	if err != nil || r == nil {
		return nil, err
	}
	namespaces, okN := r["namespaces"].(string)
	accounts, okA := r["accounts"].(int32)
	initial, okI := r["initial_balance"].(int64)
	if !okN || !okA || !okI || namespaces == "" {
		return nil, fmt.Errorf("%s.%s: the setup row cannot be read (namespaces %v, accounts %v, initial_balance %v): it was damaged or written by hand",
			ns, SetupTable, r["namespaces"], r["accounts"], r["initial_balance"])
	}
	return &Setup{Namespaces: strings.Split(namespaces, ","), Accounts: int(accounts), InitialBalance: initial}, nil
}

// Invariants are the two checks of DESIGN.md section 8 on a settled state.
type Invariants struct {
	Accounts           int   `json:"accounts"`
	Total              int64 `json:"total"`
	ExpectedTotal      int64 `json:"expected_total"`
	VersionSum         int64 `json:"version_sum"`
	CommittedTransfers int64 `json:"committed_transfers"`
	ExpectedVersionSum int64 `json:"expected_version_sum"`
	// Pending counts records still PREPARED or DELETED: the state is not
	// settled and the sums mean nothing until recovery has run.
	Pending    int      `json:"pending"`
	Violations []string `json:"violations,omitempty"`
}

// OK reports whether both invariants hold.
func (iv Invariants) OK() bool { return len(iv.Violations) == 0 }

// Check computes the invariants from the stores as they are, reading the
// records and the coordinator table directly.
func Check(ctx context.Context, st storage.Store, s *Setup) (Invariants, error) {
	accounts := map[string][]storage.Record{}
	for _, ns := range s.Namespaces {
		recs, err := st.ScanAll(ctx, storage.ScanAll{Namespace: ns, Table: AccountsTable})
		if err != nil {
			return Invariants{}, err
		}
		accounts[ns] = recs
	}
	rows, err := st.ScanAll(ctx, storage.ScanAll{Namespace: schema.CoordinatorNamespace, Table: schema.CoordinatorTable})
	if err != nil {
		return Invariants{}, err
	}
	var transfers int64
	for _, r := range rows {
		if IsCommittedTransfer(r) {
			transfers++
		}
	}
	return Tally(s, accounts, transfers), nil
}

// IsCommittedTransfer reports whether a coordinator row records a
// committed transfer.
func IsCommittedTransfer(row storage.Record) bool {
	id, _ := row[schema.TxID].(string)
	return strings.HasPrefix(id, TransferPrefix) && consensus.DecisionOf(row) == consensus.Committed
}

// balance reads an account's balance, or says which account has none.
func balance(ns string, account storage.Record) (int64, error) {
	b, ok := account["balance"].(int64)
	if !ok {
		return 0, fmt.Errorf("%s.%s account_id %v: balance %v is not a BIGINT", ns, AccountsTable, account["account_id"], account["balance"])
	}
	return b, nil
}

// Tally computes the invariants from the account records of each of the
// bank's namespaces. An account it cannot read (a NULL or mistyped
// balance) is a violation naming it, never a crash.
func Tally(s *Setup, accounts map[string][]storage.Record, committedTransfers int64) Invariants {
	iv := Invariants{CommittedTransfers: committedTransfers}
	for _, ns := range s.Namespaces {
		for _, r := range accounts[ns] {
			meta := consensus.MetaOf(r)
			if meta.Pending() {
				iv.Pending++
			}
			iv.Accounts++
			iv.VersionSum += int64(meta.Version)
			if b, err := balance(ns, r); err != nil {
				iv.Violations = append(iv.Violations, err.Error())
			} else {
				iv.Total += b
			}
		}
	}
	n := int64(s.Accounts) * int64(len(s.Namespaces))
	iv.ExpectedTotal = n * s.InitialBalance
	iv.ExpectedVersionSum = n + 2*iv.CommittedTransfers
	if iv.Pending > 0 {
		iv.Violations = append(iv.Violations, fmt.Sprintf("%d account records are still PREPARED or DELETED: run recovery first", iv.Pending))
	}
	if int64(iv.Accounts) != n {
		iv.Violations = append(iv.Violations, fmt.Sprintf("%d accounts, want %d", iv.Accounts, n))
	}
	if iv.Total != iv.ExpectedTotal {
		iv.Violations = append(iv.Violations, fmt.Sprintf("total balance %d, want %d (money was created or destroyed)", iv.Total, iv.ExpectedTotal))
	}
	if iv.VersionSum != iv.ExpectedVersionSum {
		iv.Violations = append(iv.Violations, fmt.Sprintf("sum of tx_version %d, want %d (%d accounts + 2 × %d committed transfers)", iv.VersionSum, iv.ExpectedVersionSum, n, iv.CommittedTransfers))
	}
	return iv
}
