package dynamodb_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/dynamodb"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// bulkLoader is a store that loads records into a table in bulk
// (restore's path: BatchWriteItem on DynamoDB, COPY on PostgreSQL).
type bulkLoader interface {
	Load(ctx context.Context, m *storage.TableMetadata, next func() (storage.Record, error)) (int64, error)
}

// loadChunk is how many accounts one Load call writes; loadInFlight Load
// calls run at once, so as many BatchWriteItem requests are in flight.
const (
	loadChunk    = 10_000
	loadInFlight = 8
)

// createBank leaves the stores as bank.Create does, without a transaction
// per 100 accounts, which takes most of an hour for 1,000,000 accounts in
// dynalite: account 0 of every namespace is inserted by a real
// transaction, and the others are that committed record (the same tx_*
// columns, the same absent before_* ones) with their own account_id,
// bulk loaded through the engine's own encoding.
// TestCreateBankAsCommittedInserts checks that the items are the same.
func createBank(ctx context.Context, st *multistorage.Storage, m *txn.Manager, s bank.Setup) error {
	if _, err := schema.Create(ctx, st, bank.Tables(s.Namespaces)); err != nil {
		return err
	}
	err := m.Run(ctx, 5, func(ctx context.Context, tx *txn.Transaction) error {
		for _, ns := range s.Namespaces {
			if err := tx.Put(ctx, storage.Put{Namespace: ns, Table: bank.AccountsTable,
				Values: storage.Record{"account_id": 0, "balance": s.InitialBalance}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("insert the template accounts: %w", err)
	}
	for _, ns := range s.Namespaces {
		if err := loadAccounts(ctx, st, ns, s.Accounts); err != nil {
			return fmt.Errorf("load the accounts of %s: %w", ns, err)
		}
	}
	return st.Put(ctx, storage.Put{Namespace: s.Namespaces[0], Table: bank.SetupTable, Values: storage.Record{
		"id": 0, "namespaces": strings.Join(s.Namespaces, ","), "accounts": s.Accounts, "initial_balance": s.InitialBalance,
	}})
}

// newBank is a bank of s in PostgreSQL (bank_0, the coordinator) and
// DynamoDB (bank_1), made by createBank: its storage, its transaction
// manager, and the two stores' DSNs.
func newBank(tb testing.TB, s bank.Setup) (st *multistorage.Storage, m *txn.Manager, pgDSN, dyDSN string) {
	tb.Helper()
	pgDSN, dyDSN = testenv.PostgresDSN(tb), testenv.DynamoDSN(tb)
	st = multistorage.New(bankConfig(tb.TempDir(), pgDSN, dyDSN))
	tb.Cleanup(func() { st.Close() })
	m = txn.NewManager(st, txn.Options{})
	if err := createBank(context.Background(), st, m, s); err != nil {
		tb.Fatal(err)
	}
	return st, m, pgDSN, dyDSN
}

// newRepo is an empty repository in a temporary directory.
func newRepo(tb testing.TB) *repo.Repository {
	tb.Helper()
	ctx := context.Background()
	be, err := backend.Open(ctx, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	r, err := repo.Init(ctx, be, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// loadAccounts copies account 0 of ns to the accounts 1..n-1.
func loadAccounts(ctx context.Context, st *multistorage.Storage, ns string, n int) error {
	store, err := st.ForNamespace(ctx, ns)
	if err != nil {
		return err
	}
	loader, ok := store.(bulkLoader)
	if !ok {
		return fmt.Errorf("store %T has no bulk load", store)
	}
	meta, err := store.TableMetadata(ctx, ns, bank.AccountsTable)
	if err != nil {
		return err
	}
	template, err := store.Get(ctx, storage.Get{Namespace: ns, Table: bank.AccountsTable, Key: storage.Key{"account_id": 0}})
	if err != nil || template == nil {
		return fmt.Errorf("read account 0: %v, %w", template, err)
	}
	// A column the insert left out reads as nil: leave it out too.
	maps.DeleteFunc(template, func(_ string, v any) bool { return v == nil })
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(loadInFlight)
	for lo := 1; lo < n; lo += loadChunk {
		g.Go(func() error {
			id, hi := lo, min(lo+loadChunk, n)
			_, err := loader.Load(gctx, meta, func() (storage.Record, error) {
				if id == hi {
					return nil, io.EOF
				}
				r := maps.Clone(template)
				r["account_id"] = int32(id)
				id++
				return r, nil
			})
			return err
		})
	}
	return g.Wait()
}

// TestCreateBankAsCommittedInserts: the accounts createBank loads are, item
// for item, what bank.Create's committed inserts leave in DynamoDB, but for
// the transaction's id and times; and the bank's invariants hold.
func TestCreateBankAsCommittedInserts(t *testing.T) {
	ctx := context.Background()
	items := func(create func(*multistorage.Storage, *txn.Manager, bank.Setup) error) (got []map[string]types.AttributeValue) {
		dsn := testenv.DynamoDSN(t)
		cfg := &config.Config{DataDir: t.TempDir(), Source: "test", Coordinator: "dy",
			Stores:     map[string]config.Store{"dy": {Engine: "dynamodb", DSN: dsn}},
			Namespaces: map[string]string{"bank_0": "dy", "bank_1": "dy"}}
		st := multistorage.New(cfg)
		defer st.Close()
		m := txn.NewManager(st, txn.Options{})
		s := bank.Setup{Namespaces: []string{"bank_0", "bank_1"}, Accounts: 3, InitialBalance: 100}
		if err := create(st, m, s); err != nil {
			t.Fatal(err)
		}
		if iv, err := bank.Check(ctx, st, &s); err != nil || !iv.OK() {
			t.Fatalf("invariants: %+v, %v", iv, err)
		}
		c, err := dynamodb.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		for id := range 3 {
			out, err := testenv.DynamoClient(t).GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(c.Prefix + "bank_1.accounts"), ConsistentRead: aws.Bool(true),
				Key: map[string]types.AttributeValue{"concatenatedPartitionKey": b([]byte{0x80, 0, 0, byte(id)})}})
			if err != nil || out.Item == nil {
				t.Fatalf("account %d: %v, %v", id, out, err)
			}
			got = append(got, out.Item)
		}
		return got
	}
	want := items(func(st *multistorage.Storage, m *txn.Manager, s bank.Setup) error {
		return bank.Create(ctx, st, m, s, nil)
	})
	loaded := items(func(st *multistorage.Storage, m *txn.Manager, s bank.Setup) error { return createBank(ctx, st, m, s) })
	for id := range 3 {
		w, l := want[id], loaded[id]
		for _, a := range []string{"tx_id", "tx_prepared_at", "tx_committed_at"} {
			if (w[a] == nil) != (l[a] == nil) {
				t.Errorf("account %d: %s is %v after bank.Create, %v after createBank", id, a, w[a], l[a])
			}
			delete(w, a)
			delete(l, a)
		}
		if !maps.EqualFunc(w, l, func(x, y types.AttributeValue) bool { return fmt.Sprint(x) == fmt.Sprint(y) }) {
			t.Errorf("account %d:\nbank.Create leaves %s\ncreateBank leaves  %s", id, render(w), render(l))
		}
	}
}

// render shows an item's attributes by name.
func render(it map[string]types.AttributeValue) string {
	var out []string
	for _, a := range slices.Sorted(maps.Keys(it)) {
		out = append(out, fmt.Sprintf("%s=%v", a, it[a]))
	}
	return strings.Join(out, " ")
}
