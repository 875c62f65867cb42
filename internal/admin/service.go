package admin

import (
	"context"
	"encoding/json"
	"errors"
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
	gate *Gate
}

// NewService returns the rpc.Admin service pausing g.
func NewService(g *Gate) *Service { return &Service{gate: g} }

// Register registers the rpc.Admin service over g on s (a *grpc.Server).
func Register(s grpc.ServiceRegistrar, g *Gate) { adminpb.RegisterAdminServer(s, NewService(g)) }

// Pause closes the gate; see Gate.Pause. A drain timeout is
// FAILED_PRECONDITION (the gate has been reopened), as in scalar-admin.
func (s *Service) Pause(ctx context.Context, req *adminpb.PauseRequest) (*emptypb.Empty, error) {
	var maxWait time.Duration
	if req.MaxPauseWaitTime != nil {
		ms := req.GetMaxPauseWaitTime()
		if ms < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "max_pause_wait_time is %d ms: it must be positive, or 0 for the server's default", ms)
		}
		maxWait = time.Duration(ms) * time.Millisecond
	}
	err := s.gate.Pause(ctx, req.GetWaitOutstanding(), maxWait)
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
