// Package client is the Go client of Stillpoint's transaction service.
package client

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/wire"
	pb "github.com/stillpoint/stillpoint/proto/stillpoint/v1"
)

// ErrPaused: the server is paused (for a backup) and takes no new
// transactions; try again shortly.
var ErrPaused = errors.New("server paused")

// Client talks to one server.
type Client struct {
	conn *grpc.ClientConn
	api  pb.TransactionClient
	addr string
}

// Dial connects to a server at addr (host:port) with the given options
// (credentials, token); it does not wait for the connection.
func Dial(addr string, opts ...grpc.DialOption) (*Client, error) {
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", addr, err)
	}
	return &Client{conn: conn, api: pb.NewTransactionClient(conn), addr: addr}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Addr is the server's address.
func (c *Client) Addr() string { return c.addr }

// Begin starts a transaction on the server.
func (c *Client) Begin(ctx context.Context, iso consensus.Isolation, idPrefix string) (*Transaction, error) {
	req := &pb.BeginRequest{IdPrefix: idPrefix}
	if iso == consensus.Serializable {
		req.Isolation = pb.Isolation_ISOLATION_SERIALIZABLE
	}
	resp, err := c.api.Begin(ctx, req)
	if err != nil {
		return nil, c.convert(err)
	}
	return &Transaction{c: c, id: resp.GetTransactionId()}, nil
}

// convert maps a status to the errors txn uses, so callers handle local
// and remote transactions alike.
func (c *Client) convert(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	reason := ""
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = info.GetReason()
		}
	}
	wrapped := fmt.Errorf("server %s: %s", c.addr, st.Message())
	switch {
	case reason == "SERVER_PAUSED":
		return fmt.Errorf("%w: %w", ErrPaused, wrapped)
	case reason == "UNKNOWN_TRANSACTION_STATUS":
		return fmt.Errorf("%w: %w", txn.ErrUnknownStatus, wrapped)
	case st.Code() == codes.Aborted:
		return fmt.Errorf("%w: %w", txn.ErrConflict, wrapped)
	case st.Code() == codes.InvalidArgument:
		return fmt.Errorf("%w: %w", txn.ErrInvalidArgument, wrapped)
	}
	return fmt.Errorf("%s: %w", wrapped, err)
}

// Transaction is a transaction open on a server.
type Transaction struct {
	c  *Client
	id string
}

// ID is the transaction's id.
func (t *Transaction) ID() string { return t.id }

// Get reads a record (nil: none).
func (t *Transaction) Get(ctx context.Context, g storage.Get) (storage.Record, error) {
	key, err := wire.Values(g.Key)
	if err != nil {
		return nil, err
	}
	resp, err := t.c.api.Get(ctx, &pb.GetRequest{TransactionId: t.id, Namespace: g.Namespace, Table: g.Table, Key: key, Projection: g.Projection})
	if err != nil {
		return nil, t.c.convert(err)
	}
	if resp.Record == nil {
		return nil, nil
	}
	return storage.Record(wire.Map(resp.Record.GetColumns())), nil
}

// Scan reads a partition or a range of it.
func (t *Transaction) Scan(ctx context.Context, s storage.Scan) ([]storage.Record, error) {
	part, err := wire.Values(s.Partition)
	if err != nil {
		return nil, err
	}
	req := &pb.ScanRequest{TransactionId: t.id, Namespace: s.Namespace, Table: s.Table, Partition: part, Limit: int32(s.Limit), Projection: s.Projection}
	for _, b := range []struct {
		in  *storage.Bound
		out **pb.Bound
	}{{s.Start, &req.Start}, {s.End, &req.End}} {
		if b.in != nil {
			k, err := wire.Values(b.in.Key)
			if err != nil {
				return nil, err
			}
			*b.out = &pb.Bound{Key: k, Inclusive: b.in.Inclusive}
		}
	}
	for _, o := range s.Ordering {
		req.Ordering = append(req.Ordering, &pb.Ordering{Column: o.Name, Descending: o.Order == storage.Desc})
	}
	resp, err := t.c.api.Scan(ctx, req)
	if err != nil {
		return nil, t.c.convert(err)
	}
	out := make([]storage.Record, len(resp.GetRecords()))
	for i, r := range resp.GetRecords() {
		out[i] = storage.Record(wire.Map(r.GetColumns()))
	}
	return out, nil
}

// Put writes columns of a record (the full key included).
func (t *Transaction) Put(ctx context.Context, p storage.Put) error {
	values, err := wire.Values(p.Values)
	if err != nil {
		return err
	}
	_, err = t.c.api.Put(ctx, &pb.PutRequest{TransactionId: t.id, Namespace: p.Namespace, Table: p.Table, Values: values})
	return t.convertNil(err)
}

// Delete deletes a record.
func (t *Transaction) Delete(ctx context.Context, d storage.Delete) error {
	key, err := wire.Values(d.Key)
	if err != nil {
		return err
	}
	_, err = t.c.api.Delete(ctx, &pb.DeleteRequest{TransactionId: t.id, Namespace: d.Namespace, Table: d.Table, Key: key})
	return t.convertNil(err)
}

// Commit commits. An error wraps txn.ErrConflict (retry) or
// txn.ErrUnknownStatus (do not assume either outcome).
func (t *Transaction) Commit(ctx context.Context) error {
	_, err := t.c.api.Commit(ctx, &pb.CommitRequest{TransactionId: t.id})
	if err != nil && !definite(err) {
		// The call itself failed (connection lost, deadline): the server
		// may have committed.
		return fmt.Errorf("%w: %w", txn.ErrUnknownStatus, t.c.convert(err))
	}
	return t.convertNil(err)
}

// definite reports whether a failed Commit surely did not commit, or says
// itself what happened.
func definite(err error) bool {
	switch status.Code(err) {
	case codes.Aborted, codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.Unauthenticated, codes.PermissionDenied:
		return true
	}
	return isReasoned(err)
}

// Abort abandons the transaction.
func (t *Transaction) Abort(ctx context.Context) error {
	_, err := t.c.api.Abort(ctx, &pb.AbortRequest{TransactionId: t.id})
	return t.convertNil(err)
}

func (t *Transaction) convertNil(err error) error {
	if err == nil {
		return nil
	}
	return t.c.convert(err)
}

func isReasoned(err error) bool {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.ErrorInfo); ok {
			return true
		}
	}
	return false
}
