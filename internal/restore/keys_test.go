package restore_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// postgresOnly puts every namespace, and the coordinator, in one fresh
// PostgreSQL database.
func postgresOnly(t testing.TB, nss ...string) *config.Config {
	cfg := &config.Config{DataDir: t.TempDir(), Stores: map[string]config.Store{"pg": {Engine: "postgres", DSN: testenv.PostgresDSN(t)}},
		Namespaces: map[string]string{}, Coordinator: "pg", Source: "test"}
	for _, ns := range nss {
		cfg.Namespaces[ns] = "pg"
	}
	return cfg
}

// TestKeyLengthsCheckedBeforeLoading: keys longer than MariaDB's key
// columns hold fail the restore into MariaDB before anything is created,
// naming table, column, length and limit, whether the manifest recorded
// the lengths or is older and they are measured; PostgreSQL takes them.
func TestKeyLengthsCheckedBeforeLoading(t *testing.T) {
	ctx := context.Background()
	nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
	keys := testenv.UniqueName("keys")
	src := newBank(t, testenv.Embedded(t), nss, 3)
	long := strings.Repeat("x", 5000)
	tables := []struct {
		name string
		typ  storage.DataType
		keys []any
	}{
		{"text_key", storage.Text, []any{long, "short"}},
		{"blob_key", storage.Blob, []any{bytes.Repeat([]byte{7}, 300)}},
		{"fits", storage.Text, []any{strings.Repeat("é", 128)}}, // 256 bytes, 128 characters
	}
	for _, tb := range tables {
		m := &storage.TableMetadata{Namespace: keys, Table: tb.name, PartitionKey: []string{"k"},
			Columns: []storage.Column{{Name: "k", Type: tb.typ}, {Name: "v", Type: storage.Int}}}
		if err := src.st.CreateTable(ctx, m); err != nil {
			t.Fatal(err)
		}
		for _, k := range tb.keys {
			if err := src.st.Put(ctx, storage.Put{Namespace: keys, Table: tb.name, Values: storage.Record{"k": k, "v": int32(1)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	man, err := backup.Create(ctx, src.st, src.repo, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	old := *man // as written before key lengths were recorded
	old.Stores = nil
	for _, s := range man.Stores {
		s.Tables = append([]backup.TableBackup{}, s.Tables...)
		for i := range s.Tables {
			s.Tables[i].KeyLengths = nil
		}
		old.Stores = append(old.Stores, s)
	}
	for _, m := range []*backup.Manifest{man, &old} {
		name := "recorded"
		if m == &old {
			name = "measured"
		}
		t.Run(name, func(t *testing.T) {
			target := multistorage.New(testenv.Mixed(t, nss[0], keys, nss[1])) // keys on MariaDB
			defer target.Close()
			_, err := restore.Run(ctx, src.repo, m, restore.Stores(target), restore.Options{})
			for _, want := range []string{keys + ".text_key column k", "5000 characters", "at most 128", keys + ".blob_key column k", "300 bytes"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("restore of too long keys into MariaDB = %v, want an error saying %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "fits") {
				t.Fatalf("a key of 128 characters was refused: %v", err)
			}
			if nss, err := target.Namespaces(ctx); err != nil || len(nss) != 0 {
				t.Fatalf("a refused restore created namespaces %v (%v)", nss, err)
			}
		})
	}
	t.Run("postgres", func(t *testing.T) {
		target := multistorage.New(postgresOnly(t, nss[0], nss[1], keys))
		defer target.Close()
		if _, err := restore.Run(ctx, src.repo, man, restore.Stores(target), restore.Options{}); err != nil {
			t.Fatalf("restore into PostgreSQL: %v", err)
		}
		rec, err := target.Get(ctx, storage.Get{Namespace: keys, Table: "text_key", Key: storage.Key{"k": long}})
		if err != nil || rec == nil {
			t.Fatalf("the 5000-character key after the restore: %v %v", rec, err)
		}
	})
}
