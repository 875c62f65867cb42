package restore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestNamesCheckedBeforeLoading: names a source engine holds but the
// target's cannot (a 64-character column into PostgreSQL, which would
// truncate it; tables T and t into SQLite, which folds case) fail the
// restore before anything is created, as a schema load would.
func TestNamesCheckedBeforeLoading(t *testing.T) {
	ctx := context.Background()
	nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
	names := testenv.UniqueName("names")
	src := newBank(t, postgresOnly(t, append(nss, names)...), nss, 3)
	tables := []*storage.TableMetadata{
		{Namespace: names, Table: "T", PartitionKey: []string{"k"}, Columns: []storage.Column{{Name: "k", Type: storage.Int}}},
		{Namespace: names, Table: "t", PartitionKey: []string{"k"}, Columns: []storage.Column{{Name: "k", Type: storage.Int}}},
	}
	for _, m := range tables {
		if err := src.st.CreateTable(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	man, err := backup.Create(ctx, src.st, src.repo, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	target := multistorage.New(testenv.Embedded(t))
	defer target.Close()
	_, err = restore.Run(ctx, src.repo, man, restore.Stores(target), restore.Options{})
	if err == nil || !strings.Contains(err.Error(), "differ only in case") || !strings.Contains(err.Error(), "nothing was restored") {
		t.Fatalf("restore of tables T and t into SQLite = %v, want a refusal naming the case collision", err)
	}
	if nss, err := target.Namespaces(ctx); err != nil || len(nss) != 0 {
		t.Fatalf("a refused restore created namespaces %v (%v)", nss, err)
	}

	// The other way: SQLite holds a name PostgreSQL would cut to 63 bytes.
	long := strings.Repeat("c", 64)
	lite := newBank(t, testenv.Embedded(t), nss, 3)
	if err := lite.st.CreateTable(ctx, &storage.TableMetadata{Namespace: names, Table: "wide", PartitionKey: []string{"k"},
		Columns: []storage.Column{{Name: "k", Type: storage.Int}, {Name: long, Type: storage.Int}}}); err != nil {
		t.Fatal(err)
	}
	man, err = backup.Create(ctx, lite.st, lite.repo, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	pg := multistorage.New(postgresOnly(t, append(nss, names)...))
	defer pg.Close()
	_, err = restore.Run(ctx, lite.repo, man, restore.Stores(pg), restore.Options{})
	if err == nil || !strings.Contains(err.Error(), long) || !strings.Contains(err.Error(), "at most 63") {
		t.Fatalf("restore of a 64-character column into PostgreSQL = %v, want a refusal naming it", err)
	}
	if nss, err := pg.Namespaces(ctx); err != nil || len(nss) != 0 {
		t.Fatalf("a refused restore created namespaces %v (%v)", nss, err)
	}
}
