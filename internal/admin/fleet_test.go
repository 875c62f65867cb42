package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint/stillpoint/internal/testenv/testcert"
	adminpb "github.com/stillpoint/stillpoint/proto/rpc"
)

type testServer struct {
	addr string
	gate *Gate
}

// startServer serves rpc.Admin over a fresh gate on 127.0.0.1.
func startServer(t *testing.T, o GateOptions, opts ...grpc.ServerOption) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := NewGate(o)
	s := grpc.NewServer(opts...)
	Register(s, g)
	go s.Serve(lis)
	t.Cleanup(func() { s.Stop(); g.Close() })
	return &testServer{addr: lis.Addr().String(), gate: g}
}

func startServers(t *testing.T, n int, o GateOptions) []*testServer {
	var out []*testServer
	for range n {
		out = append(out, startServer(t, o))
	}
	return out
}

// refusingAddr is an address nothing listens on.
func refusingAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func newFleet(t *testing.T, addrs []string, o DialOptions) *Fleet {
	t.Helper()
	f, err := NewFleet(addrs, o, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func addrsOf(servers []*testServer) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.addr)
	}
	return out
}

func TestService(t *testing.T) {
	srv := startServer(t, GateOptions{})
	cc, err := grpc.NewClient(srv.addr, mustOpts(t, DialOptions{})...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := adminpb.NewAdminClient(cc)
	ctx := context.Background()

	// A negative max_pause_wait_time is accepted as ScalarDB Server takes
	// it, as no wait: with a transaction in flight, the pause fails at once.
	release := enter(t, srv.gate)
	_, err = c.Pause(ctx, &adminpb.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: proto.Int64(-1)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "no wait") {
		t.Errorf("negative max_pause_wait_time with 1 in flight: %v, want FailedPrecondition saying there was no wait", err)
	}
	if srv.gate.Paused() {
		t.Fatal("the gate stayed closed after a no-wait pause found a transaction in flight")
	}
	_, err = c.Pause(ctx, &adminpb.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: proto.Int64(100)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "1 transaction(s) still in flight") {
		t.Errorf("drain timeout: %v, want FailedPrecondition naming 1 transaction", err)
	}
	if srv.gate.Paused() {
		t.Fatal("the gate stayed closed after a drain timeout")
	}
	release()

	// Nothing in flight: a no-wait pause holds.
	if _, err := c.Pause(ctx, &adminpb.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: proto.Int64(-1)}); err != nil {
		t.Fatal(err)
	}
	if r, err := c.CheckPaused(ctx, &emptypb.Empty{}); err != nil || !r.GetPaused() {
		t.Fatalf("CheckPaused after Pause: %v, %v", r, err)
	}
	r, err := c.Stats(ctx, &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.GetStats()), &st); err != nil {
		t.Fatalf("Stats is not JSON: %v: %q", err, r.GetStats())
	}
	if st["paused"] != true || st["pauses"] != 3.0 || st["drain_timeouts"] != 2.0 || st["paused_since"] == nil || st["in_flight"] != 0.0 {
		t.Errorf("Stats = %s", r.GetStats())
	}
	for range 2 {
		if _, err := c.Unpause(ctx, &emptypb.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := c.CheckPaused(ctx, &emptypb.Empty{}); err != nil || r.GetPaused() {
		t.Fatalf("CheckPaused after Unpause: %v, %v", r, err)
	}
}

func mustOpts(t *testing.T, o DialOptions) []grpc.DialOption {
	t.Helper()
	opts, err := o.GRPCOptions()
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// wantAllUnpaused checks every server's gate is open and was paused
// exactly pauses times.
func wantAllUnpaused(t *testing.T, servers []*testServer, pauses uint64) {
	t.Helper()
	for _, s := range servers {
		st := s.gate.Stats()
		if st.Paused {
			t.Errorf("%s is still paused", s.addr)
		}
		if st.Pauses != pauses {
			t.Errorf("%s was paused %d times, want %d", s.addr, st.Pauses, pauses)
		}
	}
}

func TestPauseAllFailures(t *testing.T) {
	t.Run("a target refuses connections", func(t *testing.T) {
		servers := startServers(t, 2, GateOptions{})
		down := refusingAddr(t)
		f := newFleet(t, []string{servers[0].addr, down, servers[1].addr}, DialOptions{})
		p, err := f.PauseAll(context.Background(), true, 0)
		var pf *PauseFailedError
		if p != nil || !errors.As(err, &pf) {
			t.Fatalf("PauseAll = %v, %v; want a *PauseFailedError", p, err)
		}
		msg := err.Error()
		for _, want := range []string{"pause failed on 1 of 3 targets", down + ": Unavailable", servers[0].addr + ": paused", "this window must not be used for a backup"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error does not say %q: %s", want, msg)
			}
		}
		if len(pf.Unpause) != 3 {
			t.Errorf("unpause sent to %d targets, want all 3", len(pf.Unpause))
		}
		// The live targets paused (in parallel with the failure), then
		// were unpaused.
		wantAllUnpaused(t, servers, 1)
	})
	t.Run("drain timeout on one target", func(t *testing.T) {
		servers := startServers(t, 3, GateOptions{})
		defer enter(t, servers[1].gate)()
		f := newFleet(t, addrsOf(servers), DialOptions{})
		_, err := f.PauseAll(context.Background(), true, 200*time.Millisecond)
		var pf *PauseFailedError
		if !errors.As(err, &pf) {
			t.Fatalf("PauseAll: %v, want a *PauseFailedError", err)
		}
		if status.Code(pf.Pause[1].Err) != codes.FailedPrecondition {
			t.Errorf("the busy target's Pause: %v, want FailedPrecondition", pf.Pause[1].Err)
		}
		if !strings.Contains(err.Error(), "the pause failed; every target was unpaused; this window must not be used for a backup") {
			t.Errorf("error: %s", err)
		}
		wantAllUnpaused(t, servers, 1)
	})
}

// TestHoldInterruptedBeforeTheWindow: an interruption that lands while
// Hold reads the pause ids is reported as an interruption, not as the
// cancelled call's failure, and every target is unpaused.
func TestHoldInterruptedBeforeTheWindow(t *testing.T) {
	servers := startServers(t, 2, GateOptions{Lease: 2 * time.Second})
	f := newFleet(t, addrsOf(servers), DialOptions{})
	p, err := f.PauseAll(context.Background(), true, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = f.Hold(ctx, p, 0, HoldFor(time.Minute))
	var iw *InvalidWindowError
	if !errors.As(err, &iw) || !strings.HasPrefix(iw.Reason, "interrupted (") {
		t.Fatalf("Hold with an interrupted context = %v, want an invalid window that says it was interrupted", err)
	}
	paused, err := f.CheckAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for addr, ok := range paused {
		if ok {
			t.Errorf("%s still paused after an interrupted hold", addr)
		}
	}
}

func TestHold(t *testing.T) {
	servers := startServers(t, 3, GateOptions{Lease: 2 * time.Second})
	f := newFleet(t, addrsOf(servers), DialOptions{})
	ctx := context.Background()
	before := time.Now()
	p, err := f.PauseAll(ctx, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Start.Before(before) || p.Start.After(time.Now()) {
		t.Errorf("pause start %v is not within the PauseAll call", p.Start)
	}
	paused, err := f.CheckAll(ctx)
	if err != nil || len(paused) != 3 {
		t.Fatalf("CheckAll = %v, %v", paused, err)
	}
	for addr, ok := range paused {
		if !ok {
			t.Errorf("%s not paused after PauseAll", addr)
		}
	}
	w, err := f.Hold(ctx, p, 100*time.Millisecond, HoldFor(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if w.Start.Before(p.Start) || w.End.Sub(w.Start) < 300*time.Millisecond {
		t.Errorf("window %v..%v: want it to start after the pause (%v) and last >= 300ms", w.Start, w.End, p.Start)
	}
	wantAllUnpaused(t, servers, 1)
	// What work opens may live in its context: a good window leaves it.
	var workCtx context.Context
	p, err = f.PauseAll(ctx, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Hold(ctx, p, 0, func(ctx context.Context) error { workCtx = ctx; return nil }); err != nil || workCtx.Err() != nil {
		t.Errorf("Hold: %v; work's context after a good window: %v, want it alive", err, workCtx.Err())
	}
	wantAllUnpaused(t, servers, 2)
	j := w.Fields(time.UTC)
	if j.PauseStartTimestampMs > j.PauseEndTimestampMs || len(j.Targets) != 3 {
		t.Errorf("window JSON = %+v", j)
	}
	if paused, err := f.CheckAll(ctx); err != nil || paused[servers[0].addr] {
		t.Errorf("after Hold: CheckAll = %v, %v", paused, err)
	}
}

func TestHoldInvalid(t *testing.T) {
	t.Run("lease shorter than the hold", func(t *testing.T) {
		servers := startServers(t, 3, GateOptions{Lease: 100 * time.Millisecond})
		f := newFleet(t, addrsOf(servers), DialOptions{})
		p, err := f.PauseAll(context.Background(), true, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Hold(context.Background(), p, 0, HoldFor(600*time.Millisecond))
		var iw *InvalidWindowError
		if !errors.As(err, &iw) || !strings.Contains(err.Error(), "no longer paused") || !strings.Contains(err.Error(), "must not be used for a backup") {
			t.Fatalf("Hold past the lease: %v", err)
		}
		wantAllUnpaused(t, servers, 1)
		for _, s := range servers {
			if n := s.gate.Stats().LeaseExpiries; n != 1 {
				t.Errorf("%s: %d lease expiries, want 1", s.addr, n)
			}
		}
	})
	t.Run("renewal keeps a short lease alive", func(t *testing.T) {
		servers := startServers(t, 2, GateOptions{Lease: 500 * time.Millisecond})
		f := newFleet(t, addrsOf(servers), DialOptions{})
		p, err := f.PauseAll(context.Background(), false, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Hold(context.Background(), p, 100*time.Millisecond, HoldFor(1200*time.Millisecond)); err != nil {
			t.Fatalf("renewed hold: %v", err)
		}
		wantAllUnpaused(t, servers, 1)
		for _, s := range servers {
			if n := s.gate.Stats().LeaseExpiries; n != 0 {
				t.Errorf("%s: %d lease expiries during a renewed hold", s.addr, n)
			}
		}
	})
	t.Run("a target unpaused during the hold is not re-paused", func(t *testing.T) {
		servers := startServers(t, 2, GateOptions{})
		f := newFleet(t, addrsOf(servers), DialOptions{})
		p, err := f.PauseAll(context.Background(), true, 0)
		if err != nil {
			t.Fatal(err)
		}
		servers[1].gate.Unpause() // as a restart would
		_, err = f.Hold(context.Background(), p, 50*time.Millisecond, HoldFor(5*time.Second))
		if !strings.Contains(err.Error(), servers[1].addr+" no longer paused") {
			t.Fatalf("Hold: %v", err)
		}
		wantAllUnpaused(t, servers, 1)
	})
	t.Run("interrupted", func(t *testing.T) {
		servers := startServers(t, 3, GateOptions{})
		f := newFleet(t, addrsOf(servers), DialOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		p, err := f.PauseAll(ctx, true, 0)
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err = f.Hold(ctx, p, time.Second, HoldFor(time.Minute))
		if !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "every target was unpaused") {
			t.Fatalf("interrupted Hold: %v", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("Hold took %v to notice the cancellation", time.Since(start))
		}
		wantAllUnpaused(t, servers, 1)
	})
}

func TestUnpauseAllReportsFailures(t *testing.T) {
	servers := startServers(t, 1, GateOptions{})
	down := refusingAddr(t)
	f := newFleet(t, []string{servers[0].addr, down}, DialOptions{})
	if err := servers[0].gate.Pause(context.Background(), false, 0); err != nil {
		t.Fatal(err)
	}
	err := f.UnpauseAll(context.Background())
	var fe *FleetError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "unpause failed on 1 of 2 targets: "+down) {
		t.Fatalf("UnpauseAll: %v", err)
	}
	if servers[0].gate.Paused() {
		t.Error("the live target is still paused")
	}
	paused, err := f.CheckAll(context.Background())
	if err == nil || len(paused) != 1 || paused[servers[0].addr] {
		t.Errorf("CheckAll = %v, %v; want the live target unpaused and an error for %s", paused, err, down)
	}
}

func TestToken(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	auth := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		mu.Lock()
		seen = append(seen, md.Get("authorization")...)
		mu.Unlock()
		if v := md.Get("authorization"); len(v) != 1 || v[0] != "Bearer s3cret" {
			return nil, status.Error(codes.Unauthenticated, "bad token")
		}
		return handler(ctx, req)
	}
	srv := startServer(t, GateOptions{}, grpc.UnaryInterceptor(auth))

	_, err := newFleet(t, []string{srv.addr}, DialOptions{}).PauseAll(context.Background(), true, 0)
	var pf *PauseFailedError
	if !errors.As(err, &pf) || status.Code(pf.Pause[0].Err) != codes.Unauthenticated {
		t.Fatalf("PauseAll without a token: %v, want Unauthenticated", err)
	}
	f := newFleet(t, []string{srv.addr}, DialOptions{Token: "s3cret"})
	p, err := f.PauseAll(context.Background(), true, 0)
	if err != nil {
		t.Fatalf("PauseAll with the token: %v", err)
	}
	if !srv.gate.Paused() {
		t.Fatal("not paused")
	}
	if _, err := f.Hold(context.Background(), p, 0, HoldFor(0)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 || seen[len(seen)-1] != "Bearer s3cret" {
		t.Errorf("authorization metadata seen: %q", seen)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, caFile, _ := testcert.SelfSigned(t, dir, "admin.stillpoint.test")
	srv := startServer(t, GateOptions{}, grpc.Creds(credentials.NewServerTLSFromCert(&cert)))

	ok := newFleet(t, []string{srv.addr}, DialOptions{TLS: true, CACert: caFile, ServerName: "admin.stillpoint.test"})
	if _, err := ok.CheckAll(context.Background()); err != nil {
		t.Fatalf("TLS with the CA and server name: %v", err)
	}
	// Without the server name, 127.0.0.1 is not in the certificate.
	bad := newFleet(t, []string{srv.addr}, DialOptions{CACert: caFile})
	if _, err := bad.CheckAll(context.Background()); status.Code(err.(*FleetError).Results[0].Err) != codes.Unavailable {
		t.Fatalf("TLS with the wrong name: %v, want a failure", err)
	}

	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("not a certificate"), 0o600)
	for _, o := range []DialOptions{{TLS: true, CACert: empty}, {TLS: true, CACert: filepath.Join(dir, "missing.pem")}} {
		if _, err := o.GRPCOptions(); err == nil || !strings.Contains(err.Error(), "CA certificate") {
			t.Errorf("GRPCOptions(%+v): %v, want a CA certificate error", o, err)
		}
	}
}

func TestParseTargets(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "127.0.0.1:50051", want: []string{"127.0.0.1:50051"}},
		{in: "a.example:1, b.example:2 ,[::1]:50051", want: []string{"a.example:1", "b.example:2", "[::1]:50051"}},
		{in: "", wantErr: "no addresses"},
		{in: "a:1,,b:2", wantErr: "address 2"},
		{in: "a:1,b", wantErr: `address "b": want host:port`},
		{in: "::1:50051", wantErr: "IPv6 address goes in brackets"},
		{in: ":50051", wantErr: "has no host"},
		{in: "a:http", wantErr: `port "http"`},
		{in: "a:70000", wantErr: `port "70000"`},
		{in: "a:1,a:1", wantErr: "listed twice"},
	}
	for _, tt := range tests {
		got, err := ParseTargets(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseTargets(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("ParseTargets(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestWindowJSON(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	w := Window{
		Start:   time.Date(2026, 11, 24, 21, 40, 5, 122_500_000, time.UTC),  // rounds up
		End:     time.Date(2026, 11, 24, 21, 40, 10, 456_900_000, time.UTC), // rounds down
		Targets: []string{"a:1", "b:2"},
	}
	tests := []struct {
		loc  *time.Location
		want string
	}{
		{time.UTC, `{"pause_start_timestamp_ms":1795556405123,"pause_end_timestamp_ms":1795556410456,"pause_start_date_time":"2026-11-24T21:40:05.123","pause_end_date_time":"2026-11-24T21:40:10.456","timezone":"UTC","targets":["a:1","b:2"]}`},
		{tokyo, `{"pause_start_timestamp_ms":1795556405123,"pause_end_timestamp_ms":1795556410456,"pause_start_date_time":"2026-11-25T06:40:05.123","pause_end_date_time":"2026-11-25T06:40:10.456","timezone":"Asia/Tokyo","targets":["a:1","b:2"]}`},
	}
	for _, tt := range tests {
		if got := string(w.JSON(tt.loc)); got != tt.want {
			t.Errorf("JSON(%v) =\n%s\nwant\n%s", tt.loc, got, tt.want)
		}
	}
	if got := ZoneName(time.Local); got == "" || got == "Local" {
		t.Errorf("ZoneName(time.Local) = %q, want a zone name", got)
	}
}

// TestPauseAllInterrupted: an interruption while the targets pause is
// reported as one, not as the cancelled calls' failures, and every target
// is unpaused.
func TestPauseAllInterrupted(t *testing.T) {
	servers := startServers(t, 2, GateOptions{Lease: 2 * time.Second})
	f := newFleet(t, addrsOf(servers), DialOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.PauseAll(ctx, true, 0)
	var pf *PauseFailedError
	if !errors.As(err, &pf) || !strings.HasPrefix(err.Error(), "pause interrupted (context canceled)") || !strings.Contains(err.Error(), "must not be used for a backup") || strings.Contains(err.Error(), "the pause failed") {
		t.Fatalf("PauseAll with an interrupted context = %v, want it to say it was interrupted", err)
	}
	wantAllUnpaused(t, servers, 0)
}
