package restore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestDynamoDBBackupsRestore: fence backups of a bank across DynamoDB (no
// snapshot: read whole under the fence, docs/no-snapshot-cut.md) and
// PostgreSQL (the coordinator), each taken while transfers run, restore
// into a fresh DynamoDB + PostgreSQL and, across engines, into SQLite,
// with both bank invariants and nothing left pending.
// STILLPOINT_TRIALS sets how many backups (default 2, full: 10).
func TestDynamoDBBackupsRestore(t *testing.T) {
	mixed := func(t testing.TB) *config.Config {
		return &config.Config{DataDir: t.TempDir(), Source: "test", Coordinator: "pg",
			Stores: map[string]config.Store{
				"pg": {Engine: "postgres", DSN: testenv.PostgresDSN(t)},
				"dy": {Engine: "dynamodb", DSN: testenv.DynamoDSN(t)},
			},
			Namespaces: map[string]string{"bank_0": "pg", "bank_1": "dy"}}
	}
	src := newBank(t, mixed(t), []string{"bank_0", "bank_1"}, 20)
	for i := range testenv.Trials(t, 2, 10) {
		man := src.backupUnderLoad(t)
		for _, target := range []struct {
			name string
			cfg  func(testing.TB) *config.Config
		}{{"dynamodb+postgres", mixed}, {"sqlite", func(t testing.TB) *config.Config { return testenv.Embedded(t) }}} {
			t.Run(fmt.Sprintf("backup %d into %s", i+1, target.name), func(t *testing.T) {
				st := multistorage.New(target.cfg(t))
				defer st.Close()
				if _, err := restore.Run(context.Background(), src.repo, man, restore.Stores(st), restore.Options{}); err != nil {
					t.Fatal(err)
				}
				rep := checkSettled(t, st, src.setup)
				t.Logf("%d committed transfers restored", rep.Bank[src.setup.Namespaces[0]].CommittedTransfers)
			})
		}
	}
}
