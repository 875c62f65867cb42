package restore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/verify"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

type env struct {
	name string
	cfg  func(t testing.TB, ns ...string) *config.Config
}

var envs = []env{
	{"sqlite", func(t testing.TB, _ ...string) *config.Config { return testenv.Embedded(t) }},
	{"postgres+mariadb", func(t testing.TB, ns ...string) *config.Config { return testenv.Mixed(t, ns...) }},
}

// TestSettledRightAfterRestore: backups taken under load, restored over
// the very stores they came from (the disaster-recovery case): right after
// the restore, a read-only check finds nothing undecided, no violation,
// no record left PREPARED or DELETED, and both bank invariants hold. The
// restore finished the cut itself: from the keys it noted while loading,
// or, past the bound on those, by scanning the tables.
func TestSettledRightAfterRestore(t *testing.T) {
	trials := map[string]int{"sqlite": 4, "postgres+mariadb": 2}
	for _, e := range envs {
		for _, noted := range []struct {
			name string
			max  int
		}{{"noted keys", 0}, {"scan past one noted key", 1}} {
			t.Run(e.name+", "+noted.name, func(t *testing.T) {
				if noted.max > 0 {
					restore.SetMaxNotedPending(t, noted.max)
				}
				nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
				src := newBank(t, e.cfg(t, nss...), nss, 30)
				settled := 0
				for i := range trials[e.name] {
					man := src.backupUnderLoad(t)
					res, err := restore.Run(context.Background(), src.repo, man, restore.Stores(src.st), restore.Options{Force: true})
					if err != nil {
						t.Fatalf("trial %d: restore: %v", i, err)
					}
					rep := checkSettled(t, src.st, src.setup)
					checkNothingPending(t, src.st, man)
					checkNoJournal(t, src.st)
					settled += res.Recovery.RolledForward + res.Recovery.RolledBack
					t.Logf("trial %d: %d rows, recovery %+v, %d transfers in the cut", i, res.Rows, res.Recovery, rep.Bank[nss[0]].CommittedTransfers)
				}
				t.Logf("%d records in flight at the cuts settled by the restores", settled)
			})
		}
	}
}

// TestDamagedBackup damages a backup three ways: the restore fails naming
// the object, and nothing looks restored. A damaged manifest or a missing
// chunk is found before anything is created; a chunk whose content is
// damaged is found as it loads (each chunk is read once), and the stores
// are left holding an unfinished restore, which verify refuses.
func TestDamagedBackup(t *testing.T) {
	ctx := context.Background()
	src := newBank(t, testenv.Embedded(t), bank.DefaultNamespaces, 50)
	flip := func(p string) {
		data, _ := os.ReadFile(p)
		data[len(data)/2] ^= 0x01
		os.WriteFile(p, data, 0o600)
	}
	for _, tc := range []struct {
		name, dir  string
		damage     func(path string)
		unfinished bool // else nothing is created
	}{
		{"chunk content", "data", flip, true},
		{"missing chunk", "data", func(p string) { os.Remove(p) }, false},
		{"manifest", "backups", flip, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, dir := newRepo(t)
			man, err := backup.Create(ctx, src.st, r, backup.Options{Mode: backup.Fence})
			if err != nil {
				t.Fatal(err)
			}
			var victim string
			filepath.Walk(filepath.Join(dir, tc.dir), func(p string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() && victim == "" {
					victim = p
				}
				return nil
			})
			tc.damage(victim)
			name := filepath.Base(victim)

			target := multistorage.New(testenv.Embedded(t))
			defer target.Close()
			loaded, err := backup.Load(ctx, r, man.ID)
			if err == nil {
				_, err = restore.Run(ctx, r, loaded, restore.Stores(target), restore.Options{})
			}
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("restore from a backup with damaged %s = %v, want an error naming it", victim, err)
			}
			if !tc.unfinished {
				if nss, _ := target.Namespaces(ctx); len(nss) != 0 {
					t.Fatalf("a damaged backup restored namespaces %v", nss)
				}
				return
			}
			if id, err := restore.Unfinished(ctx, target); err != nil || id != man.ID {
				t.Fatalf("after a load that met a damaged chunk: unfinished restore %q (%v), want %s", id, err, man.ID)
			}
			if _, err := verify.Run(ctx, target, txn.NewManager(target, txn.Options{}), verify.Options{}); !errors.Is(err, verify.ErrUnfinishedRestore) {
				t.Fatalf("verify of the half-restored stores = %v, want %v", err, verify.ErrUnfinishedRestore)
			}
		})
	}
}

// TestRestoreRefusesStoresWithData: without --force, a restore never
// writes over data; a complete restore leaves no journal, so restoring it
// again is refused the same way.
func TestRestoreRefusesStoresWithData(t *testing.T) {
	ctx := context.Background()
	src := newBank(t, testenv.Embedded(t), bank.DefaultNamespaces, 5)
	man, err := backup.Create(ctx, src.st, src.repo, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		force bool
		want  string // "" is success
	}{
		{"over data", false, "already holds data"},
		{"over data, forced", true, ""},
		{"again, restored", false, "already holds data"},
	}
	for _, tt := range tests {
		_, err := restore.Run(ctx, src.repo, man, restore.Stores(src.st), restore.Options{Force: tt.force})
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--force")) {
			t.Fatalf("%s: restore = %v, want %q", tt.name, err, tt.want)
		}
	}
	checkNoJournal(t, src.st)
}
