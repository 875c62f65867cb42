package dynamodb_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/dynamodb"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// stalledScan reads the first records of each segment, then waits until
// the cut gives up: a read slower than the max hold.
type stalledScan struct {
	*dynamodb.Store
	after int
}

func (s stalledScan) ScanSegment(ctx context.Context, m *storage.TableMetadata, segment, total int, fn func(storage.Record) error) error {
	n := 0
	return s.Store.ScanSegment(ctx, m, segment, total, func(r storage.Record) error {
		if n == s.after {
			<-ctx.Done()
			return ctx.Err()
		}
		n++
		return fn(r)
	})
}

// awsCount counts a table's records as AWS's ItemCount does once
// refreshed: dynalite never updates it from 0.
type awsCount struct{ stalledScan }

func (s awsCount) EstimateRecords(ctx context.Context, m *storage.TableMetadata) (int64, error) {
	recs, err := s.ScanAll(ctx, storage.ScanAll{Namespace: m.Namespace, Table: m.Table})
	return int64(len(recs)), err
}

// TestSlowReadSaysTheMaxHoldItNeeds: a read of DynamoDB that outlasts the
// max hold fails saying how many records it read, how fast, and, from the
// table's item count when there is one, the --fence-max-hold it needs
// (docs/dynamodb.md).
func TestSlowReadSaysTheMaxHoldItNeeds(t *testing.T) {
	ctx := context.Background()
	st, _, _, dyDSN := newBank(t, bank.Setup{Namespaces: []string{"bank_0", "bank_1"}, Accounts: 100, InitialBalance: 100})
	pg, err := st.Store(ctx, "pg")
	if err != nil {
		t.Fatal(err)
	}
	pgEngine, err := cut.EngineOf(pg)
	if err != nil {
		t.Fatal(err)
	}
	dy, err := dynamodb.Open(ctx, "dy", dyDSN)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		store cut.ScanStore
		want  []string
	}{
		{"AWS's item count", awsCount{stalledScan{dy, 10}}, []string{"store dy: it read 10 records in", "records/s) of about 100 (the store's own count)", "set --fence-max-hold to"}},
		{"dynalite's item count of 0", stalledScan{dy, 10}, []string{"store dy: it read 10 records in", "divided by that rate"}},
		{"nothing read", stalledScan{dy, 0}, []string{"store dy: it read no record in"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			engines := map[string]cut.Engine{"pg": pgEngine, "dy": cut.ScanEngine(c.store, cut.ScanOptions{Segments: 1})}
			// Long enough, with the cores busy, to read the first records
			// and the count beside them.
			got, err := cut.Take(ctx, "pg", engines, 5*time.Second, time.Second)
			var slow *cut.SlowSnapshotError
			if !errors.As(err, &slow) {
				t.Fatalf("Take: %v, %v; want a *SlowSnapshotError", got, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to say %q", err, w)
				}
			}
		})
	}
}
