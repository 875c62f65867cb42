package dynamodb

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// A table's definition (docs/ddl.md) is its tableSpec as JSON: billing
// mode and capacity, and the key schema and GSIs by attribute name (not by
// table name, so that it recreates the table in another namespace). Its
// columns are the metadata's, with ScalarDB's type names: DynamoDB has no
// catalog of attributes.

// Engine names the engine of the definitions the store takes.
func (s *Store) Engine() string { return Engine }

// Describe reads definitions from DynamoDB's DescribeTable.
func (s *Store) Describe() storage.Catalog { return catalog{s} }

type catalog struct{ s *Store }

// DescribeNamespace: a namespace is a name prefix and carries nothing.
func (catalog) DescribeNamespace(context.Context, string) (*storage.NamespaceDefinition, error) {
	return &storage.NamespaceDefinition{Engine: Engine}, nil
}

func (c catalog) DescribeTable(ctx context.Context, namespace, table string) (*storage.TableDefinition, error) {
	m, err := c.s.TableMetadata(ctx, namespace, table)
	if err != nil || m == nil {
		return nil, err
	}
	def, err := c.s.describe(ctx, c.s.tableName(namespace, table))
	if err != nil || def == nil {
		return nil, err
	}
	for _, col := range m.Columns {
		def.Columns = append(def.Columns, storage.ColumnDefinition{Name: col.Name, Type: typeNames[col.Type]})
	}
	return def, nil
}

func (c catalog) DescribeMetadata(ctx context.Context) (*storage.TableDefinition, *storage.NamespaceDefinition, error) {
	def, err := c.s.describe(ctx, c.s.metadataTable())
	if err != nil {
		return nil, nil, err
	}
	return def, &storage.NamespaceDefinition{Engine: Engine}, nil
}

// describe is a table's definition without columns; nil when it does not
// exist.
func (s *Store) describe(ctx context.Context, name string) (*storage.TableDefinition, error) {
	out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.wrap(err, "describe "+name)
	}
	d := out.Table
	spec := tableSpec{Billing: string(types.BillingModeProvisioned)}
	if d.BillingModeSummary != nil && d.BillingModeSummary.BillingMode != "" {
		spec.Billing = string(d.BillingModeSummary.BillingMode)
	}
	if spec.Billing == string(types.BillingModeProvisioned) && d.ProvisionedThroughput != nil {
		spec.ReadUnits = aws.ToInt64(d.ProvisionedThroughput.ReadCapacityUnits)
		spec.WriteUnits = aws.ToInt64(d.ProvisionedThroughput.WriteCapacityUnits)
	}
	for _, k := range d.KeySchema {
		spec.Keys = append(spec.Keys, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	for _, g := range d.GlobalSecondaryIndexes {
		for _, k := range g.KeySchema {
			spec.Indexes = append(spec.Indexes, aws.ToString(k.AttributeName))
		}
	}
	slices.Sort(spec.Indexes)
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return &storage.TableDefinition{Engine: Engine, Body: string(body)}, nil
}

func checkEngine(engine, what string) error {
	if engine != Engine {
		return fmt.Errorf("%s was captured on engine %q; a dynamodb store can only recreate definitions captured on dynamodb", what, engine)
	}
	return nil
}

func (s *Store) CreateNamespaceFrom(ctx context.Context, namespace string, def *storage.NamespaceDefinition) error {
	if err := checkEngine(def.Engine, "namespace "+namespace); err != nil {
		return err
	}
	return s.CreateNamespace(ctx, namespace)
}

// CreateTableFrom creates the table with the captured billing mode and
// capacity; its keys and GSIs follow from m, as ScalarDB's layout says.
func (s *Store) CreateTableFrom(ctx context.Context, m *storage.TableMetadata, def *storage.TableDefinition) error {
	if err := checkEngine(def.Engine, "table "+m.FullName()); err != nil {
		return err
	}
	var spec tableSpec
	if err := json.Unmarshal([]byte(def.Body), &spec); err != nil {
		return fmt.Errorf("store %s: definition of %s: %w", s.name, m.FullName(), err)
	}
	return s.createTable(ctx, m, spec)
}

// CreateMetadataFrom creates the metadata table unless it exists: its
// shape is fixed by ScalarDB's layout.
func (s *Store) CreateMetadataFrom(ctx context.Context, def *storage.TableDefinition, _ *storage.NamespaceDefinition) error {
	if err := checkEngine(def.Engine, "the metadata table"); err != nil {
		return err
	}
	return s.ensureMetadataTable(ctx)
}
