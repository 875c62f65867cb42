// Package server serves Stillpoint's transaction service and scalar-admin's
// rpc.Admin service on one gRPC port, with a pause gate between them.
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
	loopback, err := isLoopback(opts.Listen)
	if err != nil {
		return nil, err
	}
	if !loopback && opts.Token == "" {
		return nil, fmt.Errorf("listening on %s, beyond loopback, needs a token: set --token or STILLPOINT_TOKEN (clients send it as \"authorization: Bearer <token>\")", opts.Listen)
	}
	if !loopback && opts.TLSCert == "" {
		opts.Logger.Warn("serving beyond loopback without TLS: the token travels in clear text", "listen", opts.Listen)
	}
	var serverOpts []grpc.ServerOption
	if opts.TLSCert != "" || opts.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS: load --tls-cert %s and --tls-key %s: %w", opts.TLSCert, opts.TLSKey, err)
		}
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
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
	s.gate = admin.NewGate(admin.GateOptions{DefaultMaxWait: opts.MaxPauseWait, Lease: opts.PauseLease, Logger: opts.Logger})
	s.txs = newTransactions(m, s.gate, opts.IdleTimeout, opts.Logger, newMetrics(s.reg, s.gate))
	pb.RegisterTransactionServer(s.grpc, s.txs)
	admin.Register(s.grpc, s.gate)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	return s, nil
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Gate is the server's pause gate.
func (s *Server) Gate() *admin.Gate { return s.gate }

// Serve serves until ctx is cancelled, then shuts down gracefully: new
// transactions are refused, in-flight ones get DrainTimeout to finish.
func (s *Server) Serve(ctx context.Context) error {
	reapCtx, stopReap := context.WithCancel(context.Background())
	defer stopReap()
	go s.txs.reap(reapCtx)
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(s.lis) }()
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

func isLoopback(listen string) (bool, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false, fmt.Errorf("--listen %q: want host:port (e.g. 127.0.0.1:50051 or [::1]:50051): %w", listen, err)
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
