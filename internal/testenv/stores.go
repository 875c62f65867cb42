package testenv

import (
	"context"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage/mysql"
)

// Embedded is the embedded default: every namespace an SQLite file in a
// fresh directory.
func Embedded(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Load("", t.TempDir())
	if err != nil {
		t.Fatalf("embedded config: %v", err)
	}
	return cfg
}

// Mixed is PostgreSQL plus MariaDB: the namespaces go alternately to a
// fresh PostgreSQL database ("pg") and the shared MariaDB ("maria"); the
// coordinator is on PostgreSQL. MariaDB namespaces must come from UniqueName.
func Mixed(t testing.TB, namespaces ...string) *config.Config {
	t.Helper()
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Stores: map[string]config.Store{
			"pg":    {Engine: "postgres", DSN: PostgresDSN(t)},
			"maria": {Engine: "mysql", DSN: MySQLDSN(t)},
		},
		Namespaces:  map[string]string{},
		Coordinator: "pg",
		Source:      "test",
	}
	for i, ns := range namespaces {
		cfg.Namespaces[ns] = []string{"pg", "maria"}[i%2]
	}
	t.Cleanup(func() { dropMySQLNamespaces(t, cfg) })
	return cfg
}

// dropMySQLNamespaces removes what a test created on the shared MariaDB.
func dropMySQLNamespaces(t testing.TB, cfg *config.Config) {
	ctx := context.Background()
	st, err := mysql.Open(ctx, "maria", cfg.Stores["maria"].DSN)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer st.Close()
	for ns, store := range cfg.Namespaces {
		if store != "maria" {
			continue
		}
		tables, _ := st.Tables(ctx, ns)
		for _, tbl := range tables {
			if err := st.DropTable(ctx, ns, tbl); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
		_ = st.DropNamespace(ctx, ns)
	}
}
