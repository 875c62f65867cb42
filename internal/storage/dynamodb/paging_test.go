package dynamodb_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/dynamodb"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestPaging: reads longer than one DynamoDB page (1 MB) follow
// LastEvaluatedKey, in both orders and within bounds.
func TestPaging(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.DynamoDSN(t)
	st, err := dynamodb.Open(ctx, "paging", dsn)
	if err != nil {
		t.Fatal(err)
	}
	m := &storage.TableMetadata{Namespace: "ns", Table: "big",
		Columns:      []storage.Column{{Name: "p", Type: storage.Int}, {Name: "c", Type: storage.Int}, {Name: "v", Type: storage.Blob}},
		PartitionKey: []string{"p"}, ClusteringKey: []storage.ClusteringKey{{Name: "c"}}}
	if err := st.CreateTable(ctx, m); err != nil {
		t.Fatal(err)
	}
	const records = 40 // of 100 KB: 4 MB, pages of at most 1 MB
	blob := bytes.Repeat([]byte{7}, 100<<10)
	for c := range records {
		if err := st.Put(ctx, storage.Put{Namespace: "ns", Table: "big", Values: storage.Record{"p": 1, "c": c, "v": blob}}); err != nil {
			t.Fatal(err)
		}
	}
	// The server does page: one Query does not return the partition.
	cfg, _ := dynamodb.ParseDSN(dsn)
	out, err := testenv.DynamoClient(t).Query(ctx, &ddb.QueryInput{TableName: aws.String(cfg.Prefix + "ns.big"),
		KeyConditionExpression:    aws.String("concatenatedPartitionKey = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": b([]byte{0x80, 0, 0, 1})}})
	if err != nil || len(out.LastEvaluatedKey) == 0 || len(out.Items) >= records {
		t.Fatalf("one Query of the partition: %d items, LastEvaluatedKey %v, %v; want a first page only", len(out.Items), out.LastEvaluatedKey, err)
	}
	cases := []struct {
		name       string
		scan       storage.Scan
		first, n   int
		descending bool
	}{
		{"all", storage.Scan{}, 0, records, false},
		{"all, reversed", storage.Scan{Ordering: []storage.ClusteringKey{{Name: "c", Order: storage.Desc}}}, records - 1, records, true},
		{"from 5 to 34", storage.Scan{Start: &storage.Bound{Key: storage.Key{"c": 5}, Inclusive: true}, End: &storage.Bound{Key: storage.Key{"c": 35}}}, 5, 30, false},
		{"from 34 down to 5", storage.Scan{Start: &storage.Bound{Key: storage.Key{"c": 5}, Inclusive: true}, End: &storage.Bound{Key: storage.Key{"c": 35}},
			Ordering: []storage.ClusteringKey{{Name: "c", Order: storage.Desc}}}, 34, 30, true},
		{"limit 25", storage.Scan{Limit: 25}, 0, 25, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc := c.scan
			sc.Namespace, sc.Table, sc.Partition, sc.Projection = "ns", "big", storage.Key{"p": 1}, []string{"c"}
			recs, err := st.Scan(ctx, sc)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != c.n {
				t.Fatalf("%d records, want %d", len(recs), c.n)
			}
			for i, r := range recs {
				want := c.first + i
				if c.descending {
					want = c.first - i
				}
				if r["c"] != int32(want) {
					t.Fatalf("record %d has c=%v, want %d", i, r["c"], want)
				}
			}
		})
	}
	all, err := st.ScanAll(ctx, storage.ScanAll{Namespace: "ns", Table: "big", Projection: []string{"c"}})
	if err != nil || len(all) != records {
		t.Fatalf("ScanAll: %d records, %v; want %d", len(all), err, records)
	}
}
