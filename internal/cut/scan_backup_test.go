package cut_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/storage/postgres"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/verify"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// scanPG is the engine "pgscan" of this test binary: a PostgreSQL store
// that offers the cut no snapshot, only keyPaged reads, so the backup cuts
// it as it will cut DynamoDB (cut.EngineOf picks ScanEngine for it).
type scanPG struct {
	*sqlstore.Store
	*keyPaged
}

func init() {
	storage.RegisterEngine(storage.Engine{Name: "pgscan",
		Limits: func(v storage.ScalarDBVersion) storage.Limits {
			return storage.Limits{MaxName: 63, MaxFullTableName: sqlstore.MetadataNameWidth, ClusteringOrderIndex: true, ScalarDB: v}
		},
		Open: storage.Opener(func(ctx context.Context, name string, c storage.Connection) (scanPG, error) {
			st, err := postgres.Open(ctx, name, c.DSN)
			if err != nil {
				return scanPG{}, err
			}
			return scanPG{st, &keyPaged{st: st, page: 16}}, nil
		})})
}

// TestBackupOfStoreWithoutSnapshots runs the whole path a DynamoDB store
// will take: fence backups of a bank whose bank_1 store has no snapshot,
// under load (each read of it holding a record prepared by an undecided
// transfer: holdScan), each restored (cross-engine, into SQLite) and
// verified to both bank invariants.
func TestBackupOfStoreWithoutSnapshots(t *testing.T) {
	ctx := context.Background()
	b := newScanBank(t, 50, "pgscan")
	st, m, setup, kp := b.st, b.m, b.setup, b.scan
	be, err := backend.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := repo.OpenOrInit(ctx, be, nil)
	if err != nil {
		t.Fatal(err)
	}
	load, stop := context.WithCancel(ctx)
	defer stop()
	committed, ran := make(chan int64, 1), make(chan bank.Stats, 1) // committed: the most transfers reported
	committed <- 0
	go func() {
		stats, _ := bank.Run(load, bank.Local(m), &setup, bank.Workload{Concurrency: 4, Duration: 5 * time.Minute, Isolation: consensus.Snapshot,
			Progress: func(s bank.Stats) {
				n := <-committed
				committed <- max(n, s.Committed)
			}})
		ran <- stats
	}()
	commits := func() int64 { n := <-committed; committed <- n; return n }
	awaitCommits := func(what string) {
		from := commits()
		testenv.Await(t, "transfers to commit "+what, func() bool { return commits() >= from+5 })
	}
	var manifests []*backup.Manifest
	for i := range testenv.Trials(t, 3, 10) {
		awaitCommits(fmt.Sprintf("before backup %d", i))
		release := holdScan(kp)
		done := make(chan error, 1)
		var man *backup.Manifest
		go func() {
			var err error
			man, err = backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence, FenceMaxHold: time.Minute})
			done <- err
		}()
		release(t, b.pg, done)
		if err := <-done; err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		manifests = append(manifests, man)
		awaitCommits(fmt.Sprintf("after backup %d", i))
	}
	if kp.pending.Load() < int64(len(manifests)) {
		t.Fatalf("the backups read %d pending records: fewer than one each", kp.pending.Load())
	}
	stop()
	stats := <-ran
	if stats.Failed != 0 || stats.Unknown != 0 {
		t.Fatalf("transfers failed during the backups: %+v", stats)
	}
	for _, man := range manifests {
		target := multistorage.New(testenv.Embedded(t))
		if _, err := restore.Run(ctx, r, man, restore.Stores(target), restore.Options{}); err != nil {
			t.Fatalf("restore %s: %v", man.ID, err)
		}
		rep, err := verify.Run(ctx, target, txn.NewManager(target, txn.Options{Lifetime: -1}), verify.Options{Repair: true})
		target.Close()
		if err != nil {
			t.Fatalf("verify %s: %v", man.ID, err)
		}
		iv := rep.Bank["bank_0"]
		if !rep.OK() || iv == nil || !iv.OK() {
			t.Fatalf("backup %s is not consistent: %+v %+v", man.ID, rep.Violations, iv)
		}
		t.Logf("backup %s: fence held %v, %d committed transfers in the cut, recovered %v", man.ID, man.FenceHold, iv.CommittedTransfers, rep.Recovered)
	}
	t.Logf("the load: %+v", stats)
}
