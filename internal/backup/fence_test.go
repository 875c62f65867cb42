package backup_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// stallProxy forwards TCP connections to a database server until a client
// sends trigger; from then on, until Release, no byte moves in either
// direction on any connection: the server looks stopped (as under SIGSTOP)
// to this test alone, while everyone else uses it directly.
type stallProxy struct {
	lis     net.Listener
	target  string
	trigger []byte

	once     sync.Once
	stalled  chan struct{} // closed once the trigger was seen
	released chan struct{} // closed by Release
	relOnce  sync.Once
}

func newStallProxy(t *testing.T, target, trigger string) *stallProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{lis: lis, target: target, trigger: []byte(trigger), stalled: make(chan struct{}), released: make(chan struct{})}
	t.Cleanup(func() { p.Release(); lis.Close() })
	go p.serve()
	return p
}

func (p *stallProxy) Addr() string { return p.lis.Addr().String() }

// Release lets the bytes flow again.
func (p *stallProxy) Release() { p.relOnce.Do(func() { close(p.released) }) }

// Stalled reports whether the trigger was seen and the stall not released.
func (p *stallProxy) Stalled() bool {
	select {
	case <-p.released:
		return false
	case <-p.stalled:
		return true
	default:
		return false
	}
}

func (p *stallProxy) serve() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		go p.pump(s, c, true)
		go p.pump(c, s, false)
	}
}

// pump copies from src to dst, waiting while the proxy is stalled; on the
// client's side it watches for the trigger (across reads).
func (p *stallProxy) pump(dst, src net.Conn, fromClient bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromClient {
				seen := append(tail, buf[:n]...)
				if bytes.Contains(seen, p.trigger) {
					p.once.Do(func() { close(p.stalled) })
				}
				tail = append([]byte(nil), seen[max(0, len(seen)-len(p.trigger)):]...)
			}
			select {
			case <-p.stalled:
				<-p.released
			default:
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A store that stalls while the fence holds (its snapshot never opens)
// holds every commit for at most --fence-max-hold: the backup releases the
// fence, fails naming the store, and records nothing, while the store is
// still stalled. In pause mode the same bound unpauses the servers.
func TestFenceHoldIsBoundedWhenAStoreStalls(t *testing.T) {
	for _, mode := range []backup.Mode{backup.Fence, backup.Pause} {
		t.Run(string(mode), func(t *testing.T) { stallDuringCut(t, mode) })
	}
}

func stallDuringCut(t *testing.T, mode backup.Mode) {
	ctx := context.Background()
	nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
	cfg := testenv.Mixed(t, nss...) // bank_a on PostgreSQL with the coordinator, bank_b on MariaDB
	direct, err := mysql.ParseDSN(cfg.Stores["maria"].DSN)
	if err != nil {
		t.Fatal(err)
	}
	// MariaDB is reached through the proxy, which stalls once a snapshot
	// is asked for, that is while the fence (or the pause) holds.
	proxy := newStallProxy(t, direct.Addr, "WITH CONSISTENT SNAPSHOT")
	proxied := direct.Clone()
	proxied.Addr = proxy.Addr()
	viaProxy := *cfg // cfg itself still names the direct address, for the cleanup
	viaProxy.Stores = maps.Clone(cfg.Stores)
	viaProxy.Stores["maria"] = config.Store{Engine: "mysql", DSN: proxied.FormatDSN()}
	st := multistorage.New(&viaProxy)
	defer st.Close()
	m := txn.NewManager(st, txn.Options{})
	if err := bank.Create(ctx, st, m, bank.Setup{Namespaces: nss, Accounts: 10, InitialBalance: 100}, nil); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t, t.TempDir(), nil)
	const maxHold = time.Second // the default: the stores that are not stalled open well within it, even on a busy machine
	opts := backup.Options{Mode: mode, FenceMaxHold: maxHold}
	var gate *admin.Gate
	if mode == backup.Pause {
		var addr string
		addr, gate = testenv.AdminServer(t, admin.GateOptions{})
		if opts.Fleet, err = admin.NewFleet([]string{addr}, admin.DialOptions{}, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		defer opts.Fleet.Close()
	}

	done := make(chan error, 1)
	go func() {
		_, err := backup.Create(ctx, st, r, opts)
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		proxy.Release()
		<-done
		t.Fatal("the backup held on for as long as the store stalled")
	}
	stillStalled := proxy.Stalled()
	var slow *cut.SlowSnapshotError
	if !errors.As(err, &slow) || !strings.Contains(err.Error(), "store maria did not open") || strings.Contains(err.Error(), "store pg") {
		t.Fatalf("backup with a stalled store: %v; want it to fail naming store maria (only)", err)
	}
	if !stillStalled {
		t.Fatal("the backup returned only after the stall ended")
	}
	t.Logf("stalled store: %v", err)

	if mode == backup.Pause {
		if gate.Paused() {
			t.Error("the server is still paused after the backup gave up")
		}
	} else {
		// Commits go on while the store is still stalled: a transaction
		// on PostgreSQL alone (its commit decision is a coordinator insert).
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err = m.Run(cctx, 5, func(ctx context.Context, tx *txn.Transaction) error {
			key := storage.Key{"account_id": 0}
			rec, err := tx.Get(ctx, storage.Get{Namespace: nss[0], Table: bank.AccountsTable, Key: key})
			if err != nil {
				return err
			}
			return tx.Put(ctx, storage.Put{Namespace: nss[0], Table: bank.AccountsTable, Values: storage.Record{"account_id": 0, "balance": rec["balance"]}})
		})
		if err != nil {
			t.Fatalf("a commit after the failed backup, the store still stalled: %v", err)
		}
	}
	if !proxy.Stalled() {
		t.Fatal("the stall ended before the aftermath was checked")
	}
	listed, err := r.ListManifests(ctx)
	if err != nil || len(listed) != 0 {
		t.Fatalf("after the failed backup the repository lists %v (%v); want nothing", listed, err)
	}
}
