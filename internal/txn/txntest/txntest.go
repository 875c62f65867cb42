// Package txntest sets up stores shaped as ScalarDB leaves them, for the
// recovery tests of txn and verify: one engine at a time, the coordinator
// on it, in the coordinator layout of a chosen ScalarDB era.
package txntest

import (
	"context"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// Engines names the engines the tests run on, each with the coordinator
// on it: a PREPARED record is recovered through the coordinator rows of
// that engine's types and comparisons.
var Engines = []string{"sqlite", "postgres", "mariadb"}

// Coordinator layouts by ScalarDB era (Coordinator.java
// TABLE_METADATA_WITH_GROUP_COMMIT_DISABLED / _ENABLED, v3.13.0).
var (
	// Coordinator34 is 3.4 to 3.12, and 3.13+ with group commit disabled
	// when the table was created.
	Coordinator34 = schema.Coordinator()
	// Coordinator313 is 3.13+ with group commit enabled at creation:
	// tx_child_ids between tx_id and tx_state.
	Coordinator313 = &storage.TableMetadata{
		Namespace: schema.CoordinatorNamespace, Table: schema.CoordinatorTable,
		Columns: []storage.Column{
			{Name: schema.TxID, Type: storage.Text},
			{Name: schema.CoordinatorChildIDs, Type: storage.Text},
			{Name: schema.TxState, Type: storage.Int},
			{Name: schema.CoordinatorCreatedAt, Type: storage.BigInt},
		},
		PartitionKey: []string{schema.TxID},
	}
)

// Stores opens engine with every namespace given and the coordinator on
// it, and creates the coordinator table in the given layout. On the shared
// MariaDB the coordinator namespace is a unique one (ScalarDB's
// scalar.db.consensus_commit.coordinator.namespace), dropped at cleanup
// with the namespaces.
func Stores(t *testing.T, engine string, coordinator *storage.TableMetadata, namespaces ...string) *multistorage.Storage {
	t.Helper()
	var cfg *config.Config
	switch engine {
	case "sqlite":
		cfg = testenv.Embedded(t)
	case "postgres", "mariadb":
		name := map[string]string{"postgres": "pg", "mariadb": "maria"}[engine]
		cfg = testenv.Mixed(t, namespaces...)
		for _, ns := range namespaces {
			cfg.Namespaces[ns] = name
		}
		cfg.Coordinator = name
		if engine == "mariadb" {
			cfg.CoordinatorNamespace = testenv.UniqueName("coord")
		}
	default:
		t.Fatalf("unknown engine %q", engine)
	}
	st := multistorage.New(cfg)
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if engine == "mariadb" {
		t.Cleanup(func() {
			if err := st.DropTable(ctx, schema.CoordinatorNamespace, schema.CoordinatorTable); err != nil {
				t.Logf("cleanup: %v", err)
			}
			_ = st.DropNamespace(ctx, schema.CoordinatorNamespace)
		})
	}
	if err := st.CreateTable(ctx, coordinator); err != nil {
		t.Fatalf("create the coordinator table: %v", err)
	}
	return st
}

// Accounts opens engine (Stores) and creates a transactional table
// accounts (id INT, balance BIGINT) in a namespace of its own, in
// ScalarDB's layout.
func Accounts(t *testing.T, engine string, coordinator *storage.TableMetadata) (*multistorage.Storage, *storage.TableMetadata) {
	t.Helper()
	ns := testenv.UniqueName("acct")
	st := Stores(t, engine, coordinator, ns)
	m := schema.Transactional(&storage.TableMetadata{
		Namespace: ns, Table: "accounts",
		Columns:      []storage.Column{{Name: "id", Type: storage.Int}, {Name: "balance", Type: storage.BigInt}},
		PartitionKey: []string{"id"},
	})
	if err := st.CreateTable(context.Background(), m); err != nil {
		t.Fatalf("create %s: %v", m.FullName(), err)
	}
	return st, m
}

// Row is a coordinator row as ScalarDB writes it; Children "" leaves
// tx_child_ids NULL (ScalarDB writes it only when there are children).
type Row struct {
	ID       string
	State    consensus.State
	Children string
}

// PutRows inserts coordinator rows.
func PutRows(t *testing.T, st storage.Store, rows ...Row) {
	t.Helper()
	for _, r := range rows {
		p := consensus.CoordinatorPut(r.ID, r.State, 1)
		if r.Children != "" {
			p.Values[schema.CoordinatorChildIDs] = r.Children
		}
		if err := st.Put(context.Background(), p); err != nil {
			t.Fatalf("coordinator row %+v: %v", r, err)
		}
	}
}

// GetRow reads a coordinator row (false: none).
func GetRow(t *testing.T, st storage.Store, id string) (Row, bool) {
	t.Helper()
	rec, err := st.Get(context.Background(), consensus.CoordinatorGet(id))
	if err != nil {
		t.Fatalf("coordinator row %s: %v", id, err)
	}
	if rec == nil {
		return Row{}, false
	}
	children, _ := rec[schema.CoordinatorChildIDs].(string)
	return Row{ID: id, State: consensus.DecisionOf(rec), Children: children}, true
}
