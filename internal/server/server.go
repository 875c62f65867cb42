// Package server serves Stillpoint's transaction service and scalar-admin's
// rpc.Admin service on one gRPC port, with a pause gate between them, and
// optionally rpc.Admin alone on an admin port without call credentials.
package server

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/txn"
	pb "github.com/stillpoint/stillpoint/proto/stillpoint/v1"
)

// Options configure a server.
type Options struct {
	Listen string // host:port
	// TLSCert and TLSKey (PEM files) turn on TLS.
	TLSCert, TLSKey string
	// Token, when set, is required as "authorization: Bearer <token>" on
	// every call but health checks. A server listening beyond loopback
	// refuses to start without one.
	Token string
	// PauseLease unpauses the server by itself when a pause outlives it.
	PauseLease time.Duration
	// MaxPauseWait is the drain limit when a Pause request gives none.
	MaxPauseWait time.Duration
	// AdminListen, when set, serves rpc.Admin (and health) alone on a
	// second address without call credentials, for scalar-admin's tools,
	// which can send neither a token nor a client certificate. Its pauses
	// have no lease: they hold until Unpause or AdminMaxPause.
	AdminListen string
	// AdminAllow are the source networks (CIDRs, or single addresses)
	// whose connections the admin listener accepts; others are closed
	// before any RPC. Required when AdminListen is beyond loopback.
	AdminAllow []string
	// AdminTLSCert and AdminTLSKey turn on TLS on the admin listener;
	// when unset it uses TLSCert and TLSKey.
	AdminTLSCert, AdminTLSKey string
	// AdminMaxPause, if positive, ends a pause made through the admin
	// listener this long after it was made. Zero: it holds until Unpause.
	AdminMaxPause time.Duration
	// Clock runs the pause lease and AdminMaxPause; nil means the system clock.
	Clock admin.Clock
	// IdleTimeout aborts transactions left idle this long.
	IdleTimeout time.Duration
	// DrainTimeout bounds the wait for in-flight transactions at shutdown.
	DrainTimeout time.Duration
	// MetricsListen, when set, serves Prometheus metrics at /metrics there.
	MetricsListen string
	Logger        *slog.Logger
}

// Server is a running gRPC server.
type Server struct {
	opts   Options
	grpc   *grpc.Server
	health *health.Server
	gate   *admin.Gate
	txs    *transactions
	lis    net.Listener
	reg    *prometheus.Registry
	// admin and adminLis serve the admin listener; nil without one.
	admin    *grpc.Server
	adminLis net.Listener
}

// New checks the options, listens, and registers the services.
func New(m *txn.Manager, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = time.Minute
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	loopback, err := isLoopback("--listen", opts.Listen)
	if err != nil {
		return nil, err
	}
	allow, err := checkAdmin(opts)
	if err != nil {
		return nil, err
	}
	if !loopback && opts.Token == "" {
		return nil, fmt.Errorf("listening on %s, beyond loopback, needs a token: set --token or STILLPOINT_TOKEN (clients send it as \"authorization: Bearer <token>\")", opts.Listen)
	}
	if !loopback && opts.TLSCert == "" {
		opts.Logger.Warn("serving beyond loopback without TLS: the token travels in clear text", "listen", opts.Listen)
	}
	serverOpts, err := tlsOptions("--tls-cert", opts.TLSCert, "--tls-key", opts.TLSKey)
	if err != nil {
		return nil, err
	}
	if opts.Token != "" {
		a := auth{token: opts.Token}
		serverOpts = append(serverOpts, grpc.ChainUnaryInterceptor(a.unary), grpc.ChainStreamInterceptor(a.stream))
	}
	lis, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	s := &Server{opts: opts, grpc: grpc.NewServer(serverOpts...), health: health.NewServer(), lis: lis, reg: prometheus.NewRegistry()}
	s.gate = admin.NewGate(admin.GateOptions{DefaultMaxWait: opts.MaxPauseWait, Lease: opts.PauseLease, MaxHold: opts.AdminMaxPause, Logger: opts.Logger, Clock: opts.Clock})
	met := newMetrics(s.reg, s.gate)
	s.txs = newTransactions(m, s.gate, opts.IdleTimeout, opts.Logger, met)
	pb.RegisterTransactionServer(s.grpc, s.txs)
	admin.Register(s.grpc, s.gate)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	if opts.AdminListen != "" {
		if err := s.listenAdmin(allow, met); err != nil {
			lis.Close()
			return nil, err
		}
	}
	return s, nil
}

// listenAdmin opens the admin listener: rpc.Admin with pauses that hold
// until Unpause, and health, behind the source allow-list.
func (s *Server) listenAdmin(allow []netip.Prefix, met *metrics) error {
	cert, key := s.opts.AdminTLSCert, s.opts.AdminTLSKey
	certFlag, keyFlag := "--admin-tls-cert", "--admin-tls-key"
	if cert == "" && key == "" {
		cert, key, certFlag, keyFlag = s.opts.TLSCert, s.opts.TLSKey, "--tls-cert", "--tls-key"
	}
	serverOpts, err := tlsOptions(certFlag, cert, keyFlag, key)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", s.opts.AdminListen)
	if err != nil {
		return fmt.Errorf("listen on --admin-listen %s: %w", s.opts.AdminListen, err)
	}
	if len(allow) > 0 {
		lis = &allowListener{Listener: lis, allow: allow, log: s.opts.Logger, refused: met.adminRefused}
	}
	s.admin, s.adminLis = grpc.NewServer(serverOpts...), lis
	admin.RegisterUntilUnpause(s.admin, s.gate)
	healthpb.RegisterHealthServer(s.admin, s.health)
	return nil
}

// checkAdmin checks the admin listener's options and parses its
// allow-list.
func checkAdmin(opts Options) ([]netip.Prefix, error) {
	if opts.AdminListen == "" {
		if len(opts.AdminAllow) > 0 || opts.AdminTLSCert != "" || opts.AdminTLSKey != "" || opts.AdminMaxPause != 0 {
			return nil, errors.New("--admin-allow, --admin-tls-cert, --admin-tls-key and --admin-max-pause configure the admin listener: set --admin-listen HOST:PORT too")
		}
		return nil, nil
	}
	if opts.AdminMaxPause < 0 {
		return nil, fmt.Errorf("--admin-max-pause is %v: want a positive duration, or 0 for pauses that hold until Unpause", opts.AdminMaxPause)
	}
	var allow []netip.Prefix
	for _, a := range opts.AdminAllow {
		a = strings.TrimSpace(a)
		p, err := netip.ParsePrefix(a)
		if err != nil {
			addr, aerr := netip.ParseAddr(a)
			if aerr != nil {
				return nil, fmt.Errorf("--admin-allow %q: want a network such as 10.0.0.0/8 or an address such as 10.1.2.3: %w", a, err)
			}
			p = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		allow = append(allow, p.Masked())
	}
	loopback, err := isLoopback("--admin-listen", opts.AdminListen)
	if err != nil {
		return nil, err
	}
	if !loopback && len(allow) == 0 {
		return nil, fmt.Errorf("--admin-listen %s is beyond loopback and takes no credentials: set --admin-allow to the networks scalar-admin's tools connect from (e.g. 10.0.0.0/8)", opts.AdminListen)
	}
	return allow, nil
}

// tlsOptions loads a server certificate; none when both paths are empty.
func tlsOptions(certFlag, cert, keyFlag, key string) ([]grpc.ServerOption, error) {
	if cert == "" && key == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("TLS: load %s %s and %s %s: %w", certFlag, cert, keyFlag, key, err)
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}))}, nil
}

// allowListener closes connections from outside its allow-list as they
// are accepted, before TLS or any RPC.
type allowListener struct {
	net.Listener
	allow   []netip.Prefix
	log     *slog.Logger
	refused prometheus.Counter
}

func (l *allowListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.allowed(c.RemoteAddr()) {
			return c, nil
		}
		l.refused.Inc()
		l.log.Warn("admin listener: refused a connection from outside --admin-allow", "from", c.RemoteAddr().String())
		c.Close()
	}
}

func (l *allowListener) allowed(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range l.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() string { return s.lis.Addr().String() }

// AdminAddr is the admin listener's address, "" without one.
func (s *Server) AdminAddr() string {
	if s.adminLis == nil {
		return ""
	}
	return s.adminLis.Addr().String()
}

// Gate is the server's pause gate.
func (s *Server) Gate() *admin.Gate { return s.gate }

// Serve serves until ctx is cancelled, then shuts down gracefully: new
// transactions are refused, in-flight ones get DrainTimeout to finish.
func (s *Server) Serve(ctx context.Context) error {
	reapCtx, stopReap := context.WithCancel(context.Background())
	defer stopReap()
	go s.txs.reap(reapCtx)
	errc := make(chan error, 3)
	go func() { errc <- s.grpc.Serve(s.lis) }()
	if s.admin != nil {
		go func() { errc <- s.admin.Serve(s.adminLis) }()
		// Stop, not GracefulStop: a Pause waiting for a drain would hold
		// the shutdown; stopping cancels it and reopens what it closed.
		defer s.admin.Stop()
	}
	if s.opts.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
		hs := &http.Server{Addr: s.opts.MetricsListen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics on %s: %w", s.opts.MetricsListen, err)
			}
		}()
		defer hs.Close()
	}
	s.opts.Logger.Info("serving", "listen", s.Addr(), "tls", s.opts.TLSCert != "", "token", s.opts.Token != "")
	if s.admin != nil {
		s.opts.Logger.Warn("serving rpc.Admin without credentials: whoever reaches it from --admin-allow can pause this server", "admin_listen", s.AdminAddr(), "admin_allow", s.opts.AdminAllow, "admin_max_pause", s.opts.AdminMaxPause)
	}
	select {
	case err := <-errc:
		s.grpc.Stop()
		s.gate.Close()
		return err
	case <-ctx.Done():
	}
	s.health.Shutdown()
	left := s.gate.Drain(context.Background(), s.opts.DrainTimeout)
	if left > 0 {
		s.opts.Logger.Warn("shutting down with transactions still open; their records are left to lazy recovery", "open", left)
	}
	s.txs.abortAll()
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		s.grpc.Stop()
	}
	s.gate.Close()
	return nil
}

func isLoopback(flag, listen string) (bool, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false, fmt.Errorf("%s %q: want host:port (e.g. 127.0.0.1:50051 or [::1]:50051): %w", flag, listen, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// auth requires the bearer token on every call but health checks, which
// load balancers and orchestrators make without credentials.
type auth struct{ token string }

func (a auth) check(ctx context.Context, method string) error {
	if strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if got, ok := strings.CutPrefix(v, "Bearer "); ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "missing or wrong token: send \"authorization: Bearer <token>\"")
}

func (a auth) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (a auth) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := a.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}
