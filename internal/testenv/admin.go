package testenv

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/stillpoint/stillpoint/internal/admin"
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
