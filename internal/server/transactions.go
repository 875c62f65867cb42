package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/wire"
	pb "github.com/stillpoint/stillpoint/proto/stillpoint/v1"
)

// Error reasons the transaction service attaches to its statuses, so that
// clients tell them apart without parsing messages.
const (
	ReasonUnknownStatus = "UNKNOWN_TRANSACTION_STATUS"
	ReasonPaused        = "SERVER_PAUSED"
	ReasonConflict      = "TRANSACTION_CONFLICT"
	ErrorDomain         = "stillpoint"
)

// transactions is the transaction service: it keeps each open transaction
// until it commits, aborts, or sits idle past the idle timeout.
type transactions struct {
	pb.UnimplementedTransactionServer
	m    *txn.Manager
	gate *admin.Gate
	idle time.Duration
	log  *slog.Logger
	obs  *metrics

	mu   sync.Mutex
	open map[string]*openTx
}

type openTx struct {
	mu       sync.Mutex // a Transaction is not safe for concurrent use
	tx       *txn.Transaction
	release  func() // leaves the pause gate
	lastUsed time.Time
}

func newTransactions(m *txn.Manager, gate *admin.Gate, idle time.Duration, log *slog.Logger, obs *metrics) *transactions {
	return &transactions{m: m, gate: gate, idle: idle, log: log, obs: obs, open: map[string]*openTx{}}
}

func (s *transactions) Begin(ctx context.Context, req *pb.BeginRequest) (*pb.BeginResponse, error) {
	release, err := s.gate.Enter()
	if err != nil {
		s.obs.count("refused")
		return nil, withReason(codes.Unavailable, ReasonPaused, err.Error())
	}
	iso := consensus.Snapshot
	if req.GetIsolation() == pb.Isolation_ISOLATION_SERIALIZABLE {
		iso = consensus.Serializable
	}
	tx := s.m.BeginWith(iso, req.GetIdPrefix())
	s.mu.Lock()
	s.open[tx.ID()] = &openTx{tx: tx, release: release, lastUsed: time.Now()}
	s.mu.Unlock()
	return &pb.BeginResponse{TransactionId: tx.ID()}, nil
}

// use runs fn on an open transaction, serialised with other calls on it.
func (s *transactions) use(id string, fn func(tx *txn.Transaction) error) error {
	s.mu.Lock()
	o, ok := s.open[id]
	s.mu.Unlock()
	if !ok {
		return status.Errorf(codes.NotFound, "transaction %q is not open on this server: it finished, was idle longer than %v, or was begun on another server", id, s.idle)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastUsed = time.Now()
	return toStatus(fn(o.tx))
}

// finish forgets a transaction and lets it out of the pause gate.
func (s *transactions) finish(id string) {
	s.mu.Lock()
	o, ok := s.open[id]
	delete(s.open, id)
	s.mu.Unlock()
	if ok {
		o.release()
	}
}

func (s *transactions) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	resp := &pb.GetResponse{}
	err := s.use(req.GetTransactionId(), func(tx *txn.Transaction) error {
		rec, err := tx.Get(ctx, storage.Get{Namespace: req.GetNamespace(), Table: req.GetTable(), Key: wire.Map(req.GetKey()), Projection: req.GetProjection()})
		if err != nil || rec == nil {
			return err
		}
		tbl, err := s.m.Table(ctx, req.GetNamespace(), req.GetTable())
		if err != nil {
			return err
		}
		resp.Record, err = wire.Record(tbl, rec)
		return err
	})
	return resp, err
}

func (s *transactions) Scan(ctx context.Context, req *pb.ScanRequest) (*pb.ScanResponse, error) {
	sc := storage.Scan{Namespace: req.GetNamespace(), Table: req.GetTable(), Partition: wire.Map(req.GetPartition()),
		Limit: int(req.GetLimit()), Projection: req.GetProjection()}
	for _, b := range []struct {
		in  *pb.Bound
		out **storage.Bound
	}{{req.Start, &sc.Start}, {req.End, &sc.End}} {
		if b.in != nil {
			*b.out = &storage.Bound{Key: wire.Map(b.in.GetKey()), Inclusive: b.in.GetInclusive()}
		}
	}
	for _, o := range req.GetOrdering() {
		ord := storage.Asc
		if o.GetDescending() {
			ord = storage.Desc
		}
		sc.Ordering = append(sc.Ordering, storage.ClusteringKey{Name: o.GetColumn(), Order: ord})
	}
	resp := &pb.ScanResponse{}
	err := s.use(req.GetTransactionId(), func(tx *txn.Transaction) error {
		recs, err := tx.Scan(ctx, sc)
		if err != nil {
			return err
		}
		tbl, err := s.m.Table(ctx, req.GetNamespace(), req.GetTable())
		if err != nil {
			return err
		}
		for _, r := range recs {
			pr, err := wire.Record(tbl, r)
			if err != nil {
				return err
			}
			resp.Records = append(resp.Records, pr)
		}
		return nil
	})
	return resp, err
}

func (s *transactions) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	err := s.use(req.GetTransactionId(), func(tx *txn.Transaction) error {
		return tx.Put(ctx, storage.Put{Namespace: req.GetNamespace(), Table: req.GetTable(), Values: wire.Map(req.GetValues())})
	})
	return &pb.PutResponse{}, err
}

func (s *transactions) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	err := s.use(req.GetTransactionId(), func(tx *txn.Transaction) error {
		return tx.Delete(ctx, storage.Delete{Namespace: req.GetNamespace(), Table: req.GetTable(), Key: wire.Map(req.GetKey())})
	})
	return &pb.DeleteResponse{}, err
}

func (s *transactions) Commit(ctx context.Context, req *pb.CommitRequest) (*pb.CommitResponse, error) {
	id := req.GetTransactionId()
	// A commit that has begun runs to its end even if the client goes
	// away: stopping it midway would leave records for lazy recovery.
	err := s.use(id, func(tx *txn.Transaction) error {
		start := time.Now()
		err := tx.Commit(context.WithoutCancel(ctx))
		s.obs.committed(err, time.Since(start))
		return err
	})
	if status.Code(err) != codes.NotFound {
		s.finish(id)
	}
	return &pb.CommitResponse{}, err
}

func (s *transactions) Abort(ctx context.Context, req *pb.AbortRequest) (*pb.AbortResponse, error) {
	id := req.GetTransactionId()
	err := s.use(id, func(tx *txn.Transaction) error { tx.Abort(); s.obs.count("aborted"); return nil })
	s.finish(id)
	return &pb.AbortResponse{}, err
}

// reap aborts transactions idle past the timeout, so a client that went
// away does not hold a pause drain forever.
func (s *transactions) reap(ctx context.Context) {
	t := time.NewTicker(min(s.idle/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			var stale []string
			for id, o := range s.open {
				if o.mu.TryLock() {
					if now.Sub(o.lastUsed) > s.idle {
						stale = append(stale, id)
					}
					o.mu.Unlock()
				}
			}
			s.mu.Unlock()
			for _, id := range stale {
				s.log.Warn("aborting idle transaction", "tx", id, "idle_timeout", s.idle)
				s.obs.count("expired")
				s.finish(id)
			}
		}
	}
}

// abortAll forgets every open transaction (at shutdown, after the drain).
func (s *transactions) abortAll() int {
	s.mu.Lock()
	ids := make([]string, 0, len(s.open))
	for id := range s.open {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.finish(id)
	}
	return len(ids)
}

func withReason(c codes.Code, reason, msg string) error {
	st := status.New(c, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// toStatus maps transaction errors to gRPC codes a client can act on.
func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, txn.ErrUnknownStatus):
		return withReason(codes.Unknown, ReasonUnknownStatus, err.Error())
	case errors.Is(err, txn.ErrConflict):
		return withReason(codes.Aborted, ReasonConflict, err.Error())
	case errors.Is(err, txn.ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, storage.ErrTableNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, txn.ErrNotTransactional), errors.Is(err, txn.ErrFinished):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, fmt.Sprintf("transaction failed: %v", err))
}
