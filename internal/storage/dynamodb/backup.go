package dynamodb

import (
	"context"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// DynamoDB has no snapshot: a backup reads every table whole, in parallel
// segments, while the coordinator fence holds (cut.ScanStore,
// docs/no-snapshot-cut.md). A restore loads into empty tables with
// BatchWriteItem.

// ScanOptions are the DSN's scan_segments and spool_dir (cut.ScanTuned).
func (s *Store) ScanOptions() cut.ScanOptions { return s.scanOptions }

// ScanTables lists every table the metadata names, with its metadata.
func (s *Store) ScanTables(ctx context.Context) ([]*storage.TableMetadata, error) {
	names, err := s.logicalNames(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*storage.TableMetadata, 0, len(names))
	for _, n := range names {
		m, err := s.TableMetadata(ctx, n[0], n[1])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// ScanSegment reads one of total segments of a table (DynamoDB's parallel
// scan) with strongly consistent reads, page by page.
func (s *Store) ScanSegment(ctx context.Context, m *storage.TableMetadata, segment, total int, fn func(storage.Record) error) error {
	return s.scan(ctx, m, &dynamodb.ScanInput{TableName: aws.String(s.tableName(m.Namespace, m.Table)),
		ConsistentRead: aws.Bool(true), Segment: aws.Int32(int32(segment)), TotalSegments: aws.Int32(int32(total))}, nil, fn)
}

// EstimateRecords is DynamoDB's ItemCount of the table (cut.ScanSizer),
// which AWS refreshes about every six hours.
func (s *Store) EstimateRecords(ctx context.Context, m *storage.TableMetadata) (int64, error) {
	out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.tableName(m.Namespace, m.Table))})
	if err != nil {
		return 0, s.wrap(err, "describe "+m.FullName())
	}
	return aws.ToInt64(out.Table.ItemCount), nil
}

// HasTable tells whether the table exists, whatever the metadata says.
func (s *Store) HasTable(ctx context.Context, namespace, table string) (bool, error) {
	return s.exists(ctx, s.tableName(namespace, table))
}

// batchSize is BatchWriteItem's limit.
const batchSize = 25

// Load writes records into an empty table, 25 to a BatchWriteItem, each
// batch's unprocessed items sent again (with a growing pause: they are
// what the table's capacity refused).
func (s *Store) Load(ctx context.Context, m *storage.TableMetadata, next func() (storage.Record, error)) (int64, error) {
	table := s.tableName(m.Namespace, m.Table)
	var n int64
	batch := make([]types.WriteRequest, 0, batchSize)
	flush := func() error {
		pending := map[string][]types.WriteRequest{table: batch}
		for pause := 10 * time.Millisecond; len(pending[table]) > 0; pause = min(2*pause, time.Second) {
			out, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return s.dataErr(err, m, "load")
			}
			if pending = out.UnprocessedItems; len(pending[table]) > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(pause):
				}
			}
		}
		batch = batch[:0]
		return nil
	}
	for {
		rec, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		o, err := s.prepare(ctx, storage.Put{Namespace: m.Namespace, Table: m.Table, Values: rec})
		if err != nil {
			return n, err
		}
		batch = append(batch, types.WriteRequest{PutRequest: &types.PutRequest{Item: fullItem(o, o.values)}})
		n++
		if len(batch) == batchSize {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return n, err
		}
	}
	return n, nil
}
