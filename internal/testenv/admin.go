package testenv

import (
	"net"
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
