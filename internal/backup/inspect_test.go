package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// TestInspect: diff counts exactly the rows the transfers between two
// backups changed, stats adds up, and check finds a damaged chunk that
// only --read-data can see and a missing one that it always sees.
func TestInspect(t *testing.T) {
	ctx := context.Background()
	st := multistorage.New(testenv.Embedded(t))
	defer st.Close()
	m := txn.NewManager(st, txn.Options{})
	setup := bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 50, InitialBalance: 1000}
	if err := bank.Create(ctx, st, m, setup, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := newRepo(t, dir, nil)
	first, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	// One at a time, so every transfer commits (no conflicts).
	stats, err := bank.Run(ctx, bank.Local(m), &setup, bank.Workload{Concurrency: 1, Count: 10})
	if err != nil || stats.Committed != 10 {
		t.Fatalf("transfers: %+v, %v; want 10 committed", stats, err)
	}
	second, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}

	d, err := backup.Diff(ctx, r, first, second, true)
	if err != nil {
		t.Fatal(err)
	}
	var changedAccounts int64
	for _, td := range d.Tables {
		switch {
		case td.Table == "coordinator.state":
			if td.Change != backup.Changed || *td.RowsAdded != 10 || *td.RowsRemoved != 0 || *td.RowsChanged != 0 {
				t.Errorf("coordinator.state: %+v; want 10 decisions added", td)
			}
		case strings.HasSuffix(td.Table, ".accounts"):
			if *td.RowsAdded != 0 || *td.RowsRemoved != 0 || td.RowsFrom != 50 || td.RowsTo != 50 {
				t.Errorf("%s: %+v; want 50 rows before and after, none added or removed", td.Table, td)
			}
			changedAccounts += *td.RowsChanged
		default:
			if td.Change != backup.Unchanged {
				t.Errorf("%s: %s, want unchanged", td.Table, td.Change)
			}
		}
	}
	// Each transfer writes two accounts; one account may be written twice.
	if changedAccounts < 2 || changedAccounts > 20 {
		t.Errorf("%d accounts changed by 10 transfers; want 2 to 20", changedAccounts)
	}
	if same, err := backup.Diff(ctx, r, second, second, true); err != nil || same.Tables[0].Change != backup.Unchanged {
		t.Errorf("a backup against itself: %+v, %v; want unchanged", same, err)
	}

	s, err := backup.Stats(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	var unique, logical int64
	for _, b := range s.PerBackup {
		unique += b.UniqueBytes
		logical += b.LogicalBytes
		if b.StoredBytes > s.StoredBytes || b.UniqueBytes > b.StoredBytes {
			t.Errorf("backup %s: %+v exceeds the repository's %d stored bytes", b.ID, b, s.StoredBytes)
		}
	}
	if s.Backups != 2 || len(s.PerStore) != 3 || logical != s.LogicalBytes || unique > s.StoredBytes || s.SavingRatio <= 1 {
		t.Errorf("stats %+v: want 2 backups over 3 stores, logical bytes summing up, and a saving", s)
	}

	check := func(readData bool) *backup.RepositoryCheck {
		t.Helper()
		c, err := backup.Check(ctx, r, readData, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := check(true); !c.OK() || c.Backups != 2 || c.Chunks == 0 || c.Unreferenced != 0 {
		t.Fatalf("check of a sound repository: %+v", c)
	}
	chunks, _ := filepath.Glob(filepath.Join(dir, "data", "*", "*"))
	if len(chunks) < 2 {
		t.Fatalf("%d chunk files under %s", len(chunks), dir)
	}
	b, _ := os.ReadFile(chunks[0])
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(chunks[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	if c := check(false); !c.OK() {
		t.Errorf("check without --read-data of a flipped byte: %+v; want it unseen (the chunk exists)", c)
	}
	if c := check(true); c.OK() || len(c.Problems) != 1 || !strings.Contains(c.Problems[0], filepath.Base(chunks[0])) {
		t.Errorf("check --read-data of a flipped byte: %+v; want one problem naming %s", c, filepath.Base(chunks[0]))
	}
	if err := os.Remove(chunks[1]); err != nil {
		t.Fatal(err)
	}
	if c := check(false); len(c.Problems) != 1 || !strings.Contains(c.Problems[0], "missing") {
		t.Errorf("check of a missing chunk: %+v; want it named missing", c)
	}
}
