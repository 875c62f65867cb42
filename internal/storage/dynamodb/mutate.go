package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// mutateAttempts bounds how often a Mutate of several records starts over
// after another writer changed one of them between its read and its write.
const mutateAttempts = 8

// Mutate applies the mutations all or none. One mutation is one
// conditional write. Several are checked in order against consistent
// reads of their records (so a failed condition writes nothing), then each
// record's final image is written guarded by "unchanged since read": in
// one TransactWriteItems where the server has it, else record by record,
// undoing the records already written when a guard fails
// (docs/dynamodb.md says what that fallback promises).
func (s *Store) Mutate(ctx context.Context, ms []storage.Mutation) error {
	ops := make([]*op, 0, len(ms))
	for _, mu := range ms {
		o, err := s.prepare(ctx, mu)
		if err != nil {
			return err
		}
		ops = append(ops, o)
	}
	switch len(ops) {
	case 0:
		return nil
	case 1:
		return s.write(ctx, ops[0])
	}
	for range mutateAttempts {
		err := s.mutateOnce(ctx, ops)
		if !errors.Is(err, errChanged) {
			return err
		}
	}
	return fmt.Errorf("store %s: a record of the mutation kept changing under it (%d attempts): %w", s.name, mutateAttempts, storage.ErrRetriable)
}

// errChanged: a guarded write found its record changed since it was read.
var errChanged = errors.New("record changed since read")

// image is one record of a Mutate: as read, and as the mutations leave it.
type image struct {
	o      *op // its first mutation: table and key
	before item
	after  storage.Record // nil: absent
}

func (s *Store) mutateOnce(ctx context.Context, ops []*op) error {
	images := map[string]*image{}
	var order []*image
	for _, o := range ops {
		if images[o.id] != nil {
			continue
		}
		out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.tableName(o.m.Namespace, o.m.Table)), Key: o.key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return s.dataErr(err, o.m, "read from")
		}
		im := &image{o: o, before: out.Item}
		if len(out.Item) > 0 {
			if im.after, err = s.record(o.m, out.Item, nil); err != nil {
				return err
			}
		}
		images[o.id] = im
		order = append(order, im)
	}
	for _, o := range ops {
		im := images[o.id]
		if !holds(o.cond, im.after) {
			return &storage.NoMutationError{Table: o.m.FullName(), Condition: o.cond.Kind}
		}
		switch {
		case o.delete:
			im.after = nil
		case im.after == nil:
			im.after = maps.Clone(o.values)
		default:
			im.after = maps.Clone(im.after)
			maps.Copy(im.after, o.values)
		}
	}
	if s.beforeWrite != nil {
		s.beforeWrite()
	}
	if !s.noTransactions.Load() {
		err := s.transact(ctx, order)
		if !isUnknownOperation(err) {
			return err
		}
		s.noTransactions.Store(true)
	}
	return s.oneByOne(ctx, order)
}

// holds evaluates a condition on a record (nil: absent) as the
// ConditionExpressions of write do.
func holds(c storage.Condition, r storage.Record) bool {
	switch c.Kind {
	case storage.Unconditional:
		return true
	case storage.PutIfNotExists:
		return r == nil
	}
	if r == nil {
		return false
	}
	for _, x := range c.Exprs {
		v := r[x.Column]
		ok := false
		switch x.Op {
		case storage.IsNull:
			ok = v == nil
		case storage.IsNotNull:
			ok = v != nil
		default:
			if v == nil {
				return false
			}
			d := storage.Compare(v, x.Value)
			ok = map[storage.Op]bool{storage.EQ: d == 0, storage.NE: d != 0, storage.GT: d > 0, storage.GTE: d >= 0, storage.LT: d < 0, storage.LTE: d <= 0}[x.Op]
		}
		if !ok {
			return false
		}
	}
	return true
}

// guard is the ConditionExpression "the item is as it was read": every
// attribute it had is equal, every column it lacked is still absent.
func guard(e *exprs, m *storage.TableMetadata, before item) string {
	if len(before) == 0 {
		return "attribute_not_exists(" + e.name(partitionAttr) + ")"
	}
	var parts []string
	for _, a := range slices.Sorted(maps.Keys(before)) {
		if _, null := before[a].(*types.AttributeValueMemberNULL); null {
			parts = append(parts, e.null(a))
			continue
		}
		parts = append(parts, e.name(a)+" = "+e.value(before[a]))
	}
	for _, c := range m.Columns {
		if _, ok := before[c.Name]; !ok {
			parts = append(parts, "attribute_not_exists("+e.name(c.Name)+")")
		}
	}
	return strings.Join(parts, " AND ")
}

// fullItem is the item of a record: its key and every column.
func fullItem(o *op, r storage.Record) item {
	it := maps.Clone(o.key)
	for _, c := range o.m.Columns {
		if v, ok := r[c.Name]; ok {
			it[c.Name] = attrValue(c.Type, v)
		}
	}
	return it
}

// replace writes an item (nil: deletes the record) if the record is still
// as expected.
func (s *Store) replace(ctx context.Context, o *op, expected, it item) error {
	e := newExprs()
	c, n, v := e.apply(guard(e, o.m, expected))
	table := aws.String(s.tableName(o.m.Namespace, o.m.Table))
	var err error
	if it == nil {
		_, err = s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: table, Key: o.key, ConditionExpression: c, ExpressionAttributeNames: n, ExpressionAttributeValues: v})
	} else {
		_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: it, ConditionExpression: c, ExpressionAttributeNames: n, ExpressionAttributeValues: v})
	}
	if isConditionFailed(err) {
		return errChanged
	}
	if err != nil {
		return s.dataErr(err, o.m, "write to")
	}
	return nil
}

// written is the item a record's image is written as; nil when absent.
func (im *image) written() item {
	if im.after == nil {
		return nil
	}
	return fullItem(im.o, im.after)
}

// oneByOne writes the images record by record. When a guard fails, the
// records already written are put back exactly as they were read (each
// guarded by the item written), and the Mutate starts over.
func (s *Store) oneByOne(ctx context.Context, images []*image) error {
	for i, im := range images {
		err := s.replace(ctx, im.o, im.before, im.written())
		if err == nil {
			continue
		}
		for _, done := range slices.Backward(images[:i]) {
			var before item
			if len(done.before) > 0 {
				before = done.before
			}
			if uerr := s.replace(ctx, done.o, done.written(), before); uerr != nil {
				return fmt.Errorf("store %s: a Mutate of several records failed half-way (%v) and could not undo its write to %s: %w", s.name, err, done.o.m.FullName(), uerr)
			}
		}
		return err
	}
	return nil
}

// transact writes the images in one TransactWriteItems (at most 100
// records, DynamoDB's limit).
func (s *Store) transact(ctx context.Context, images []*image) error {
	if len(images) > 100 {
		return fmt.Errorf("store %s: a Mutate writes %d records; DynamoDB's TransactWriteItems takes at most 100", s.name, len(images))
	}
	items := make([]types.TransactWriteItem, len(images))
	for i, im := range images {
		e := newExprs()
		c, n, v := e.apply(guard(e, im.o.m, im.before))
		table := aws.String(s.tableName(im.o.m.Namespace, im.o.m.Table))
		if it := im.written(); it == nil {
			items[i].Delete = &types.Delete{TableName: table, Key: im.o.key, ConditionExpression: c, ExpressionAttributeNames: n, ExpressionAttributeValues: v}
		} else {
			items[i].Put = &types.Put{TableName: table, Item: it, ConditionExpression: c, ExpressionAttributeNames: n, ExpressionAttributeValues: v}
		}
	}
	_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var cancelled *types.TransactionCanceledException
	if errors.As(err, &cancelled) {
		// A guard failed or another transaction held a record: read again.
		for _, r := range cancelled.CancellationReasons {
			if code := aws.ToString(r.Code); code == "ConditionalCheckFailed" || code == "TransactionConflict" {
				return errChanged
			}
		}
		return s.wrap(err, "write several records")
	}
	if err != nil && !isUnknownOperation(err) {
		return s.wrap(err, "write several records")
	}
	return err
}
