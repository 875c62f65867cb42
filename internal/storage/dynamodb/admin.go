package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// The metadata table's attributes (DynamoAdmin.METADATA_ATTR_*), one item
// per table keyed by "namespace.table".
const (
	attrTable            = "table"
	attrColumns          = "columns"
	attrPartitionKey     = "partitionKey"
	attrClusteringKey    = "clusteringKey"
	attrClusteringOrders = "clusteringOrders"
	attrSecondaryIndex   = "secondaryIndex"
	// attrColumnOrder is Stillpoint's: the columns map of ScalarDB keeps no
	// order. ScalarDB ignores it (and drops it when it rewrites the item);
	// without it the keys come first, then the other columns by name.
	attrColumnOrder = "columnOrder"
)

// tableWait bounds how long DDL waits for a table to become ACTIVE or gone.
const tableWait = 5 * time.Minute

// checkNamespace refuses the layout's own schemas as user namespaces.
func (s *Store) checkNamespace(namespace string) error {
	return s.layout.CheckNamespace(s.name, namespace)
}

// CreateNamespace records nothing: as in ScalarDB's DynamoAdmin, a
// namespace is the prefix of its tables' names.
func (s *Store) CreateNamespace(_ context.Context, namespace string) error {
	return s.checkNamespace(namespace)
}

func (s *Store) DropNamespace(ctx context.Context, namespace string) error {
	tables, err := s.Tables(ctx, namespace)
	if err != nil {
		return err
	}
	if len(tables) > 0 {
		return fmt.Errorf("store %s: namespace %s still has tables %v; drop them first", s.name, namespace, tables)
	}
	return nil
}

// metadataItems lists every item of the metadata table; none when it
// does not exist.
func (s *Store) metadataItems(ctx context.Context) ([]map[string]types.AttributeValue, error) {
	var out []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(s.client, &dynamodb.ScanInput{TableName: aws.String(s.metadataTable()), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if isNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, s.wrap(err, "read "+s.metadataTable())
		}
		out = append(out, page.Items...)
	}
	return out, nil
}

// logicalNamespaces maps the metadata's full table names back to
// (namespace, table) as the layers above name them.
func (s *Store) logicalNames(ctx context.Context) ([][2]string, error) {
	items, err := s.metadataItems(ctx)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, it := range items {
		full, _ := it[attrTable].(*types.AttributeValueMemberS)
		if full == nil || !strings.HasPrefix(full.Value, s.prefix) {
			continue
		}
		ns, tbl, ok := strings.Cut(strings.TrimPrefix(full.Value, s.prefix), ".")
		if !ok {
			continue
		}
		switch {
		case ns == s.layout.CoordinatorNamespace:
			ns = storage.DefaultCoordinatorNamespace
		case ns == storage.DefaultCoordinatorNamespace:
			continue // another layout's coordinator
		}
		out = append(out, [2]string{ns, tbl})
	}
	return out, nil
}

// Namespaces lists the namespaces of the tables in the metadata, as
// DynamoAdmin.getNamespacesOfExistingTables does (without the metadata
// namespace, which the other engines do not list either).
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	names, err := s.logicalNames(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n[0]) {
			out = append(out, n[0])
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *Store) Tables(ctx context.Context, namespace string) ([]string, error) {
	names, err := s.logicalNames(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if n[0] == namespace {
			out = append(out, n[1])
		}
	}
	slices.Sort(out)
	return out, nil
}

// TableMetadata reads the table's metadata item (consistently).
func (s *Store) TableMetadata(ctx context.Context, namespace, table string) (*storage.TableMetadata, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.metadataTable()),
		Key:            map[string]types.AttributeValue{attrTable: &types.AttributeValueMemberS{Value: s.tableName(namespace, table)}},
		ConsistentRead: aws.Bool(true),
	})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.wrap(err, "read metadata of "+namespace+"."+table)
	}
	if len(out.Item) == 0 {
		s.cache(namespace, table, nil)
		return nil, nil
	}
	m, err := parseMetadata(out.Item)
	if err != nil {
		return nil, fmt.Errorf("store %s: metadata of %s.%s in %s: %w", s.name, namespace, table, s.metadataTable(), err)
	}
	m.Namespace, m.Table = namespace, table
	s.cache(namespace, table, m)
	return m, nil
}

func (s *Store) cache(namespace, table string, m *storage.TableMetadata) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m == nil {
		delete(s.metadata, namespace+"."+table)
	} else {
		s.metadata[namespace+"."+table] = m
	}
}

// meta returns a table's metadata, read once and kept.
func (s *Store) meta(ctx context.Context, namespace, table string) (*storage.TableMetadata, error) {
	s.mu.Lock()
	m := s.metadata[namespace+"."+table]
	s.mu.Unlock()
	if m != nil {
		return m, nil
	}
	m, err := s.TableMetadata(ctx, namespace, table)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, s.notFound(namespace, table)
	}
	return m, nil
}

var typeNames = map[storage.DataType]string{}

func init() {
	for _, t := range storage.AllTypes() {
		typeNames[t] = strings.ToLower(t.String())
	}
}

func strs(av types.AttributeValue) []string {
	var out []string
	switch x := av.(type) {
	case *types.AttributeValueMemberL:
		for _, e := range x.Value {
			if s, ok := e.(*types.AttributeValueMemberS); ok {
				out = append(out, s.Value)
			}
		}
	case *types.AttributeValueMemberSS:
		out = x.Value
	}
	return out
}

func strList(ss []string) *types.AttributeValueMemberL {
	l := &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
	for _, s := range ss {
		l.Value = append(l.Value, &types.AttributeValueMemberS{Value: s})
	}
	return l
}

// metadataItem is ScalarDB's item for a table (DynamoAdmin.upsertTableMetadata).
func (s *Store) metadataItem(m *storage.TableMetadata) map[string]types.AttributeValue {
	cols := map[string]types.AttributeValue{}
	order := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		cols[c.Name] = &types.AttributeValueMemberS{Value: typeNames[c.Type]}
		order[i] = c.Name
	}
	item := map[string]types.AttributeValue{
		attrTable:        &types.AttributeValueMemberS{Value: s.tableName(m.Namespace, m.Table)},
		attrColumns:      &types.AttributeValueMemberM{Value: cols},
		attrPartitionKey: strList(m.PartitionKey),
		attrColumnOrder:  strList(order),
	}
	if len(m.ClusteringKey) > 0 {
		names := make([]string, len(m.ClusteringKey))
		orders := map[string]types.AttributeValue{}
		for i, c := range m.ClusteringKey {
			names[i] = c.Name
			orders[c.Name] = &types.AttributeValueMemberS{Value: c.Order.String()}
		}
		item[attrClusteringKey] = strList(names)
		item[attrClusteringOrders] = &types.AttributeValueMemberM{Value: orders}
	}
	if len(m.Indexes) > 0 {
		item[attrSecondaryIndex] = &types.AttributeValueMemberSS{Value: slices.Clone(m.Indexes)}
	}
	return item
}

// parseMetadata reads ScalarDB's item. Its columns come keys first, in
// key order, as the other engines' metadata keeps them.
func parseMetadata(item map[string]types.AttributeValue) (*storage.TableMetadata, error) {
	colMap, ok := item[attrColumns].(*types.AttributeValueMemberM)
	if !ok {
		return nil, errors.New("no columns map")
	}
	m := &storage.TableMetadata{PartitionKey: strs(item[attrPartitionKey])}
	colTypes := map[string]storage.DataType{}
	for name, av := range colMap.Value {
		s, _ := av.(*types.AttributeValueMemberS)
		if s == nil {
			return nil, fmt.Errorf("column %q has no type name", name)
		}
		t, err := storage.ParseDataType(s.Value)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", name, err)
		}
		colTypes[name] = t
	}
	orders, _ := item[attrClusteringOrders].(*types.AttributeValueMemberM)
	for _, c := range strs(item[attrClusteringKey]) {
		ck := storage.ClusteringKey{Name: c}
		if orders != nil {
			if o, ok := orders.Value[c].(*types.AttributeValueMemberS); ok && o.Value == "DESC" {
				ck.Order = storage.Desc
			}
		}
		m.ClusteringKey = append(m.ClusteringKey, ck)
	}
	m.Indexes = strs(item[attrSecondaryIndex])
	slices.Sort(m.Indexes)
	order := strs(item[attrColumnOrder])
	if len(order) != len(colTypes) || slices.ContainsFunc(order, func(c string) bool { _, ok := colTypes[c]; return !ok }) {
		order = slices.Sorted(func(yield func(string) bool) {
			for c := range colTypes {
				if !yield(c) {
					return
				}
			}
		})
	}
	for _, k := range m.KeyColumns() {
		if _, ok := colTypes[k]; !ok {
			return nil, fmt.Errorf("key column %q is not in the columns map", k)
		}
		m.Columns = append(m.Columns, storage.Column{Name: k, Type: colTypes[k]})
	}
	for _, c := range order {
		if !m.IsKey(c) {
			m.Columns = append(m.Columns, storage.Column{Name: c, Type: colTypes[c]})
		}
	}
	return m, nil
}

// CreateTable creates the table as DynamoAdmin.createTable does (hash key
// concatenatedPartitionKey, range key concatenatedClusteringKey, a GSI per
// secondary index), then its metadata item. Tables are on-demand
// (PAY_PER_REQUEST) where ScalarDB provisions 10 units and registers auto
// scaling (docs/dynamodb.md).
func (s *Store) CreateTable(ctx context.Context, m *storage.TableMetadata) error {
	return s.createTable(ctx, m, tableSpec{Billing: string(types.BillingModePayPerRequest)})
}

// tableSpec is what a table's definition holds beyond its metadata:
// DynamoDB's key schema and GSIs follow from the metadata.
type tableSpec struct {
	Billing string `json:"billing"`
	// ReadUnits, WriteUnits: provisioned capacity (Billing PROVISIONED).
	ReadUnits  int64 `json:"read_units,omitempty"`
	WriteUnits int64 `json:"write_units,omitempty"`
	// Keys and Indexes describe the table's shape, for a reader of the
	// definition; they follow from the metadata.
	Keys    []string `json:"keys"`
	Indexes []string `json:"indexes,omitempty"`
}

func (s *Store) createTable(ctx context.Context, m *storage.TableMetadata, spec tableSpec) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("store %s: %w", s.name, err)
	}
	if err := s.checkNamespace(m.Namespace); err != nil {
		return err
	}
	if err := checkTableName(s.tableName(m.Namespace, m.Table)); err != nil {
		return fmt.Errorf("store %s: table %s: %w", s.name, m.FullName(), err)
	}
	for _, ix := range m.Indexes {
		if t, _ := m.ColumnType(ix); t == storage.Boolean {
			return fmt.Errorf("store %s: table %s: DynamoDB cannot index the BOOLEAN column %q (a GSI key is a string, number or binary; ScalarDB refuses it too)", s.name, m.FullName(), ix)
		}
	}
	if old, err := s.TableMetadata(ctx, m.Namespace, m.Table); err != nil {
		return err
	} else if old != nil {
		return fmt.Errorf("store %s: table %s already exists", s.name, m.FullName())
	}
	if err := s.ensureMetadataTable(ctx); err != nil {
		return err
	}
	name := s.tableName(m.Namespace, m.Table)
	in := &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(partitionAttr), AttributeType: types.ScalarAttributeTypeB}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(partitionAttr), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingMode(spec.Billing),
	}
	throughput := func() *types.ProvisionedThroughput {
		if in.BillingMode != types.BillingModeProvisioned {
			return nil
		}
		return &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(spec.ReadUnits), WriteCapacityUnits: aws.Int64(spec.WriteUnits)}
	}
	in.ProvisionedThroughput = throughput()
	if len(m.ClusteringKey) > 0 {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(clusteringAttr), AttributeType: types.ScalarAttributeTypeB})
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(clusteringAttr), KeyType: types.KeyTypeRange})
	}
	for _, ix := range m.Indexes {
		t, _ := m.ColumnType(ix)
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(ix), AttributeType: indexType(t)})
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName:             aws.String(name + ".global_index." + ix),
			KeySchema:             []types.KeySchemaElement{{AttributeName: aws.String(ix), KeyType: types.KeyTypeHash}},
			Projection:            &types.Projection{ProjectionType: types.ProjectionTypeAll},
			ProvisionedThroughput: throughput(),
		})
	}
	if _, err := s.client.CreateTable(ctx, in); err != nil {
		var inUse *types.ResourceInUseException
		if errors.As(err, &inUse) {
			return fmt.Errorf("store %s: table %s already exists in DynamoDB (as %s) without metadata; drop it or purge it first", s.name, m.FullName(), name)
		}
		return s.wrap(err, "create table "+name)
	}
	if err := s.await(ctx, name, true); err != nil {
		return err
	}
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(s.metadataTable()),
		Item:                s.metadataItem(m),
		ConditionExpression: aws.String("attribute_not_exists(#t)"),
		ExpressionAttributeNames: map[string]string{
			"#t": attrTable,
		},
	})
	if isConditionFailed(err) {
		return fmt.Errorf("store %s: table %s already exists", s.name, m.FullName())
	}
	if err != nil {
		return s.wrap(err, "write metadata of "+m.FullName())
	}
	return nil
}

// checkTableName refuses what DynamoDB cannot name a table: 3 to 255 of
// a-z, A-Z, 0-9, '_', '-' and '.'; the GSIs' names add
// ".global_index.<column>", checked by DynamoDB itself.
func checkTableName(name string) error {
	if len(name) < 3 || len(name) > 255 {
		return fmt.Errorf("DynamoDB table name %q is %d characters; DynamoDB takes 3 to 255", name, len(name))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("DynamoDB table name %q holds %q; DynamoDB table names hold only a-z, A-Z, 0-9, '_', '-' and '.': rename the namespace or table", name, r)
		}
	}
	return nil
}

// indexType is DynamoAdmin.SECONDARY_INDEX_DATATYPE_MAP.
func indexType(t storage.DataType) types.ScalarAttributeType {
	switch t {
	case storage.Text:
		return types.ScalarAttributeTypeS
	case storage.Blob:
		return types.ScalarAttributeTypeB
	}
	return types.ScalarAttributeTypeN
}

// exists tells whether DynamoDB has a table of that name.
func (s *Store) exists(ctx context.Context, name string) (bool, error) {
	_, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, s.wrap(err, "look for "+name)
	}
	return true, nil
}

// ensureMetadataTable creates "<metadata schema>.metadata" keyed by
// "table" (a string), as DynamoAdmin.createMetadataTableIfNotExists does.
func (s *Store) ensureMetadataTable(ctx context.Context) error {
	name := s.metadataTable()
	if ok, err := s.exists(ctx, name); err != nil || ok {
		return err
	}
	_, err := s.client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrTable), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrTable), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return s.wrap(err, "create "+name)
	}
	if err := s.await(ctx, name, true); err != nil {
		return err
	}
	return nil
}

// DropTable deletes the table, then its metadata item. ScalarDB also
// deletes the metadata table when it becomes empty; Stillpoint keeps it,
// so that concurrent DDL never finds it gone.
func (s *Store) DropTable(ctx context.Context, namespace, table string) error {
	m, err := s.TableMetadata(ctx, namespace, table)
	if err != nil {
		return err
	}
	if m == nil {
		return s.notFound(namespace, table)
	}
	return s.PurgeTable(ctx, namespace, table)
}

// PurgeTable removes the metadata item, then the table, whichever exist:
// a purge that is interrupted leaves at most a table with no metadata,
// which the next purge drops.
func (s *Store) PurgeTable(ctx context.Context, namespace, table string) error {
	name := s.tableName(namespace, table)
	s.cache(namespace, table, nil)
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(s.metadataTable()),
		Key:       map[string]types.AttributeValue{attrTable: &types.AttributeValueMemberS{Value: name}},
	})
	if err != nil && !isNotFound(err) {
		return s.wrap(err, "delete metadata of "+namespace+"."+table)
	}
	if _, err := s.client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
		if isNotFound(err) {
			return nil
		}
		return s.wrap(err, "delete table "+name)
	}
	return s.await(ctx, name, false)
}

// await polls DescribeTable until the table is ACTIVE (or gone), backing
// off from 10ms to 1s: the SDK's waiters sleep 20s between polls, longer
// than dynalite or DynamoDB usually take.
func (s *Store) await(ctx context.Context, name string, active bool) error {
	ctx, cancel := context.WithTimeout(ctx, tableWait)
	defer cancel()
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		switch {
		case isNotFound(err) && !active:
			return nil
		case err != nil && !isNotFound(err):
			return s.wrap(err, "wait for table "+name)
		case err == nil && active && out.Table.TableStatus == types.TableStatusActive:
			return nil
		}
		select {
		case <-ctx.Done():
			return s.wrap(ctx.Err(), "wait for table "+name)
		case <-time.After(delay):
		}
	}
}
