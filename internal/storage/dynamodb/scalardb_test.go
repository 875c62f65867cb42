package dynamodb_test

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/dynamodb"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// The bytes of ScalarDB's DynamoDB layout, written out by hand from its
// encoders (v3.19.0 core/src/main/java/com/scalar/db/storage/dynamo/bytes:
// TEXT is UTF-8 then 0x00; INT and BIGINT big-endian with the sign bit
// flipped; DESC masks every byte with 0xFF) and value binders
// (ValueBinder.java, TimeRelatedColumnEncodingUtils: DATE epoch day,
// TIMESTAMPTZ "<epochSecond><millisecond>" with the millisecond
// complemented before 1970).
var (
	// p = "ab" (TEXT), q = 1 (INT)
	scalarPK = []byte{'a', 'b', 0x00, 0x80, 0, 0, 1}
	// c1 = 7 (BIGINT DESC), c2 = "a" (TEXT ASC)
	scalarCK7 = []byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf8, 'a', 0x00}
	// c1 = 5, c2 = "x"
	scalarCK5 = []byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa, 'x', 0x00}
	// c1 = 3, c2 = "m": what Stillpoint must write for its own record
	scalarCK3 = []byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc, 'm', 0x00}
)

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
func b(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }
func l(vs ...string) types.AttributeValue {
	out := &types.AttributeValueMemberL{}
	for _, v := range vs {
		out.Value = append(out.Value, s(v))
	}
	return out
}

// TestScalarDBLayout: a table that ScalarDB's DynamoAdmin and handlers
// would have written (built here by raw requests) reads as ScalarDB shows
// it: schema, records and clustering order; and what Stillpoint writes is
// the item ScalarDB would write.
// scalarDBTable writes, by raw requests, the table shop.orders and its
// metadata as ScalarDB's DynamoAdmin and handlers would have, with two
// records, under dsn's prefix, and returns the client and the table's name.
func scalarDBTable(t *testing.T, dsn string) (*ddb.Client, string) {
	ctx := context.Background()
	cfg, err := dynamodb.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.DynamoClient(t)
	prefix := cfg.Prefix
	table := prefix + "shop.orders"
	metadata := prefix + "scalardb.metadata"
	create := func(in *ddb.CreateTableInput) {
		t.Helper()
		in.ProvisionedThroughput = &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(10), WriteCapacityUnits: aws.Int64(10)}
		if _, err := c.CreateTable(ctx, in); err != nil {
			t.Fatal(err)
		}
		testenv.Await(t, "table "+*in.TableName+" ACTIVE", func() bool {
			out, err := c.DescribeTable(ctx, &ddb.DescribeTableInput{TableName: in.TableName})
			return err == nil && out.Table.TableStatus == types.TableStatusActive
		})
	}
	put := func(tbl string, it map[string]types.AttributeValue) {
		t.Helper()
		if _, err := c.PutItem(ctx, &ddb.PutItemInput{TableName: aws.String(tbl), Item: it}); err != nil {
			t.Fatal(err)
		}
	}
	// DynamoAdmin.createTable: hash and range keys of bytes, a GSI per index.
	create(&ddb.CreateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("concatenatedPartitionKey"), AttributeType: types.ScalarAttributeTypeB},
			{AttributeName: aws.String("concatenatedClusteringKey"), AttributeType: types.ScalarAttributeTypeB},
			{AttributeName: aws.String("name"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("concatenatedPartitionKey"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("concatenatedClusteringKey"), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName:             aws.String(table + ".global_index.name"),
			KeySchema:             []types.KeySchemaElement{{AttributeName: aws.String("name"), KeyType: types.KeyTypeHash}},
			Projection:            &types.Projection{ProjectionType: types.ProjectionTypeAll},
			ProvisionedThroughput: &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(10), WriteCapacityUnits: aws.Int64(10)},
		}},
	})
	create(&ddb.CreateTableInput{
		TableName:            aws.String(metadata),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("table"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("table"), KeyType: types.KeyTypeHash}},
	})
	// DynamoAdmin.upsertTableMetadata: no column order is kept.
	put(metadata, map[string]types.AttributeValue{
		"table": s(prefix + "shop.orders"),
		"columns": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"p": s("text"), "q": s("int"), "c1": s("bigint"), "c2": s("text"), "name": s("text"),
			"price": s("double"), "at": s("timestamptz"), "day": s("date"), "raw": s("blob"), "paid": s("boolean"), "note": s("text"),
		}},
		"partitionKey":     l("p", "q"),
		"clusteringKey":    l("c1", "c2"),
		"clusteringOrders": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"c1": s("DESC"), "c2": s("ASC")}},
		"secondaryIndex":   &types.AttributeValueMemberSS{Value: []string{"name"}},
	})
	// PutStatementHandler: the key columns are attributes too; NULL is {NULL: true}.
	put(table, map[string]types.AttributeValue{
		"concatenatedPartitionKey": b(scalarPK), "concatenatedClusteringKey": b(scalarCK5),
		"p": s("ab"), "q": n("1"), "c1": n("5"), "c2": s("x"), "name": s("five"), "price": n("1.5"),
		"at": n("1704164645678"), "day": n("19724"), "raw": b([]byte{1, 2}), "paid": &types.AttributeValueMemberBOOL{Value: true},
		"note": &types.AttributeValueMemberNULL{Value: true},
	})
	put(table, map[string]types.AttributeValue{
		"concatenatedPartitionKey": b(scalarPK), "concatenatedClusteringKey": b(scalarCK7),
		"p": s("ab"), "q": n("1"), "c1": n("7"), "c2": s("a"), "name": s("seven"), "at": n("-1998"),
	})
	return c, table
}

func TestScalarDBLayout(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.DynamoDSN(t)
	c, table := scalarDBTable(t, dsn)

	st, err := dynamodb.Open(ctx, "scalardb", dsn)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.TableMetadata(ctx, "shop", "orders")
	if err != nil {
		t.Fatal(err)
	}
	want := &storage.TableMetadata{Namespace: "shop", Table: "orders",
		Columns: []storage.Column{
			{Name: "p", Type: storage.Text}, {Name: "q", Type: storage.Int}, {Name: "c1", Type: storage.BigInt}, {Name: "c2", Type: storage.Text},
			// The rest by name: ScalarDB's columns map has no order.
			{Name: "at", Type: storage.TimestampTZ}, {Name: "day", Type: storage.Date}, {Name: "name", Type: storage.Text},
			{Name: "note", Type: storage.Text}, {Name: "paid", Type: storage.Boolean}, {Name: "price", Type: storage.Double}, {Name: "raw", Type: storage.Blob},
		},
		PartitionKey:  []string{"p", "q"},
		ClusteringKey: []storage.ClusteringKey{{Name: "c1", Order: storage.Desc}, {Name: "c2"}},
		Indexes:       []string{"name"},
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("metadata:\n got %+v\nwant %+v", m, want)
	}
	if nss, err := st.Namespaces(ctx); err != nil || !reflect.DeepEqual(nss, []string{"shop"}) {
		t.Errorf("Namespaces() = %v, %v; want [shop]", nss, err)
	}
	five := storage.Record{"p": "ab", "q": int32(1), "c1": int64(5), "c2": "x", "name": "five", "price": 1.5,
		"at": time.Date(2024, 1, 2, 3, 4, 5, 678e6, time.UTC), "day": time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC),
		"raw": []byte{1, 2}, "paid": true, "note": nil}
	seven := storage.Record{"p": "ab", "q": int32(1), "c1": int64(7), "c2": "a", "name": "seven", "price": nil,
		"at": time.Date(1969, 12, 31, 23, 59, 59, 1e6, time.UTC), "day": nil, "raw": nil, "paid": nil, "note": nil}
	got, err := st.Get(ctx, storage.Get{Namespace: "shop", Table: "orders", Key: storage.Key{"p": "ab", "q": 1, "c1": 5, "c2": "x"}})
	if err != nil || !reflect.DeepEqual(got, five) {
		t.Errorf("Get c1=5:\n got %v (%v)\nwant %v", got, err, five)
	}
	// c1 is DESC: 7 comes first.
	recs, err := st.Scan(ctx, storage.Scan{Namespace: "shop", Table: "orders", Partition: storage.Key{"p": "ab", "q": 1}})
	if err != nil || !reflect.DeepEqual(recs, []storage.Record{seven, five}) {
		t.Errorf("Scan:\n got %v (%v)\nwant %v", recs, err, []storage.Record{seven, five})
	}

	// The other way round: Stillpoint's write is ScalarDB's item.
	err = st.Put(ctx, storage.Put{Namespace: "shop", Table: "orders", Values: storage.Record{"p": "ab", "q": 1, "c1": 3, "c2": "m", "name": "three", "day": time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"concatenatedPartitionKey": b(scalarPK), "concatenatedClusteringKey": b(scalarCK3)}})
	if err != nil {
		t.Fatal(err)
	}
	wantItem := map[string]types.AttributeValue{
		"concatenatedPartitionKey": b(scalarPK), "concatenatedClusteringKey": b(scalarCK3),
		"p": s("ab"), "q": n("1"), "c1": n("3"), "c2": s("m"), "name": s("three"), "day": n("-1"),
	}
	if len(out.Item) != len(wantItem) {
		t.Fatalf("item written by Stillpoint has attributes %v, want %v", keys(out.Item), keys(wantItem))
	}
	for k, w := range wantItem {
		if !sameAttr(out.Item[k], w) {
			t.Errorf("attribute %s = %#v, want %#v", k, out.Item[k], w)
		}
	}
}

func keys(it map[string]types.AttributeValue) []string {
	var out []string
	for k := range it {
		out = append(out, k)
	}
	return out
}

func sameAttr(a, b types.AttributeValue) bool {
	switch x := a.(type) {
	case *types.AttributeValueMemberB:
		y, ok := b.(*types.AttributeValueMemberB)
		return ok && bytes.Equal(x.Value, y.Value)
	case *types.AttributeValueMemberS:
		y, ok := b.(*types.AttributeValueMemberS)
		return ok && x.Value == y.Value
	case *types.AttributeValueMemberN:
		y, ok := b.(*types.AttributeValueMemberN)
		return ok && x.Value == y.Value
	case *types.AttributeValueMemberBOOL:
		y, ok := b.(*types.AttributeValueMemberBOOL)
		return ok && x.Value == y.Value
	case *types.AttributeValueMemberNULL:
		y, ok := b.(*types.AttributeValueMemberNULL)
		return ok && x.Value == y.Value
	}
	return false
}

// A DynamoDB store is cut by reading it whole under the fence
// (docs/no-snapshot-cut.md), so it cannot hold the fence itself: a backup
// whose coordinator is in DynamoDB is refused, saying what to do.
func TestCoordinatorFenceRefused(t *testing.T) {
	st, err := dynamodb.Open(context.Background(), "dy", testenv.DynamoDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	e, err := cut.EngineOf(st)
	if err != nil {
		t.Fatalf("cut.EngineOf(a DynamoDB store): %v", err)
	}
	if _, err := e.AcquireFence(context.Background(), time.Second); err == nil || !strings.Contains(err.Error(), "pause mode") {
		t.Fatalf("the fence on a DynamoDB store: %v, want a refusal naming pause mode", err)
	}
}

// TestScalarDBTableBackedUpAndRestored: a table ScalarDB wrote is backed
// up (read whole under the fence) and restored under another prefix item
// for item, every attribute's bytes as they were, so ScalarDB reads the
// restored table as it read the original.
func TestScalarDBTableBackedUpAndRestored(t *testing.T) {
	ctx := context.Background()
	config := func(dsn string) *config.Config {
		return &config.Config{DataDir: t.TempDir(), Source: "test", Coordinator: "pg",
			Stores:     map[string]config.Store{"pg": {Engine: "postgres", DSN: testenv.PostgresDSN(t)}, "dy": {Engine: "dynamodb", DSN: dsn}},
			Namespaces: map[string]string{"shop": "dy"}}
	}
	srcDSN, dstDSN := testenv.DynamoDSN(t), testenv.DynamoDSN(t)
	c, table := scalarDBTable(t, srcDSN)
	src := multistorage.New(config(srcDSN))
	defer src.Close()
	// The fence is taken on the coordinator's table.
	if err := src.CreateNamespace(ctx, schema.CoordinatorNamespace); err != nil {
		t.Fatal(err)
	}
	if err := src.CreateTable(ctx, schema.Coordinator()); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	man, err := backup.Create(ctx, src, r, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	dst := multistorage.New(config(dstDSN))
	defer dst.Close()
	if _, err := restore.Run(ctx, r, man, restore.Stores(dst), restore.Options{}); err != nil {
		t.Fatal(err)
	}
	dstCfg, err := dynamodb.ParseDSN(dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	items := func(table string) map[string]map[string]types.AttributeValue {
		out, err := c.Scan(ctx, &ddb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		byKey := map[string]map[string]types.AttributeValue{}
		for _, it := range out.Items {
			ck := it["concatenatedClusteringKey"].(*types.AttributeValueMemberB).Value
			byKey[string(ck)] = it
		}
		return byKey
	}
	want, got := items(table), items(dstCfg.Prefix+"shop.orders")
	if len(want) != 2 || len(got) != len(want) {
		t.Fatalf("restored %d items, want the %d ScalarDB wrote", len(got), len(want))
	}
	// A column ScalarDB left out of an item and one it wrote as {NULL:
	// true} both read as NULL; a logical backup cannot tell them apart, and
	// the restore writes {NULL: true}.
	null := &types.AttributeValueMemberNULL{Value: true}
	for k, w := range want {
		g := got[k]
		for _, a := range slices.Concat(keys(g), keys(w)) {
			gv, wv := g[a], w[a]
			if gv == nil {
				gv = null
			}
			if wv == nil {
				wv = null
			}
			if !sameAttr(gv, wv) {
				t.Errorf("restored item %x attribute %s = %#v, want %#v", k, a, gv, wv)
			}
		}
	}
}
