package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/client"
	"github.com/stillpoint/stillpoint/internal/server"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fixture struct {
	srv    *server.Server
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returned, with its error in err
	err    error
	setup  *bank.Setup
}

func start(t *testing.T, opts server.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	st := multistorage.New(testenv.Embedded(t))
	t.Cleanup(func() { st.Close() })
	m := txn.NewManager(st, txn.Options{})
	f := &fixture{setup: &bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 4, InitialBalance: 100}}
	if err := bank.Create(ctx, st, m, *f.setup, nil); err != nil {
		t.Fatal(err)
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.DrainTimeout == 0 { // tests leave transactions open
		opts.DrainTimeout = time.Second
	}
	srv, err := server.New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	sctx, cancel := context.WithCancel(ctx)
	f.cancel, f.done = cancel, make(chan struct{})
	go func() { f.err = srv.Serve(sctx); close(f.done) }()
	t.Cleanup(func() { cancel(); <-f.done })
	return f
}

func dial(t *testing.T, addr string, o admin.DialOptions) *client.Client {
	t.Helper()
	opts, err := o.GRPCOptions()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func acct(ns string, id int) storage.Get {
	return storage.Get{Namespace: ns, Table: bank.AccountsTable, Key: storage.Key{"account_id": id}}
}

func TestTransactionsThroughTheServer(t *testing.T) {
	f := start(t, server.Options{})
	c := dial(t, f.srv.Addr(), admin.DialOptions{})
	ctx := context.Background()
	tx, err := c.Begin(ctx, consensus.Snapshot, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := tx.Get(ctx, acct("bank_0", 1))
	if err != nil || a["balance"] != int64(100) || a["account_id"] != int32(1) {
		t.Fatalf("get = %v, %v", a, err)
	}
	if err := tx.Put(ctx, storage.Put{Namespace: "bank_0", Table: bank.AccountsTable, Values: storage.Record{"account_id": 1, "balance": int64(60)}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Put(ctx, storage.Put{Namespace: "bank_1", Table: bank.AccountsTable, Values: storage.Record{"account_id": 1, "balance": int64(140)}}); err != nil {
		t.Fatal(err)
	}
	recs, err := tx.Scan(ctx, storage.Scan{Namespace: "bank_0", Table: bank.AccountsTable, Partition: storage.Key{"account_id": 1}})
	if err != nil || len(recs) != 1 || recs[0]["balance"] != int64(60) {
		t.Fatalf("scan sees own write: %v, %v", recs, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A second transaction sees the commit; a conflicting one aborts.
	t1, _ := c.Begin(ctx, consensus.Snapshot, "")
	t2, _ := c.Begin(ctx, consensus.Snapshot, "")
	for _, tx := range []*client.Transaction{t1, t2} {
		if r, err := tx.Get(ctx, acct("bank_1", 1)); err != nil || r["balance"] != int64(140) {
			t.Fatalf("get after commit = %v, %v", r, err)
		}
		tx.Put(ctx, storage.Put{Namespace: "bank_1", Table: bank.AccountsTable, Values: storage.Record{"account_id": 1, "balance": int64(0)}})
	}
	if err := t1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := t2.Commit(ctx); !errors.Is(err, txn.ErrConflict) {
		t.Fatalf("conflicting commit = %v, want txn.ErrConflict", err)
	}
	// Bad input is an invalid argument, naming the table and column.
	t3, _ := c.Begin(ctx, consensus.Snapshot, "")
	_, err = t3.Get(ctx, storage.Get{Namespace: "bank_0", Table: bank.AccountsTable, Key: storage.Key{"nope": 1}})
	if !errors.Is(err, txn.ErrInvalidArgument) || !strings.Contains(err.Error(), "account_id") {
		t.Fatalf("bad key = %v", err)
	}
	if err := t3.Commit(ctx); err != nil {
		t.Fatalf("read-only commit: %v", err)
	}
	if err := t3.Commit(ctx); err == nil || !strings.Contains(err.Error(), "not open") {
		t.Fatalf("commit of a finished transaction = %v", err)
	}
}

func TestPauseGatesTransactions(t *testing.T) {
	f := start(t, server.Options{})
	c := dial(t, f.srv.Addr(), admin.DialOptions{})
	ctx := context.Background()
	inflight, err := c.Begin(ctx, consensus.Snapshot, "")
	if err != nil {
		t.Fatal(err)
	}
	paused := make(chan error, 1)
	go func() { paused <- f.srv.Gate().Pause(ctx, true, 10*time.Second) }()
	// The drain waits for the transaction in flight...
	select {
	case err := <-paused:
		t.Fatalf("pause returned %v before the in-flight transaction finished", err)
	case <-time.After(300 * time.Millisecond):
	}
	// ...which may still work and commit, while new ones are refused.
	if _, err := c.Begin(ctx, consensus.Snapshot, ""); !errors.Is(err, client.ErrPaused) {
		t.Fatalf("Begin while pausing = %v, want ErrPaused", err)
	}
	if _, err := inflight.Get(ctx, acct("bank_0", 0)); err != nil {
		t.Fatal(err)
	}
	if err := inflight.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-paused; err != nil {
		t.Fatalf("pause after the drain: %v", err)
	}
	f.srv.Gate().Unpause()
	if _, err := c.Begin(ctx, consensus.Snapshot, ""); err != nil {
		t.Fatalf("Begin after unpause: %v", err)
	}
}

func TestIdleTransactionsAreAborted(t *testing.T) {
	f := start(t, server.Options{IdleTimeout: 300 * time.Millisecond})
	c := dial(t, f.srv.Addr(), admin.DialOptions{})
	ctx := context.Background()
	if _, err := c.Begin(ctx, consensus.Snapshot, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.srv.Gate().InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("an abandoned transaction still holds the pause gate")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTokenAndLoopback(t *testing.T) {
	if _, err := server.New(nil, server.Options{Listen: "0.0.0.0:0"}); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("listening beyond loopback without a token = %v, want a refusal naming the token", err)
	}
	f := start(t, server.Options{Token: "s3cret"})
	ctx := context.Background()
	if _, err := dial(t, f.srv.Addr(), admin.DialOptions{}).Begin(ctx, consensus.Snapshot, ""); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("Begin without the token = %v", err)
	}
	if _, err := dial(t, f.srv.Addr(), admin.DialOptions{Token: "wrong"}).Begin(ctx, consensus.Snapshot, ""); err == nil {
		t.Fatal("Begin with a wrong token succeeded")
	}
	if _, err := dial(t, f.srv.Addr(), admin.DialOptions{Token: "s3cret"}).Begin(ctx, consensus.Snapshot, ""); err != nil {
		t.Fatalf("Begin with the token: %v", err)
	}
	// Health checks need no token.
	conn, _ := grpc.NewClient(f.srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check without a token = %v, %v", resp, err)
	}
}

func TestGracefulShutdownDrains(t *testing.T) {
	f := start(t, server.Options{DrainTimeout: 10 * time.Second})
	c := dial(t, f.srv.Addr(), admin.DialOptions{})
	ctx := context.Background()
	tx, err := c.Begin(ctx, consensus.Snapshot, "")
	if err != nil {
		t.Fatal(err)
	}
	f.cancel() // SIGTERM
	testenv.Await(t, "the server to start draining", func() bool { return f.srv.Gate().Stats().ShuttingDown })
	if _, err := c.Begin(ctx, consensus.Snapshot, ""); err == nil {
		t.Fatal("a new transaction was accepted during shutdown")
	}
	if _, err := tx.Get(ctx, acct("bank_1", 2)); err != nil {
		t.Fatalf("the in-flight transaction must be able to finish: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit during the drain: %v", err)
	}
	select {
	case <-f.done:
		if f.err != nil {
			t.Fatal(f.err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("server did not stop after the drain")
	}
}

func TestMetrics(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	f := start(t, server.Options{MetricsListen: addr})
	c := dial(t, f.srv.Addr(), admin.DialOptions{})
	ctx := context.Background()
	tx, err := c.Begin(ctx, consensus.Snapshot, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	f.srv.Gate().Pause(ctx, false, 0)
	c.Begin(ctx, consensus.Snapshot, "")
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics endpoint: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		`stillpoint_transactions_total{outcome="committed"} 1`,
		`stillpoint_transactions_total{outcome="refused"} 1`,
		"stillpoint_paused 1",
		"stillpoint_transactions_in_flight 0",
		"stillpoint_commit_seconds_count 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
