package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/verify"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// TestRestoreTrials: backups taken under load, restored over the very
// stores they came from (the disaster-recovery case), always verify.
func TestRestoreTrials(t *testing.T) {
	trials := map[string]int{"sqlite": 20, "postgres+mariadb": 5}
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
			st := multistorage.New(e.cfg(t, nss...))
			defer st.Close()
			m := txn.NewManager(st, txn.Options{})
			setup := bank.Setup{Namespaces: nss, Accounts: 30, InitialBalance: 1000}
			if err := bank.Create(ctx, st, m, setup); err != nil {
				t.Fatal(err)
			}
			r := newRepo(t, t.TempDir(), nil)
			for i := range trials[e.name] {
				loadCtx, stop := context.WithCancel(ctx)
				done := make(chan bank.Stats, 1)
				go func() {
					s, _ := bank.Run(loadCtx, bank.Local(m), &setup, bank.Workload{Concurrency: 8, Duration: time.Minute})
					done <- s
				}()
				time.Sleep(300 * time.Millisecond)
				man, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
				time.Sleep(200 * time.Millisecond)
				stop()
				stats := <-done
				if err != nil {
					t.Fatalf("trial %d: backup: %v", i, err)
				}
				if stats.Failed != 0 {
					t.Fatalf("trial %d: workload failures: %+v", i, stats)
				}
				res, err := backup.Restore(ctx, r, man, st, backup.RestoreOptions{Force: true})
				if err != nil {
					t.Fatalf("trial %d: restore: %v", i, err)
				}
				rep, err := verify.Run(ctx, st, txn.NewManager(st, txn.Options{Lifetime: -1}), verify.Options{Repair: true})
				if err != nil {
					t.Fatalf("trial %d: verify: %v", i, err)
				}
				iv := rep.Bank[nss[0]]
				if !rep.OK() || iv == nil || !iv.OK() {
					t.Fatalf("trial %d: restored state of backup %s is not consistent: %+v %+v", i, man.ID, rep.Violations, iv)
				}
				t.Logf("trial %d: fence %v, %d rows restored, recovered %v, %d transfers in the cut", i, time.Duration(man.FenceHold), res.Rows, rep.Recovered, iv.CommittedTransfers)
			}
		})
	}
}

// TestDamagedBackupRestoresNothing flips one byte in a chunk, and in a
// manifest: the restore fails naming the object, and creates no table.
func TestDamagedBackupRestoresNothing(t *testing.T) {
	ctx := context.Background()
	st := multistorage.New(testenv.Embedded(t))
	defer st.Close()
	m := txn.NewManager(st, txn.Options{})
	if err := bank.Create(ctx, st, m, bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 50, InitialBalance: 5}); err != nil {
		t.Fatal(err)
	}
	for _, damage := range []string{"data", "backups"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			r := newRepo(t, dir, nil)
			man, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
			if err != nil {
				t.Fatal(err)
			}
			var victim string
			filepath.Walk(filepath.Join(dir, damage), func(p string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() && victim == "" {
					victim = p
				}
				return nil
			})
			data, _ := os.ReadFile(victim)
			data[len(data)/2] ^= 0x01
			os.WriteFile(victim, data, 0o600)
			name := filepath.Base(victim)

			target := multistorage.New(testenv.Embedded(t))
			defer target.Close()
			loaded, err := backup.Load(ctx, r, man.ID)
			if err == nil {
				_, err = backup.Restore(ctx, r, loaded, target, backup.RestoreOptions{})
			}
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("restore from a backup with a flipped byte in %s = %v, want an error naming it", victim, err)
			}
			if nss, _ := target.Namespaces(ctx); len(nss) != 0 {
				t.Fatalf("a damaged backup restored namespaces %v", nss)
			}
		})
	}
}

// TestRestoreRefusesStoresWithData: without --force, a restore never
// writes over data.
func TestRestoreRefusesStoresWithData(t *testing.T) {
	ctx := context.Background()
	st := multistorage.New(testenv.Embedded(t))
	defer st.Close()
	m := txn.NewManager(st, txn.Options{})
	if err := bank.Create(ctx, st, m, bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 5, InitialBalance: 5}); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t, t.TempDir(), nil)
	man, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	_, err = backup.Restore(ctx, r, man, st, backup.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "already holds data") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("restore over data = %v, want a refusal that mentions --force", err)
	}
	if _, err := backup.Restore(ctx, r, man, st, backup.RestoreOptions{Force: true}); err != nil {
		t.Fatalf("restore --force: %v", err)
	}
	if _, err := backup.Restore(ctx, r, man, st, backup.RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "already restored") {
		t.Fatalf("restoring the same backup twice = %v", err)
	}
}
