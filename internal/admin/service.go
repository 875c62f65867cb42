package admin

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	adminpb "github.com/stillpoint/stillpoint/proto/rpc"
)

// Service is scalar-admin's rpc.Admin service over a Gate.
type Service struct {
	adminpb.UnimplementedAdminServer
	gate  *Gate
	pause func(ctx context.Context, waitOutstanding bool, maxWait time.Duration) error
}

// NewService returns the rpc.Admin service pausing g with leased pauses
// (Gate.Pause), for clients that renew: Stillpoint's own.
func NewService(g *Gate) *Service { return &Service{gate: g, pause: g.Pause} }

// Register registers NewService(g) on s (a *grpc.Server).
func Register(s grpc.ServiceRegistrar, g *Gate) { adminpb.RegisterAdminServer(s, NewService(g)) }

// RegisterUntilUnpause registers on s the rpc.Admin service pausing g with
// pauses that hold until Unpause or the gate's MaxHold
// (Gate.PauseUntilUnpause), for scalar-admin's tools, which never renew.
func RegisterUntilUnpause(s grpc.ServiceRegistrar, g *Gate) {
	adminpb.RegisterAdminServer(s, &Service{gate: g, pause: g.PauseUntilUnpause})
}

// Pause closes the gate; see Gate.Pause. max_pause_wait_time is taken as
// ScalarDB Server takes it: unset or 0 is the gate's default, negative is
// no wait. A drain timeout is FAILED_PRECONDITION (the gate has been
// reopened), as in ScalarDB Server.
func (s *Service) Pause(ctx context.Context, req *adminpb.PauseRequest) (*emptypb.Empty, error) {
	ms := min(req.GetMaxPauseWaitTime(), math.MaxInt64/int64(time.Millisecond)) // no overflow into a negative wait
	maxWait := time.Duration(ms) * time.Millisecond
	err := s.pause(ctx, req.GetWaitOutstanding(), maxWait)
	switch {
	case err == nil:
		return &emptypb.Empty{}, nil
	case errors.Is(err, ErrDrainTimeout):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrShuttingDown):
		return nil, status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrPauseInterrupted):
		return nil, status.Error(codes.Aborted, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, status.FromContextError(err).Err()
	}
	return nil, status.Error(codes.Internal, err.Error())
}

// Unpause reopens the gate; it is idempotent.
func (s *Service) Unpause(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	s.gate.Unpause()
	return &emptypb.Empty{}, nil
}

// CheckPaused reports whether the gate is closed.
func (s *Service) CheckPaused(context.Context, *emptypb.Empty) (*adminpb.CheckPausedResponse, error) {
	return &adminpb.CheckPausedResponse{Paused: s.gate.Paused()}, nil
}

// Stats returns the gate's Stats as a JSON document.
func (s *Service) Stats(context.Context, *emptypb.Empty) (*adminpb.StatsResponse, error) {
	b, err := json.Marshal(s.gate.Stats())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &adminpb.StatsResponse{Stats: string(b)}, nil
}
