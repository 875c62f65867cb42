package cut_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// keyPaged is a PostgreSQL database used as a store without snapshots.
// A segment is the records whose key hashes to it; it is read a page of
// keys at a time, in key order (each page its own autocommit query), each
// record then by its own Get. Nothing is read in a snapshot, so the scan
// sees the store change under it, as a DynamoDB scan does. Tables must
// have a one-column primary key.
type keyPaged struct {
	st   *sqlstore.Store
	page int
	// beforePage, when set, runs before each page a segment reads (page
	// counts from 0): tests hold the scan there.
	beforePage func(segment, page int)
	pending    atomic.Int64 // records read PREPARED or DELETED
}

func (k *keyPaged) ScanTables(ctx context.Context) ([]*storage.TableMetadata, error) {
	namespaces, err := k.st.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	var out []*storage.TableMetadata
	for _, ns := range namespaces {
		tables, err := k.st.Tables(ctx, ns)
		if err != nil {
			return nil, err
		}
		for _, tbl := range tables {
			m, err := k.st.TableMetadata(ctx, ns, tbl)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func (k *keyPaged) ScanSegment(ctx context.Context, m *storage.TableMetadata, segment, total int, fn func(storage.Record) error) error {
	keys := m.KeyColumns()
	if len(keys) != 1 {
		return fmt.Errorf("keyPaged reads tables with a one-column key, not %s", m.FullName())
	}
	key, _ := m.Column(keys[0])
	pk := k.st.Dialect().Quote(key.Name)
	query := fmt.Sprintf("SELECT %s FROM %s WHERE mod(abs(hashtext(%s::text)), %d) = %d %%s ORDER BY %s LIMIT %d",
		pk, k.st.Table(m.Namespace, m.Table), pk, total, segment, pk, k.page)
	var last any
	for page := 0; ; page++ {
		if k.beforePage != nil {
			k.beforePage(segment, page)
		}
		q, args := fmt.Sprintf(query, ""), []any(nil)
		if page > 0 {
			q, args = fmt.Sprintf(query, "AND "+pk+" > $1"), []any{last}
		}
		var ids []any
		err := sqlstore.QueryRows(ctx, k.st.DB(), q, args, func(scan func(...any) error) error {
			var id any
			err := scan(&id)
			ids = append(ids, id)
			return err
		})
		if err != nil || len(ids) == 0 {
			return err
		}
		for _, id := range ids {
			v, err := storage.Normalize(key.Type, id)
			if err != nil {
				return err
			}
			rec, err := k.st.Get(ctx, storage.Get{Namespace: m.Namespace, Table: m.Table, Key: storage.Key{key.Name: v}})
			if err != nil {
				return err
			}
			if rec == nil { // deleted since the page was listed
				continue
			}
			if consensus.MetaOf(rec).Pending() {
				k.pending.Add(1)
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		last = ids[len(ids)-1]
	}
}

// scanBank is a bank over two PostgreSQL databases: bank_0 and the
// coordinator in "pg" (snapshots), bank_1 in "scan", read as keyPaged.
type scanBank struct {
	st    *multistorage.Storage
	m     *txn.Manager
	setup bank.Setup
	pg    storage.Store
	scan  *keyPaged
}

// newScanBank opens the stores, "scan" with the given engine: postgres
// (the test reads it through its own keyPaged) or pgscan (the backup finds
// it has no snapshot).
func newScanBank(t testing.TB, accounts int, scanEngine string) *scanBank {
	t.Helper()
	ctx := context.Background()
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Stores: map[string]config.Store{
			"pg":   {Engine: "postgres", DSN: testenv.PostgresDSN(t)},
			"scan": {Engine: scanEngine, DSN: testenv.PostgresDSN(t)},
		},
		Namespaces:  map[string]string{"bank_0": "pg", "bank_1": "scan"},
		Coordinator: "pg",
		Source:      "test",
	}
	b := &scanBank{st: multistorage.New(cfg), setup: bank.Setup{Namespaces: []string{"bank_0", "bank_1"}, Accounts: accounts, InitialBalance: 100}}
	t.Cleanup(func() { b.st.Close() })
	b.m = txn.NewManager(b.st, txn.Options{})
	if err := bank.Create(ctx, b.st, b.m, b.setup, nil); err != nil {
		t.Fatal(err)
	}
	var err error
	if b.pg, err = b.st.Store(ctx, "pg"); err != nil {
		t.Fatal(err)
	}
	s, err := b.st.Store(ctx, "scan")
	if err != nil {
		t.Fatal(err)
	}
	switch s := s.(type) {
	case scanPG:
		b.scan = s.keyPaged
	case *sqlstore.Store:
		b.scan = &keyPaged{st: s, page: 16}
	}
	return b
}

func (b *scanBank) engines(t testing.TB, segments int) map[string]cut.Engine {
	t.Helper()
	pg, err := cut.EngineOf(b.pg)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]cut.Engine{"pg": pg, "scan": cut.ScanEngine(b.scan, cut.ScanOptions{Segments: segments, SpoolDir: t.TempDir()})}
}

// tally reads the cut as a restore would, settles it against the
// coordinator table it holds, and computes the bank invariants.
func (b *scanBank) tally(t *testing.T, c *cut.Cut) bank.Invariants {
	t.Helper()
	ctx := context.Background()
	coord, err := b.pg.TableMetadata(ctx, schema.CoordinatorNamespace, schema.CoordinatorTable)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]consensus.CoordinatorRow{}
	var transfers int64
	err = c.Snapshots["pg"].ReadTable(ctx, coord, func(r storage.Record) error {
		row, _ := consensus.CoordinatorRowOf(r)
		rows[r[schema.TxID].(string)] = row
		if bank.IsCommittedTransfer(r) {
			transfers++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	accounts := map[string][]storage.Record{}
	for ns, store := range map[string]string{"bank_0": "pg", "bank_1": "scan"} {
		m, err := b.m.Table(ctx, ns, bank.AccountsTable)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Snapshots[store].ReadTable(ctx, m, func(r storage.Record) error {
			if r = settled(m, r, rows); r != nil {
				accounts[ns] = append(accounts[ns], r)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return bank.Tally(&b.setup, accounts, transfers)
}

// settled is a record after lazy recovery against the cut's coordinator
// rows, with no writer left alive (nil: it is gone).
func settled(m *storage.TableMetadata, r storage.Record, rows map[string]consensus.CoordinatorRow) storage.Record {
	meta := consensus.MetaOf(r)
	action := consensus.Recover(r, consensus.Decide(meta.TxID, rows), 1<<62, consensus.NoLifetime)
	if action == consensus.Nothing {
		return r
	}
	switch mu := consensus.RecoveryMutation(consensus.Ref{Table: m, Key: consensus.KeyOf(m, r)}, r, action, 1<<62).(type) {
	case storage.Put:
		out := maps.Clone(r)
		maps.Copy(out, mu.Values)
		return out
	default:
		return nil
	}
}

// TestScanCutTransferDuringScan plays the case the design is about with
// one transfer, deterministically: bank_1's last account is not yet
// scanned when a transfer from bank_0 to it prepares. Under the fence it
// cannot commit before the scan has read it, so the cut holds it PREPARED
// and rolls it back; it commits once the fence is released. Without the
// fence (the negative control) it commits first, the scan reads it
// COMMITTED while the coordinator was read before, and money appears.
func TestScanCutTransferDuringScan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fenced bool
	}{{"held fence", true}, {"no fence", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := newScanBank(t, 64, "postgres")
			engines := b.engines(t, 1)
			reached, proceed := make(chan struct{}), make(chan struct{})
			b.scan.beforePage = func(_, page int) {
				if page == 1 {
					close(reached)
					<-proceed
				}
			}
			type result struct {
				c   *cut.Cut
				err error
			}
			taken := make(chan result, 1)
			if tc.fenced {
				go func() {
					c, err := cut.Take(ctx, "pg", engines, 10*time.Second, 0)
					taken <- result{c, err}
				}()
			} else {
				// The coordinator's store first, then the scan: each at its own moment.
				c, err := cut.Open(ctx, map[string]cut.Engine{"pg": engines["pg"]}, 0)
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					s, err := cut.Open(ctx, map[string]cut.Engine{"scan": engines["scan"]}, 0)
					if err == nil {
						c.Snapshots["scan"] = s.Snapshots["scan"]
					}
					taken <- result{c, err}
				}()
			}
			select {
			case <-reached:
			case r := <-taken:
				t.Fatalf("the cut ended before the scan's second page: %v", r.err)
			}
			last := storage.Key{"account_id": int32(b.setup.Accounts - 1)}
			committed := make(chan error, 1)
			go func() {
				tx := b.m.BeginWith(consensus.Snapshot, bank.TransferPrefix)
				for _, p := range []storage.Put{
					{Namespace: "bank_0", Table: bank.AccountsTable, Values: storage.Record{"account_id": 0, "balance": int64(90)}},
					{Namespace: "bank_1", Table: bank.AccountsTable, Values: storage.Record{"account_id": last["account_id"], "balance": int64(110)}},
				} {
					if _, err := tx.Get(ctx, storage.Get{Namespace: p.Namespace, Table: p.Table, Key: storage.Key{"account_id": p.Values["account_id"]}}); err != nil {
						committed <- err
						return
					}
					if err := tx.Put(ctx, p); err != nil {
						committed <- err
						return
					}
				}
				committed <- tx.Commit(ctx)
			}()
			if tc.fenced {
				testenv.Await(t, "the transfer to prepare bank_1's last account", func() bool {
					rec, err := b.scan.st.Get(ctx, storage.Get{Namespace: "bank_1", Table: bank.AccountsTable, Key: last})
					return err == nil && consensus.MetaOf(rec).Pending()
				})
			} else if err := <-committed; err != nil {
				t.Fatalf("the transfer, with no fence: %v", err)
			}
			close(proceed)
			r := <-taken
			if r.err != nil {
				t.Fatal(r.err)
			}
			defer r.c.Close()
			if tc.fenced {
				if err := <-committed; err != nil {
					t.Fatalf("the transfer must commit once the fence is released: %v", err)
				}
				if b.scan.pending.Load() == 0 {
					t.Fatal("the scan never read the transfer's prepared record: it did not run during the scan")
				}
			}
			iv := b.tally(t, r.c)
			switch {
			case tc.fenced && (!iv.OK() || iv.CommittedTransfers != 0):
				t.Fatalf("the cut under the fence is inconsistent, or holds the transfer decided after it: %+v", iv)
			case !tc.fenced && iv.OK():
				t.Fatalf("the unfenced scan read a transfer committed after the coordinator, yet the invariants hold: %+v", iv)
			}
			t.Logf("%+v", iv)
		})
	}
}

// TestScanCutMaxHold: a read of a store without snapshots that outlasts
// the max hold gives way: the fence is released at once (a transfer
// commits while the read is still stuck), the error names the store, and
// the read's spool is removed once the read stops.
func TestScanCutMaxHold(t *testing.T) {
	ctx := context.Background()
	b := newScanBank(t, 64, "postgres")
	spool := t.TempDir()
	engines := map[string]cut.Engine{"scan": cut.ScanEngine(b.scan, cut.ScanOptions{Segments: 2, SpoolDir: spool})}
	engines["pg"], _ = cut.EngineOf(b.pg)
	stuck := make(chan struct{})
	b.scan.beforePage = func(_, page int) {
		if page == 1 {
			<-stuck
		}
	}
	// The stuck read outlasts any bound; PostgreSQL's snapshot may too on a
	// busy machine, so it may be named beside it.
	_, err := cut.Take(ctx, "pg", engines, 10*time.Second, 500*time.Millisecond)
	var slow *cut.SlowSnapshotError
	if !errors.As(err, &slow) || !slices.Contains(slow.Stores, "scan") {
		t.Fatalf("want the slow read of store scan named, got %v", err)
	}
	err = b.m.Run(ctx, 5, func(ctx context.Context, tx *txn.Transaction) error {
		return tx.Put(ctx, storage.Put{Namespace: "bank_0", Table: bank.AccountsTable, Values: storage.Record{"account_id": 1, "balance": int64(100)}})
	})
	if err != nil {
		t.Fatalf("a commit while the abandoned read is stuck: %v", err)
	}
	close(stuck)
	testenv.Await(t, "the abandoned read's spool to be removed", func() bool {
		entries, err := os.ReadDir(spool)
		return err == nil && len(entries) == 0
	})
}

// TestScanCutUnderLoad takes cuts of a bank whose bank_1 has no snapshot
// while transfers run, the scan in parallel segments. Each scan waits,
// before its first page, for a record of bank_1 prepared by a transaction
// that had not decided when the fence went up: such a record stays
// PREPARED while the fence holds, so every scan overlaps the load.
func TestScanCutUnderLoad(t *testing.T) {
	ctx := context.Background()
	b := newScanBank(t, 200, "postgres")
	engines := b.engines(t, 4)
	trials := testenv.Trials(t, 3, 10)
	load, stop := context.WithCancel(ctx)
	done := make(chan bank.Stats, 1)
	go func() {
		stats, _ := bank.Run(load, bank.Local(b.m), &b.setup, bank.Workload{Concurrency: 4, Duration: time.Hour, Isolation: consensus.Snapshot})
		done <- stats
	}()
	var cutTransfers int64
	for trial := range trials {
		release := holdScan(b.scan)
		taken := make(chan error, 1)
		var c *cut.Cut
		go func() {
			var err error
			c, err = cut.Take(ctx, "pg", engines, 10*time.Second, 0)
			taken <- err
		}()
		release(t, b.pg, taken)
		if err := <-taken; err != nil {
			t.Fatal(err)
		}
		iv := b.tally(t, c)
		c.Close()
		if !iv.OK() {
			t.Fatalf("trial %d: %+v", trial, iv)
		}
		cutTransfers = iv.CommittedTransfers
	}
	stop()
	stats := <-done
	if stats.Failed != 0 || stats.Committed <= cutTransfers {
		t.Fatalf("the load must keep committing after the cuts, without failures: %+v (last cut holds %d transfers)", stats, cutTransfers)
	}
	t.Logf("%d cuts, %d records read pending; the load: %+v", trials, b.scan.pending.Load(), stats)
}

// holdScan makes kp's next read wait before its first page. The returned
// release, called once the read has started (the fence held), awaits a
// record of the store PREPARED by a transaction that has no row in the
// coordinator store pg, then lets the read go on: such a record stays
// PREPARED while the fence holds, so the read overlaps the load for sure.
// done is the cut's (or backup's) outcome, so that a failure before the
// read is reported rather than waited for.
func holdScan(kp *keyPaged) (release func(t *testing.T, pg storage.Store, done chan error)) {
	arrived, proceed := make(chan struct{}, 1), make(chan struct{})
	kp.beforePage = func(_, page int) {
		if page == 0 {
			select {
			case arrived <- struct{}{}:
			default: // one arrival is enough
			}
			<-proceed
		}
	}
	return func(t *testing.T, pg storage.Store, done chan error) {
		t.Helper()
		select {
		case <-arrived:
		case err := <-done:
			t.Fatalf("the read never started: %v", err)
		}
		testenv.Await(t, "a record prepared by an undecided transaction", func() bool { return undecidedPrepared(t, kp, pg) })
		close(proceed) // and every later page 0 of this read passes
	}
}

// undecidedPrepared reports whether some record of kp's store is PREPARED
// by a transaction with no row in the coordinator store pg.
func undecidedPrepared(t *testing.T, kp *keyPaged, pg storage.Store) bool {
	ctx := context.Background()
	tables, err := kp.ScanTables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range tables {
		recs, err := kp.st.ScanAll(ctx, storage.ScanAll{Namespace: m.Namespace, Table: m.Table})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if meta := consensus.MetaOf(r); meta.Pending() {
				row, err := pg.Get(ctx, consensus.CoordinatorGet(meta.TxID))
				if err != nil {
					t.Fatal(err)
				}
				if row == nil {
					return true
				}
			}
		}
	}
	return false
}

// BenchmarkScanCutStall measures what a cut of a store without snapshots
// costs the transfers running meanwhile: each iteration runs 400 transfers
// (4 at a time) and, once 100 have committed, takes one cut (or none),
// then reports the fence's mean hold, the transfers' mean p50 and p99
// commit latencies, and the worst latency of all.
// STILLPOINT_SCANCUT_ACCOUNTS sets the accounts per namespace (default
// 2000; bank_1 is the store read whole).
func BenchmarkScanCutStall(b *testing.B) {
	accounts := 2000
	if v := os.Getenv("STILLPOINT_SCANCUT_ACCOUNTS"); v != "" {
		var err error
		if accounts, err = strconv.Atoi(v); err != nil || accounts < 1 {
			b.Fatalf("STILLPOINT_SCANCUT_ACCOUNTS=%q: want a positive number", v)
		}
	}
	for _, segments := range []int{0, 1, 8} { // 0: no cut
		name := fmt.Sprintf("segments=%d", segments)
		if segments == 0 {
			name = "no cut"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			bk := newScanBank(b, accounts, "postgres")
			bk.scan.page = 100
			engines := bk.engines(b, max(segments, 1))
			var hold, p50, p99, worst time.Duration
			for range b.N {
				var committed atomic.Int64
				started := make(chan struct{})
				load := make(chan bank.Stats, 1)
				go func() {
					stats, _ := bank.Run(ctx, bank.Local(bk.m), &bk.setup, bank.Workload{Concurrency: 4, Count: 400, Isolation: consensus.Snapshot,
						Progress: func(s bank.Stats) {
							if committed.Add(1) == 100 {
								close(started)
							}
						}})
					load <- stats
				}()
				<-started
				if segments > 0 {
					c, err := cut.Take(ctx, "pg", engines, 10*time.Second, 0)
					if err != nil {
						b.Fatal(err)
					}
					hold += c.FenceHold
					c.Close()
				}
				stats := <-load
				p50, p99, worst = p50+stats.P50, p99+stats.P99, max(worst, stats.Max)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(hold)/float64(b.N), "hold-ms")
			b.ReportMetric(ms(p50)/float64(b.N), "p50-ms")
			b.ReportMetric(ms(p99)/float64(b.N), "p99-ms")
			b.ReportMetric(ms(worst), "max-ms")
		})
	}
}
