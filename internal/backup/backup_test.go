package backup_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/client"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/server"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/verify"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newRepo(t *testing.T, url string, key []byte) *repo.Repository {
	t.Helper()
	be, err := backend.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := repo.OpenOrInit(context.Background(), be, key)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// restoreAndVerify restores a backup into fresh SQLite stores and runs
// verify there with every undecided write expired (no writer survives a
// restore), returning the bank invariants.
func restoreAndVerify(t *testing.T, r *repo.Repository, m *backup.Manifest) (*verify.Report, error) {
	t.Helper()
	target := multistorage.New(testenv.Embedded(t))
	defer target.Close()
	if _, err := restore.Run(context.Background(), r, m, restore.Stores(target), restore.Options{}); err != nil {
		return nil, err
	}
	mgr := txn.NewManager(target, txn.Options{Lifetime: -1})
	return verify.Run(context.Background(), target, mgr, verify.Options{Repair: true})
}

// embeddedBank returns embedded SQLite stores holding a bank of accounts
// accounts, closed when the test ends.
func embeddedBank(t *testing.T, accounts int) *multistorage.Storage {
	t.Helper()
	st := multistorage.New(testenv.Embedded(t))
	t.Cleanup(func() { st.Close() })
	setup := bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: accounts, InitialBalance: 100}
	if err := bank.Create(context.Background(), st, txn.NewManager(st, txn.Options{}), setup, nil); err != nil {
		t.Fatal(err)
	}
	return st
}

type env struct {
	name string
	cfg  func(t *testing.T, ns ...string) *config.Config
}

var envs = []env{
	{"sqlite", func(t *testing.T, _ ...string) *config.Config { return testenv.Embedded(t) }},
	{"postgres+mariadb", func(t *testing.T, ns ...string) *config.Config { return testenv.Mixed(t, ns...) }},
}

// TestBackupsUnderLoad runs the bank through two in-process servers while
// fence, pause and independent backups are taken, then restores each.
func TestBackupsUnderLoad(t *testing.T) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
			st := multistorage.New(e.cfg(t, nss...))
			defer st.Close()
			m := txn.NewManager(st, txn.Options{})
			setup := bank.Setup{Namespaces: nss, Accounts: 50, InitialBalance: 1000}
			if err := bank.Create(ctx, st, m, setup, nil); err != nil {
				t.Fatal(err)
			}
			var clients []*client.Client
			var targets []string
			for range 2 {
				srv, err := server.New(m, server.Options{Listen: "127.0.0.1:0", PauseLease: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				sctx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { srv.Serve(sctx); close(done) }()
				t.Cleanup(func() { stop(); <-done })
				opts, _ := admin.DialOptions{}.GRPCOptions()
				c, err := client.Dial(srv.Addr(), opts...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				clients = append(clients, c)
				targets = append(targets, srv.Addr())
			}
			fleet, err := admin.NewFleet(targets, admin.DialOptions{}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer fleet.Close()
			r := newRepo(t, t.TempDir(), nil)

			loadCtx, stopLoad := context.WithCancel(ctx)
			var stats bank.Stats
			var loadErr error
			var committed atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				stats, loadErr = bank.Run(loadCtx, bank.Remote(clients), &setup, bank.Workload{Concurrency: 8, Duration: 5 * time.Minute,
					Progress: func(s bank.Stats) { storeMax(&committed, s.Committed) }})
			})
			// The load overlaps every cut: transfers commit before each
			// backup starts and again after it ends.
			awaitCommits := func(what string) {
				from := committed.Load()
				testenv.Await(t, "transfers to commit "+what, func() bool { return committed.Load() >= from+5 || loadCtx.Err() != nil })
			}
			var manifests []*backup.Manifest
			modes := append(append(repeat(backup.Fence, 10), repeat(backup.Pause, 3)...), repeat(backup.Independent, 5)...)
			for i, mode := range modes {
				awaitCommits(fmt.Sprintf("before backup %d", i))
				man, err := backup.Create(ctx, st, r, backup.Options{Mode: mode, Fleet: fleet})
				if err != nil {
					t.Fatalf("%s backup: %v", mode, err)
				}
				manifests = append(manifests, man)
				awaitCommits(fmt.Sprintf("after backup %d", i))
			}
			stopLoad()
			wg.Wait()
			if loadErr != nil {
				t.Fatal(loadErr)
			}
			t.Logf("workload during the backups: %+v", stats)
			if stats.Failed != 0 || stats.Unknown != 0 || stats.Committed < 100 {
				t.Fatalf("transactions failed during backups: %+v", stats)
			}
			broken := 0
			for _, man := range manifests {
				rep, err := restoreAndVerify(t, r, man)
				if err != nil {
					t.Fatalf("restore %s backup %s: %v", man.Mode, man.ID, err)
				}
				iv := rep.Bank[nss[0]]
				switch man.Mode {
				case backup.Fence, backup.Pause:
					if !rep.OK() || iv == nil || !iv.OK() {
						t.Errorf("%s backup %s is not consistent: %+v %+v", man.Mode, man.ID, rep.Violations, iv)
					}
					if man.Mode == backup.Fence {
						t.Logf("fence backup %s: fence held %v, %d committed transfers in the cut, recovered %v", man.ID, man.FenceHold, iv.CommittedTransfers, rep.Recovered)
					} else {
						t.Logf("pause backup %s: paused %v", man.ID, man.PausedWindow.End.Sub(man.PausedWindow.Start))
					}
				case backup.Independent:
					if iv == nil || iv.Total != iv.ExpectedTotal {
						broken++
					}
				}
			}
			if broken == 0 {
				t.Errorf("no independent backup broke the total: the test cannot tell a cut from no cut")
			}
			t.Logf("%d of 5 independent backups broke the total balance", broken)
		})
	}
}

// storeMax raises v to n: progress reports may arrive out of order.
func storeMax(v *atomic.Int64, n int64) {
	for old := v.Load(); n > old && !v.CompareAndSwap(old, n); old = v.Load() {
	}
}

func repeat(m backup.Mode, n int) []backup.Mode {
	out := make([]backup.Mode, n)
	for i := range out {
		out[i] = m
	}
	return out
}

func TestSecondBackupOfUnchangedDataIsSmall(t *testing.T) {
	ctx := context.Background()
	// PostgreSQL and MariaDB: the same data on the embedded SQLite stores
	// took most of this package's time under -race (20,000 accounts and
	// 15,000 transfers, one SQLite writer at a time).
	st := multistorage.New(testenv.Mixed(t, bank.DefaultNamespaces...))
	defer st.Close()
	m := txn.NewManager(st, txn.Options{})
	setup := bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 20000, InitialBalance: 1000}
	if err := bank.Create(ctx, st, m, setup, nil); err != nil {
		t.Fatal(err)
	}
	// Transfers give the accounts varied balances and transaction ids, so
	// the data compresses like real data rather than to nothing.
	if _, err := bank.Run(ctx, bank.Local(m), &setup, bank.Workload{Concurrency: 16, Count: 15000}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := newRepo(t, dir, nil)
	first, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	before := dirSize(t, dir)
	second, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	grown := dirSize(t, dir) - before
	ratio := float64(grown) / float64(before)
	t.Logf("first backup: %d rows, %d bytes of tables, repository %d bytes; second adds %d bytes (%.3f%%), %d new chunk bytes", first.Rows, first.Bytes, before, grown, 100*ratio, second.NewBytes)
	if ratio >= 0.01 || second.NewBytes != 0 {
		t.Fatalf("the second backup of unchanged data added %.2f%% to the repository", 100*ratio)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func TestBadInputIsRefusedAndNothingIsListed(t *testing.T) {
	ctx := context.Background()
	newBank := func(t *testing.T) *multistorage.Storage {
		st := multistorage.New(testenv.Embedded(t))
		t.Cleanup(func() { st.Close() })
		if err := bank.Create(ctx, st, txn.NewManager(st, txn.Options{}), bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 5, InitialBalance: 1}, nil); err != nil {
			t.Fatal(err)
		}
		return st
	}
	t.Run("unreachable store", func(t *testing.T) {
		cfg := &config.Config{DataDir: t.TempDir(), Source: "test", Coordinator: "c",
			Stores:     map[string]config.Store{"c": {Engine: "sqlite", Path: filepath.Join(t.TempDir(), "c.db")}, "pg": {Engine: "postgres", DSN: "postgres://u:pw@127.0.0.1:1/x?connect_timeout=2"}},
			Namespaces: map[string]string{"bank_0": "pg"}}
		st := multistorage.New(cfg)
		defer st.Close()
		r := newRepo(t, t.TempDir(), nil)
		_, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
		if err == nil || !strings.Contains(err.Error(), "store pg") {
			t.Fatalf("backup with an unreachable store = %v", err)
		}
		if ids, _ := r.ListManifests(ctx); len(ids) != 0 {
			t.Fatalf("a failed backup is listed: %v", ids)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		dir := t.TempDir()
		newRepo(t, dir, []byte("right key"))
		be, _ := backend.Open(ctx, dir)
		if _, err := repo.Open(ctx, be, []byte("wrong key")); !errors.Is(err, repo.ErrWrongKey) {
			t.Fatalf("open with a wrong key = %v", err)
		}
	})
	t.Run("second concurrent backup", func(t *testing.T) {
		st := newBank(t)
		r := newRepo(t, t.TempDir(), nil)
		lk, err := r.Lock(ctx, "another backup")
		if err != nil {
			t.Fatal(err)
		}
		defer lk.Unlock()
		_, err = backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
		if err == nil || !strings.Contains(err.Error(), "another backup") {
			t.Fatalf("concurrent backup = %v, want the lock holder named", err)
		}
	})
	t.Run("repository path under a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "not-a-dir")
		os.WriteFile(file, []byte("x"), 0o644)
		be, err := backend.Open(ctx, filepath.Join(file, "repo"))
		if err == nil {
			_, _, err = repo.OpenOrInit(ctx, be, nil)
		}
		if err == nil || !strings.Contains(err.Error(), file) {
			t.Fatalf("repository under a file = %v, want an error naming the path", err)
		}
	})
	t.Run("fence not granted", func(t *testing.T) {
		st := newBank(t)
		r := newRepo(t, t.TempDir(), nil)
		// Hold the coordinator's write lock, as a long transaction would.
		coord, _ := st.Store(ctx, "coordinator")
		engine, _ := cut.EngineOf(coord)
		f, err := engine.AcquireFence(ctx, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Release()
		_, err = backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence, FenceTimeout: 300 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "fence") {
			t.Fatalf("backup with the fence unavailable = %v", err)
		}
		if ids, _ := r.ListManifests(ctx); len(ids) != 0 {
			t.Fatalf("a failed backup is listed: %v", ids)
		}
	})
}

// TestBackupToS3 takes an encrypted backup into MinIO and restores it.
func TestBackupToS3(t *testing.T) {
	ctx := context.Background()
	st := multistorage.New(testenv.Embedded(t))
	defer st.Close()
	m := txn.NewManager(st, txn.Options{})
	setup := bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 100, InitialBalance: 10}
	if err := bank.Create(ctx, st, m, setup, nil); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t, testenv.S3URL(t), []byte("a key from a file"))
	man, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	if !man.Encrypted || man.Rows == 0 {
		t.Fatalf("manifest = %+v", man)
	}
	rep, err := restoreAndVerify(t, r, man)
	if err != nil || !rep.OK() || rep.Bank["bank_0"] == nil || rep.Bank["bank_0"].Total != 2000 {
		t.Fatalf("restore from S3: %+v, %v", rep, err)
	}
}
