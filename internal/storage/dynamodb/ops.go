package dynamodb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/stillpoint/stillpoint/internal/storage"
)

type item = map[string]types.AttributeValue

// keyItem is the item key of a record: its concatenated partition and
// clustering keys (DynamoOperation.getKeyMap).
func (s *Store) keyItem(m *storage.TableMetadata, key storage.Key) (item, error) {
	parts := make([]keyPart, len(m.PartitionKey))
	for i, c := range m.PartitionKey {
		t, _ := m.ColumnType(c)
		parts[i] = keyPart{column: c, typ: t, value: key[c], rawBlob: i == len(m.PartitionKey)-1}
	}
	pk, err := encodeKey(parts)
	if err != nil {
		return nil, fmt.Errorf("store %s: %s: %w", s.name, m.FullName(), err)
	}
	if len(pk) == 0 {
		return nil, fmt.Errorf("store %s: %s: the BLOB partition key %q cannot be empty on DynamoDB (ScalarDB's layout stores a BLOB partition key as its bytes, and a key attribute cannot be empty): use a non-empty value", s.name, m.FullName(), m.PartitionKey[0])
	}
	it := item{partitionAttr: &types.AttributeValueMemberB{Value: pk}}
	if len(m.ClusteringKey) > 0 {
		ck, err := s.clusteringBytes(m, key, len(m.ClusteringKey))
		if err != nil {
			return nil, err
		}
		it[clusteringAttr] = &types.AttributeValueMemberB{Value: ck}
	}
	return it, nil
}

// clusteringBytes encodes the first n clustering columns of key.
func (s *Store) clusteringBytes(m *storage.TableMetadata, key storage.Key, n int) ([]byte, error) {
	parts := make([]keyPart, n)
	for i, c := range m.ClusteringKey[:n] {
		t, _ := m.ColumnType(c.Name)
		parts[i] = keyPart{column: c.Name, typ: t, value: key[c.Name], order: c.Order}
	}
	b, err := encodeKey(parts)
	if err != nil {
		return nil, fmt.Errorf("store %s: %s: %w", s.name, m.FullName(), err)
	}
	return b, nil
}

// record decodes an item's columns (all, or the projection).
func (s *Store) record(m *storage.TableMetadata, it item, projection []string) (storage.Record, error) {
	cols := projection
	if len(cols) == 0 {
		cols = make([]string, len(m.Columns))
		for i, c := range m.Columns {
			cols[i] = c.Name
		}
	}
	r := make(storage.Record, len(cols))
	for _, c := range cols {
		t, _ := m.ColumnType(c)
		v, err := columnValue(t, c, it[c])
		if err != nil {
			return nil, fmt.Errorf("store %s: %s: %w", s.name, m.FullName(), err)
		}
		r[c] = v
	}
	return r, nil
}

// dataErr maps a missing DynamoDB table to ErrTableNotFound (the table was
// dropped through another store) and forgets its cached metadata.
func (s *Store) dataErr(err error, m *storage.TableMetadata, what string) error {
	if isNotFound(err) {
		s.cache(m.Namespace, m.Table, nil)
		return s.notFound(m.Namespace, m.Table)
	}
	return s.wrap(err, what+" "+m.FullName())
}

func (s *Store) Get(ctx context.Context, g storage.Get) (storage.Record, error) {
	m, err := s.meta(ctx, g.Namespace, g.Table)
	if err != nil {
		return nil, err
	}
	key, err := storage.CheckGet(m, g)
	if err != nil {
		return nil, err
	}
	k, err := s.keyItem(m, key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.tableName(m.Namespace, m.Table)), Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, s.dataErr(err, m, "get from")
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return s.record(m, out.Item, g.Projection)
}

// keyRange is a scan's clustering range in bytes: lo inclusive, hi
// exclusive, nil unbounded.
type keyRange struct {
	lo, hi []byte
	empty  bool
}

func (r *keyRange) raise(b []byte) {
	if r.lo == nil || bytes.Compare(b, r.lo) > 0 {
		r.lo = b
	}
}

func (r *keyRange) lower(b []byte) {
	if r.hi == nil || bytes.Compare(b, r.hi) < 0 {
		r.hi = b
	}
}

// bound narrows r by a start (value lower bound) or end bound. Its
// columns but the last are equal, which bounds both sides; the last one
// bounds one side, in bytes the other one when it is DESC.
func (s *Store) bound(m *storage.TableMetadata, r *keyRange, b *storage.Bound, start bool) error {
	if b == nil {
		return nil
	}
	n := len(b.Key)
	if n > 1 {
		eq, err := s.clusteringBytes(m, b.Key, n-1)
		if err != nil {
			return err
		}
		r.raise(eq)
		if next := nextPrefix(eq); next != nil {
			r.lower(next)
		}
	}
	enc, err := s.clusteringBytes(m, b.Key, n)
	if err != nil {
		return err
	}
	if start != (m.ClusteringKey[n-1].Order == storage.Desc) {
		if b.Inclusive {
			r.raise(enc)
		} else if next := nextPrefix(enc); next != nil {
			r.raise(next)
		} else {
			r.empty = true
		}
		return nil
	}
	if !b.Inclusive {
		r.lower(enc)
	} else if next := nextPrefix(enc); next != nil {
		r.lower(next)
	}
	return nil
}

// direction tells how to read a scan's ordering: forward or backward in
// bytes, or sorted here when it mixes the table's order and its reverse.
func direction(m *storage.TableMetadata, ord []storage.ClusteringKey) (forward, sortHere bool) {
	full := storage.ScanOrdering(m, ord)
	if slices.Equal(full, m.ClusteringKey) {
		return true, false
	}
	for i, c := range m.ClusteringKey {
		if full[i].Name != c.Name || full[i].Order == c.Order {
			return true, true
		}
	}
	return false, false
}

func (s *Store) Scan(ctx context.Context, sc storage.Scan) ([]storage.Record, error) {
	m, err := s.meta(ctx, sc.Namespace, sc.Table)
	if err != nil {
		return nil, err
	}
	checked, err := storage.CheckScan(m, sc)
	if err != nil {
		return nil, err
	}
	part, start, end := checked.Partition, checked.Start, checked.End
	// The partition key alone: keyItem of a key without clustering columns.
	pm := *m
	pm.ClusteringKey = nil
	pk, err := s.keyItem(&pm, part)
	if err != nil {
		return nil, err
	}
	var r keyRange
	if err := s.bound(m, &r, start, true); err != nil {
		return nil, err
	}
	if err := s.bound(m, &r, end, false); err != nil {
		return nil, err
	}
	if r.empty || r.lo != nil && r.hi != nil && bytes.Compare(r.lo, r.hi) >= 0 {
		return []storage.Record{}, nil
	}
	forward, sortHere := direction(m, sc.Ordering)
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.tableName(m.Namespace, m.Table)),
		ConsistentRead:            aws.Bool(true),
		ScanIndexForward:          aws.Bool(forward),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": partitionAttr},
		ExpressionAttributeValues: item{":pk": pk[partitionAttr]},
	}
	// One side of the range is the key condition, the other ends the read
	// (Query returns the items in byte order).
	switch {
	case forward && r.lo != nil:
		in.KeyConditionExpression = aws.String("#pk = :pk AND #ck >= :b")
		in.ExpressionAttributeValues[":b"] = &types.AttributeValueMemberB{Value: r.lo}
	case !forward && r.hi != nil:
		in.KeyConditionExpression = aws.String("#pk = :pk AND #ck < :b")
		in.ExpressionAttributeValues[":b"] = &types.AttributeValueMemberB{Value: r.hi}
	}
	if sc.Limit > 0 && !sortHere {
		in.Limit = pageLimit(sc.Limit) // no page larger than what is wanted
	}
	if len(m.ClusteringKey) > 0 && len(in.ExpressionAttributeValues) > 1 {
		in.ExpressionAttributeNames["#ck"] = clusteringAttr
	}
	out := []storage.Record{}
	var items []item
	p := dynamodb.NewQueryPaginator(s.client, in)
pages:
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.dataErr(err, m, "scan")
		}
		for _, it := range page.Items {
			if ck, ok := it[clusteringAttr].(*types.AttributeValueMemberB); ok {
				if forward && r.hi != nil && bytes.Compare(ck.Value, r.hi) >= 0 || !forward && r.lo != nil && bytes.Compare(ck.Value, r.lo) < 0 {
					break pages
				}
			}
			items = append(items, it)
			if !sortHere && sc.Limit > 0 && len(items) == sc.Limit {
				break pages
			}
		}
	}
	recs := make([]storage.Record, 0, len(items))
	for _, it := range items {
		rec, err := s.record(m, it, nil)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	if sortHere {
		storage.SortRecords(recs, storage.ScanOrdering(m, sc.Ordering))
		if sc.Limit > 0 && len(recs) > sc.Limit {
			recs = recs[:sc.Limit]
		}
	}
	for _, rec := range recs {
		out = append(out, project(rec, sc.Projection))
	}
	return out, nil
}

// pageLimit caps a read's pages at a limit (DynamoDB's Limit is an int32).
func pageLimit(limit int) *int32 { return aws.Int32(int32(min(limit, 1<<30))) }

func project(r storage.Record, cols []string) storage.Record {
	if len(cols) == 0 {
		return r
	}
	out := make(storage.Record, len(cols))
	for _, c := range cols {
		out[c] = r[c]
	}
	return out
}

func (s *Store) ScanAll(ctx context.Context, sa storage.ScanAll) ([]storage.Record, error) {
	m, err := s.meta(ctx, sa.Namespace, sa.Table)
	if err != nil {
		return nil, err
	}
	if err := storage.CheckScanAll(m, sa); err != nil {
		return nil, err
	}
	out := []storage.Record{}
	in := &dynamodb.ScanInput{TableName: aws.String(s.tableName(m.Namespace, m.Table)), ConsistentRead: aws.Bool(true)}
	if sa.Limit > 0 {
		in.Limit = pageLimit(sa.Limit)
	}
	err = s.scan(ctx, m, in, sa.Projection, func(rec storage.Record) error {
		out = append(out, rec)
		if sa.Limit > 0 && len(out) == sa.Limit {
			return errEnough
		}
		return nil
	})
	if err != nil && err != errEnough {
		return nil, err
	}
	return out, nil
}

// errEnough stops a scan that has what it needs.
var errEnough = errors.New("enough records")

// scan runs a Scan page by page, each item as a record to fn.
func (s *Store) scan(ctx context.Context, m *storage.TableMetadata, in *dynamodb.ScanInput, projection []string, fn func(storage.Record) error) error {
	p := dynamodb.NewScanPaginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.dataErr(err, m, "scan")
		}
		for _, it := range page.Items {
			rec, err := s.record(m, it, projection)
			if err != nil {
				return err
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// exprs builds a ConditionExpression with its names and values.
type exprs struct {
	names  map[string]string
	values item
}

func newExprs() *exprs { return &exprs{names: map[string]string{}, values: item{}} }

func (e *exprs) name(attr string) string {
	for k, v := range e.names {
		if v == attr {
			return k
		}
	}
	k := "#n" + strconv.Itoa(len(e.names))
	e.names[k] = attr
	return k
}

func (e *exprs) value(av types.AttributeValue) string {
	k := ":v" + strconv.Itoa(len(e.values))
	e.values[k] = av
	return k
}

// null tests whether an attribute holds ScalarDB's NULL.
func (e *exprs) null(attr string) string {
	return "attribute_type(" + e.name(attr) + ", " + e.value(&types.AttributeValueMemberS{Value: string(types.ScalarAttributeType("NULL"))}) + ")"
}

var comparators = map[storage.Op]string{storage.EQ: "=", storage.NE: "<>", storage.GT: ">", storage.GTE: ">=", storage.LT: "<", storage.LTE: "<="}

// condition is the ConditionExpression of a contract condition; "" for
// none. As in SQL, a comparison with NULL does not hold.
func (e *exprs) condition(m *storage.TableMetadata, c storage.Condition) (string, error) {
	if c.Kind == storage.Unconditional {
		return "", nil
	}
	pk := e.name(partitionAttr)
	switch c.Kind {
	case storage.PutIfNotExists:
		return "attribute_not_exists(" + pk + ")", nil
	case storage.PutIfExists, storage.DeleteIfExists:
		return "attribute_exists(" + pk + ")", nil
	}
	xs, err := storage.NormalizeExprs(m, c.Exprs)
	if err != nil {
		return "", err
	}
	parts := []string{"attribute_exists(" + pk + ")"}
	for _, x := range xs {
		if err := checkNumber(m, x.Column, x.Value); err != nil {
			return "", err
		}
		t, _ := m.ColumnType(x.Column)
		col := e.name(x.Column)
		switch x.Op {
		case storage.IsNull:
			parts = append(parts, "(attribute_not_exists("+col+") OR "+e.null(x.Column)+")")
		case storage.IsNotNull:
			parts = append(parts, "(attribute_exists("+col+") AND NOT "+e.null(x.Column)+")")
		case storage.EQ:
			parts = append(parts, col+" = "+e.value(attrValue(t, x.Value)))
		case storage.NE:
			parts = append(parts, "(attribute_exists("+col+") AND NOT "+e.null(x.Column)+" AND "+col+" <> "+e.value(attrValue(t, x.Value))+")")
		default:
			if t == storage.Boolean {
				return "", fmt.Errorf("condition on %s column %q: DynamoDB cannot order BOOLEAN values (%v); use EQ or NE", m.FullName(), x.Column, x.Op)
			}
			parts = append(parts, col+" "+comparators[x.Op]+" "+e.value(attrValue(t, x.Value)))
		}
	}
	return strings.Join(parts, " AND "), nil
}

func (e *exprs) apply(cond string) (*string, map[string]string, item) {
	var c *string
	if cond != "" {
		c = aws.String(cond)
	}
	names, values := e.names, e.values
	if len(names) == 0 {
		names = nil
	}
	if len(values) == 0 {
		values = nil
	}
	return c, names, values
}

func (s *Store) Put(ctx context.Context, p storage.Put) error {
	return s.Mutate(ctx, []storage.Mutation{p})
}

func (s *Store) Delete(ctx context.Context, d storage.Delete) error {
	return s.Mutate(ctx, []storage.Mutation{d})
}

// op is a checked mutation: its table, item key and values.
type op struct {
	m      *storage.TableMetadata
	key    item
	id     string // table and key bytes: which mutations share an item
	values storage.Record
	delete bool
	cond   storage.Condition
}

func (s *Store) prepare(ctx context.Context, mu storage.Mutation) (*op, error) {
	if err := storage.CheckCondition(mu); err != nil {
		return nil, err
	}
	ns, tbl := storage.Target(mu)
	m, err := s.meta(ctx, ns, tbl)
	if err != nil {
		return nil, err
	}
	o := &op{m: m}
	var key storage.Key
	switch x := mu.(type) {
	case storage.Put:
		if o.values, err = storage.NormalizeRecord(m, x.Values); err != nil {
			return nil, err
		}
		for c, v := range o.values {
			if err := checkNumber(m, c, v); err != nil {
				return nil, err
			}
		}
		key = storage.Key(o.values)
		o.cond = x.Condition
	case storage.Delete:
		if key, err = storage.NormalizeKey(m, x.Key, m.KeyColumns(), "delete"); err != nil {
			return nil, err
		}
		o.delete, o.cond = true, x.Condition
	}
	if o.cond.Kind == storage.PutIf || o.cond.Kind == storage.DeleteIf {
		if o.cond.Exprs, err = storage.NormalizeExprs(m, o.cond.Exprs); err != nil {
			return nil, err
		}
	}
	if o.key, err = s.keyItem(m, key); err != nil {
		return nil, err
	}
	o.id = m.FullName() + "\x00" + string(o.key[partitionAttr].(*types.AttributeValueMemberB).Value)
	if ck, ok := o.key[clusteringAttr].(*types.AttributeValueMemberB); ok {
		o.id += "\x00" + string(ck.Value)
	}
	return o, nil
}

// write applies one mutation with its condition as a ConditionExpression,
// as ScalarDB's PutStatementHandler and DeleteStatementHandler do: a Put
// is an UpdateItem that sets the columns it names.
func (s *Store) write(ctx context.Context, o *op) error {
	e := newExprs()
	cond, err := e.condition(o.m, o.cond)
	if err != nil {
		return err
	}
	table := aws.String(s.tableName(o.m.Namespace, o.m.Table))
	if o.delete {
		c, n, v := e.apply(cond)
		_, err = s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: table, Key: o.key, ConditionExpression: c, ExpressionAttributeNames: n, ExpressionAttributeValues: v})
	} else {
		sets := make([]string, 0, len(o.values))
		for _, col := range slices.Sorted(maps.Keys(o.values)) {
			t, _ := o.m.ColumnType(col)
			sets = append(sets, e.name(col)+" = "+e.value(attrValue(t, o.values[col])))
		}
		c, n, v := e.apply(cond)
		_, err = s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: table, Key: o.key,
			UpdateExpression: aws.String("SET " + strings.Join(sets, ", ")), ConditionExpression: c, ExpressionAttributeNames: n, ExpressionAttributeValues: v})
	}
	if isConditionFailed(err) {
		return &storage.NoMutationError{Table: o.m.FullName(), Condition: o.cond.Kind}
	}
	if err != nil {
		return s.dataErr(err, o.m, "write to")
	}
	return nil
}
