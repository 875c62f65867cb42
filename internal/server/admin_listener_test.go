package server_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/client"
	"github.com/stillpoint/stillpoint/internal/server"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/testenv/testcert"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	adminpb "github.com/stillpoint/stillpoint/proto/rpc"
)

// adminClient is a scalar-admin-like client: no token, no client
// certificate, connecting from the loopback address from.
func adminClient(t *testing.T, addr, from string) adminpb.AdminClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return adminpb.NewAdminClient(cc)
}

// stillpointAdmin is an rpc.Admin client dialled as Stillpoint's own.
func stillpointAdmin(t *testing.T, addr string, o admin.DialOptions) adminpb.AdminClient {
	t.Helper()
	opts, err := o.GRPCOptions()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return adminpb.NewAdminClient(cc)
}

// The allow-list is checked against the connection's source: 127.0.0.2
// stands for a non-loopback client (loopback addresses only, so the test
// reaches nothing outside this machine).
func TestAdminListenerAllowList(t *testing.T) {
	tests := []struct {
		name    string
		allow   []string
		from    string
		allowed bool
	}{
		{name: "network includes the source", allow: []string{"127.0.0.2/32"}, from: "127.0.0.2", allowed: true},
		{name: "one of several", allow: []string{"10.0.0.0/8", " 127.0.0.0/30"}, from: "127.0.0.2", allowed: true},
		{name: "network excludes the source", allow: []string{"127.0.0.2/32"}, from: "127.0.0.1", allowed: false},
		{name: "address excludes the source", allow: []string{"127.0.0.1"}, from: "127.0.0.2", allowed: false},
		{name: "no list on loopback", from: "127.0.0.2", allowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, server.Options{Token: "s3cret", AdminListen: "127.0.0.1:0", AdminAllow: tt.allow})
			c := adminClient(t, f.srv.AdminAddr(), tt.from)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.Pause(ctx, &adminpb.PauseRequest{})
			if tt.allowed != (err == nil) || f.srv.Gate().Paused() != tt.allowed {
				t.Fatalf("Pause from %s with --admin-allow %v: %v, paused=%v; want allowed=%v", tt.from, tt.allow, err, f.srv.Gate().Paused(), tt.allowed)
			}
			if !tt.allowed && status.Code(err) != codes.Unavailable {
				t.Fatalf("refused connection: %v, want UNAVAILABLE (closed before any RPC)", err)
			}
		})
	}
}

// The admin listener serves TLS with its own certificate, or the main
// listener's when it has none; clients need no certificate or token.
func TestAdminListenerTLS(t *testing.T) {
	dir := t.TempDir()
	_, mainCert, mainKey := testcert.SelfSigned(t, dir, "main.stillpoint.test")
	_, adminCert, adminKey := testcert.SelfSigned(t, dir, "admin.stillpoint.test")
	tests := []struct {
		name             string
		adminCert, key   string
		trust, trustName string // the CA and name the client checks
	}{
		{name: "the main listener's certificate", trust: mainCert, trustName: "main.stillpoint.test"},
		{name: "its own certificate", adminCert: adminCert, key: adminKey, trust: adminCert, trustName: "admin.stillpoint.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, server.Options{Token: "s3cret", TLSCert: mainCert, TLSKey: mainKey, AdminListen: "127.0.0.1:0", AdminTLSCert: tt.adminCert, AdminTLSKey: tt.key})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c := stillpointAdmin(t, f.srv.AdminAddr(), admin.DialOptions{CACert: tt.trust, ServerName: tt.trustName})
			if _, err := c.Pause(ctx, &adminpb.PauseRequest{WaitOutstanding: true}); err != nil || !f.srv.Gate().Paused() {
				t.Fatalf("Pause over TLS without a token: %v", err)
			}
			if _, err := adminClient(t, f.srv.AdminAddr(), "127.0.0.1").Unpause(ctx, &emptypb.Empty{}); status.Code(err) != codes.Unavailable || !f.srv.Gate().Paused() {
				t.Fatalf("Unpause in clear text on a TLS listener: %v, want UNAVAILABLE and still paused", err)
			}
		})
	}
}

func TestAdminListenerOptions(t *testing.T) {
	tests := []struct {
		name string
		opts server.Options
		want string
	}{
		{name: "beyond loopback without an allow-list", opts: server.Options{Token: "t", AdminListen: "0.0.0.0:0"}, want: "--admin-allow"},
		{name: "bad network", opts: server.Options{AdminListen: "127.0.0.1:0", AdminAllow: []string{"10.0.0.0/33"}}, want: `--admin-allow "10.0.0.0/33"`},
		{name: "allow-list without a listener", opts: server.Options{AdminAllow: []string{"10.0.0.0/8"}}, want: "set --admin-listen"},
		{name: "negative maximum", opts: server.Options{AdminListen: "127.0.0.1:0", AdminMaxPause: -time.Second}, want: "--admin-max-pause"},
		{name: "bad address", opts: server.Options{AdminListen: "127.0.0.1"}, want: "--admin-listen"},
		{name: "missing admin key", opts: server.Options{AdminListen: "127.0.0.1:0", AdminTLSCert: "cert.pem"}, want: "--admin-tls-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Listen = "127.0.0.1:0"
			_, err := server.New(txn.NewManager(nil, txn.Options{}), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// A pause through the admin listener (no token, never renewed) holds past
// the lease until Unpause, while the main listener keeps requiring the
// token and its own pauses keep their lease. Runs on the gate's clock.
func TestAdminListenerPauseHoldsUntilUnpause(t *testing.T) {
	const lease = time.Minute
	clock := admin.NewManualClock(time.Now())
	f := start(t, server.Options{Token: "s3cret", PauseLease: lease, Clock: clock, AdminListen: "127.0.0.1:0", AdminAllow: []string{"127.0.0.2"}})
	ctx := context.Background()
	adm := adminClient(t, f.srv.AdminAddr(), "127.0.0.2")
	app := dial(t, f.srv.Addr(), admin.DialOptions{Token: "s3cret"})

	// Pause with drain waits for the transaction in flight on the main
	// listener.
	tx, err := app.Begin(ctx, consensus.Snapshot, "")
	if err != nil {
		t.Fatal(err)
	}
	paused := make(chan error, 1)
	go func() {
		_, err := adm.Pause(ctx, &adminpb.PauseRequest{WaitOutstanding: true})
		paused <- err
	}()
	testenv.Await(t, "the admin listener's Pause to close the gate", f.srv.Gate().Paused)
	select {
	case err := <-paused:
		t.Fatalf("Pause returned before the transaction in flight finished: %v", err)
	default:
	}
	if _, err := tx.Get(ctx, acct("bank_0", 1)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the transaction in flight could not commit during the drain: %v", err)
	}
	if err := <-paused; err != nil {
		t.Fatal(err)
	}

	// 3 minutes on, three leases, it still holds under one pause id.
	id := f.srv.Gate().Stats().PauseID
	clock.Advance(3 * time.Minute)
	if r, err := adm.CheckPaused(ctx, &emptypb.Empty{}); err != nil || !r.GetPaused() {
		t.Fatalf("CheckPaused 3 minutes after a pause without renewal: %v, %v; want paused", r, err)
	}
	if s := f.srv.Gate().Stats(); s.PauseID != id || s.LeaseExpiries != 0 {
		t.Fatalf("Stats = %+v, want pause %s still in force, no lease expiry", s, id)
	}
	if _, err := app.Begin(ctx, consensus.Snapshot, ""); !errors.Is(err, client.ErrPaused) {
		t.Fatalf("Begin while paused: %v, want refused as paused", err)
	}
	if _, err := adm.Unpause(ctx, &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Begin(ctx, consensus.Snapshot, ""); err != nil {
		t.Fatalf("Begin after Unpause: %v", err)
	}

	// The main listener: rpc.Admin there needs the token, and its pauses
	// keep their lease.
	mainNoToken := adminClient(t, f.srv.Addr(), "127.0.0.1")
	if _, err := mainNoToken.Pause(ctx, &adminpb.PauseRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Pause on the main listener without the token: %v, want UNAUTHENTICATED", err)
	}
	if _, err := stillpointAdmin(t, f.srv.Addr(), admin.DialOptions{Token: "s3cret"}).Pause(ctx, &adminpb.PauseRequest{}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(lease)
	if s := f.srv.Gate().Stats(); s.Paused || s.LeaseExpiries != 1 {
		t.Fatalf("a pause through the main listener after its lease: Stats = %+v, want ended by the lease", s)
	}
}
