package testenv

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint/stillpoint/internal/admin"
	adminpb "github.com/stillpoint/stillpoint/proto/rpc"
)

// AdminServer serves rpc.Admin over a new gate on 127.0.0.1 until the test
// ends, and returns its address and gate.
func AdminServer(t testing.TB, o admin.GateOptions, sopts ...grpc.ServerOption) (string, *admin.Gate) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := admin.NewGate(o)
	s := grpc.NewServer(sopts...)
	admin.Register(s, g)
	go s.Serve(lis)
	t.Cleanup(func() { s.Stop(); g.Close() })
	return lis.Addr().String(), g
}

// BeforeCall is a gRPC server option that calls fn(n) before the server
// handles the nth call (from 1) of method, a full name such as
// "/rpc.Admin/Pause": tests use it to make a server's pause lapse at an
// exact point of a protocol.
func BeforeCall(method string, fn func(n int32)) grpc.ServerOption {
	var calls atomic.Int32
	return grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if info.FullMethod == method {
			fn(calls.Add(1))
		}
		return h(ctx, req)
	})
}

// ScalarDBEra is a range of ScalarDB Server releases whose rpc.Admin
// service behaves alike.
type ScalarDBEra int

// The eras of ScalarDB Server's AdminService (server/src/main/java/com/
// scalar/db/server/AdminService.java at v3.4.9, v3.6.0, v3.9.0, v3.13.6;
// the server was removed in 3.14).
const (
	ScalarDB34 ScalarDBEra = iota // 3.4, 3.5: Pause, Unpause, Stats ("{}"); no CheckPaused
	ScalarDB36                    // 3.6 to 3.8: Pause, Unpause, CheckPaused, Stats ("{}")
	ScalarDB39                    // 3.9 to 3.13: Pause, Unpause, CheckPaused; no Stats
)

// ScalarDBAdmin is an rpc.Admin server that behaves as ScalarDB Server's
// does for a client of the admin service alone: an in-memory gate that only
// Pause and Unpause move (no lease, no pause id), Unimplemented for the
// rpcs its era lacks. It serves no data, so a drain always succeeds.
type ScalarDBAdmin struct {
	adminpb.UnimplementedAdminServer
	era    ScalarDBEra
	paused atomic.Bool
	pauses atomic.Int32
}

// ScalarDBAdminServer serves a ScalarDBAdmin of era on 127.0.0.1 until the
// test ends, and returns its address.
func ScalarDBAdminServer(t testing.TB, era ScalarDBEra) (string, *ScalarDBAdmin) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &ScalarDBAdmin{era: era}
	s := grpc.NewServer()
	adminpb.RegisterAdminServer(s, a)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String(), a
}

// Pause closes the gate; with nothing ever in flight, a drain succeeds.
func (a *ScalarDBAdmin) Pause(context.Context, *adminpb.PauseRequest) (*emptypb.Empty, error) {
	a.pauses.Add(1)
	a.paused.Store(true)
	return &emptypb.Empty{}, nil
}

// Unpause opens the gate, as an operator's scalar-admin run or a restart
// would; tests call it directly for the latter.
func (a *ScalarDBAdmin) Unpause(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	a.paused.Store(false)
	return &emptypb.Empty{}, nil
}

// CheckPaused reports the gate, from 3.6.
func (a *ScalarDBAdmin) CheckPaused(context.Context, *emptypb.Empty) (*adminpb.CheckPausedResponse, error) {
	if a.era < ScalarDB36 {
		return nil, status.Error(codes.Unimplemented, "method CheckPaused not implemented")
	}
	return &adminpb.CheckPausedResponse{Paused: a.paused.Load()}, nil
}

// Stats answers "{}" ("returns empty for now"), up to 3.8.
func (a *ScalarDBAdmin) Stats(context.Context, *emptypb.Empty) (*adminpb.StatsResponse, error) {
	if a.era >= ScalarDB39 {
		return nil, status.Error(codes.Unimplemented, "method Stats not implemented")
	}
	return &adminpb.StatsResponse{Stats: "{}"}, nil
}

// Paused reports the gate.
func (a *ScalarDBAdmin) Paused() bool { return a.paused.Load() }

// Pauses counts the Pause calls received.
func (a *ScalarDBAdmin) Pauses() int { return int(a.pauses.Load()) }
