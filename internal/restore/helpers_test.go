package restore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/verify"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newRepo makes an unencrypted repository in a fresh directory.
func newRepo(t testing.TB) (*repo.Repository, string) {
	t.Helper()
	dir := t.TempDir()
	be, err := backend.Open(context.Background(), dir)
	if err == nil {
		var r *repo.Repository
		if r, _, err = repo.OpenOrInit(context.Background(), be, nil); err == nil {
			return r, dir
		}
	}
	t.Fatalf("repository in %s: %v", dir, err)
	return nil, ""
}

// source is a bank on some stores, and a repository for its backups.
type source struct {
	st    *multistorage.Storage
	m     *txn.Manager
	setup bank.Setup
	repo  *repo.Repository
	// repoDir is the repository's directory, for the CLI.
	repoDir string
}

// newBank creates a bank of accounts per namespace in cfg's stores.
func newBank(t testing.TB, cfg *config.Config, nss []string, accounts int) *source {
	t.Helper()
	st := multistorage.New(cfg)
	t.Cleanup(func() { st.Close() })
	s := &source{st: st, m: txn.NewManager(st, txn.Options{}), setup: bank.Setup{Namespaces: nss, Accounts: accounts, InitialBalance: 1000}}
	s.repo, s.repoDir = newRepo(t)
	if err := bank.Create(context.Background(), st, s.m, s.setup, nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// backupUnderLoad takes a fence backup while bank transfers run, and
// checks that they ran across it: transfers committed before the backup
// started and after it finished.
func (s *source) backupUnderLoad(t testing.TB) *backup.Manifest {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var committed atomic.Int64
	done := make(chan bank.Stats, 1)
	go func() {
		st, _ := bank.Run(ctx, bank.Local(s.m), &s.setup, bank.Workload{Concurrency: 8, Duration: 10 * time.Minute,
			Progress: func(st bank.Stats) { committed.Store(st.Committed) }})
		done <- st
	}()
	awaitCommitted(t, &committed, 20)
	man, err := backup.Create(context.Background(), s.st, s.repo, backup.Options{Mode: backup.Fence})
	awaitCommitted(t, &committed, committed.Load()+20)
	stop()
	stats := <-done
	if err != nil {
		t.Fatalf("backup under load: %v", err)
	}
	if stats.Failed != 0 {
		t.Fatalf("workload failures around the backup: %+v", stats)
	}
	return man
}

// awaitCommitted waits until at least n transfers committed.
func awaitCommitted(t testing.TB, committed *atomic.Int64, n int64) {
	t.Helper()
	testenv.Await(t, fmt.Sprintf("the workload to commit %d transfers", n), func() bool { return committed.Load() >= n })
}

// dump is every row of every table of a backup as restored into st, in a
// canonical text form. The columns recovery stamps with its own clock
// (tx_committed_at of rolled-forward records, tx_created_at of the ABORTED
// rows it writes) are left out: two restores of one backup settle the same
// records the same way, at different moments.
func dump(t testing.TB, st storage.Store, m *backup.Manifest) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	for _, s := range m.Stores {
		for _, tb := range s.Tables {
			meta := tb.Metadata
			recs, err := st.ScanAll(ctx, storage.ScanAll{Namespace: meta.Namespace, Table: meta.Table})
			if err != nil {
				t.Fatalf("dump %s: %v", meta.FullName(), err)
			}
			rows := make([]string, 0, len(recs))
			for _, rec := range recs {
				var b strings.Builder
				for _, c := range meta.Columns {
					if c.Name == schema.TxCommittedAt || c.Name == schema.CoordinatorCreatedAt {
						continue
					}
					fmt.Fprintf(&b, "%s=%v;", c.Name, rec[c.Name])
				}
				rows = append(rows, b.String())
			}
			slices.Sort(rows)
			out[meta.FullName()] = rows
		}
	}
	return out
}

// sameDump names the first difference between two dumps, or "".
func sameDump(got, want map[string][]string) string {
	for table, w := range want {
		g := got[table]
		if len(g) != len(w) {
			return fmt.Sprintf("%s: %d rows, want %d", table, len(g), len(w))
		}
		for i := range w {
			if g[i] != w[i] {
				return fmt.Sprintf("%s: row %s, want %s", table, g[i], w[i])
			}
		}
	}
	return ""
}

// checkSettled runs a read-only verification: nothing undecided, nothing
// violated, both bank invariants hold.
func checkSettled(t testing.TB, st storage.Store, setup bank.Setup) *verify.Report {
	t.Helper()
	rep, err := verify.Run(context.Background(), st, txn.NewManager(st, txn.Options{}), verify.Options{})
	if err != nil {
		t.Fatalf("read-only verify: %v", err)
	}
	iv := rep.Bank[setup.Namespaces[0]]
	if len(rep.Pending) != 0 || len(rep.Violations) != 0 || iv == nil || !iv.OK() {
		t.Fatalf("read-only check right after the restore: %d pending %+v, violations %+v, bank %+v", len(rep.Pending), rep.Pending, rep.Violations, iv)
	}
	return rep
}

// checkNoJournal fails if the journal or its namespace outlived the restore.
func checkNoJournal(t testing.TB, st *multistorage.Storage) {
	t.Helper()
	ctx := context.Background()
	nss, err := st.Namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(nss, config.StillpointNamespace) {
		t.Fatalf("namespace %s is still there after a complete restore: %v", config.StillpointNamespace, nss)
	}
	_, d, err := restore.Stores(st).Destination(ctx, config.StillpointNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := d.HasTable(ctx, restore.JournalNamespace, restore.JournalTable); err != nil || ok {
		t.Fatalf("the journal table is still there after a complete restore (%v)", err)
	}
}

// checkNothingPending fails if a transactional table of the backup holds a
// record still PREPARED or DELETED: the restore must have settled them all.
func checkNothingPending(t testing.TB, st storage.Store, m *backup.Manifest) {
	t.Helper()
	for _, s := range m.Stores {
		for _, tb := range s.Tables {
			meta := tb.Metadata
			if !schema.IsTransactional(&meta) {
				continue
			}
			recs, err := st.ScanAll(context.Background(), storage.ScanAll{Namespace: meta.Namespace, Table: meta.Table})
			if err != nil {
				t.Fatalf("scan %s: %v", meta.FullName(), err)
			}
			for _, rec := range recs {
				if consensus.MetaOf(rec).Pending() {
					t.Fatalf("%s %s is still %v after the restore", meta.FullName(), meta.KeyString(consensus.KeyOf(&meta, rec)), consensus.MetaOf(rec).State)
				}
			}
		}
	}
}
