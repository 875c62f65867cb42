package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// CatalogDialect is how an engine reads its objects' definitions from its
// catalog and replays them (docs/ddl.md).
type CatalogDialect interface {
	// DescribeTable reads a table of a schema (physical names) through q;
	// nil when it does not exist.
	DescribeTable(ctx context.Context, q Querier, schema, table string) (*storage.TableDefinition, error)
	// DescribeNamespace reads a schema's own options; nil when it does not
	// exist.
	DescribeNamespace(ctx context.Context, q Querier, schema string) (*storage.NamespaceDefinition, error)
	// CreateNamespaceFrom returns the DDL that creates a schema, unless it
	// exists, with its captured options; an error if they are not valid.
	CreateNamespaceFrom(schema string, def *storage.NamespaceDefinition) ([]string, error)
}

// Catalog reads definitions through q: a snapshot's transaction, or the
// pool. Names are the layers' names; the store maps them (the
// coordinator namespace).
func (s *Store) Catalog(q Querier) storage.Catalog { return catalog{s, q} }

// Describe reads definitions as the catalog has them now, outside any
// snapshot.
func (s *Store) Describe() storage.Catalog { return s.Catalog(s.db) }

type catalog struct {
	s *Store
	q Querier
}

func (c catalog) DescribeNamespace(ctx context.Context, namespace string) (*storage.NamespaceDefinition, error) {
	def, err := c.s.dialect.DescribeNamespace(ctx, c.q, c.s.PhysicalNamespace(namespace))
	return def, c.s.wrap(err, "describe namespace "+namespace)
}

func (c catalog) DescribeTable(ctx context.Context, namespace, table string) (*storage.TableDefinition, error) {
	def, err := c.s.dialect.DescribeTable(ctx, c.q, c.s.PhysicalNamespace(namespace), table)
	return def, c.s.wrap(err, "describe table "+namespace+"."+table)
}

func (c catalog) DescribeMetadata(ctx context.Context) (*storage.TableDefinition, *storage.NamespaceDefinition, error) {
	schema := c.s.layout.MetadataSchema
	def, err := c.s.dialect.DescribeTable(ctx, c.q, schema, "metadata")
	if err != nil || def == nil {
		return nil, nil, c.s.wrap(err, "describe the metadata table")
	}
	ns, err := c.s.dialect.DescribeNamespace(ctx, c.q, schema)
	return def, ns, c.s.wrap(err, "describe the metadata schema")
}

// Engine is the store's engine.
func (s *Store) Engine() string { return s.dialect.Engine() }

// CreateNamespaceFrom creates a namespace with the options captured from
// a store of the same engine.
func (s *Store) CreateNamespaceFrom(ctx context.Context, namespace string, def *storage.NamespaceDefinition) error {
	if err := s.checkNamespace(namespace); err != nil {
		return err
	}
	if err := s.checkEngine(namespace, def.Engine); err != nil {
		return err
	}
	stmts, err := s.dialect.CreateNamespaceFrom(s.PhysicalNamespace(namespace), def)
	if err != nil {
		return fmt.Errorf("store %s: namespace %s: %w", s.name, namespace, err)
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return s.wrap(err, "create namespace "+namespace)
		}
	}
	return nil
}

// CreateTableFrom creates a table exactly as def, captured on the same
// engine, describes it, and records m in the metadata table.
func (s *Store) CreateTableFrom(ctx context.Context, m *storage.TableMetadata, def *storage.TableDefinition) error {
	if err := s.checkEngine(m.FullName(), def.Engine); err != nil {
		return err
	}
	return s.createTable(ctx, m, func(_ *storage.TableMetadata, table string) []string {
		return definitionDDL(s.dialect, table, def, false)
	})
}

// CreateMetadataFrom creates the metadata schema and table as captured,
// unless the table exists: a target's own metadata table (shared with
// other tables) is kept as it is.
func (s *Store) CreateMetadataFrom(ctx context.Context, def *storage.TableDefinition, schema *storage.NamespaceDefinition) error {
	if err := s.checkEngine("the metadata table", def.Engine); err != nil {
		return err
	}
	if ok, err := s.hasMetadata(ctx); err != nil || ok {
		return err
	}
	var stmts []string
	if schema != nil {
		var err error
		if stmts, err = s.dialect.CreateNamespaceFrom(s.layout.MetadataSchema, schema); err != nil {
			return fmt.Errorf("store %s: metadata schema %s: %w", s.name, s.layout.MetadataSchema, err)
		}
	} else {
		stmts = s.dialect.CreateMetadataSchema(s.layout.MetadataSchema)
	}
	stmts = append(stmts, definitionDDL(s.dialect, s.metadataTable(), def, true)...)
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return s.wrap(err, "create metadata table "+s.layout.MetadataSchema+".metadata")
		}
	}
	return nil
}

func (s *Store) checkEngine(what, engine string) error {
	if engine != s.dialect.Engine() {
		return fmt.Errorf("store %s (%s): the definition of %s was captured on %s; only the same engine replays it", s.name, s.dialect.Engine(), what, engine)
	}
	return nil
}

// definitionDDL is the DDL that recreates a captured table under the name
// table (quoted, schema-qualified).
func definitionDDL(d Dialect, table string, def *storage.TableDefinition, ifNotExists bool) []string {
	cond := ""
	if ifNotExists {
		cond = "IF NOT EXISTS "
	}
	stmts := []string{"CREATE TABLE " + cond + table + " " + def.Body}
	for _, ix := range def.Indexes {
		unique := ""
		if ix.Unique {
			unique = "UNIQUE "
		}
		stmts = append(stmts, "CREATE "+unique+"INDEX "+cond+d.Quote(ix.Name)+" ON "+table+" "+ix.Def)
	}
	return stmts
}

// CutPrefix removes the prefix a catalog's statement text starts with (the
// part that names the object), or says what it found instead.
func CutPrefix(text string, prefixes ...string) (string, error) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(text, p); ok {
			return rest, nil
		}
	}
	return "", fmt.Errorf("catalog text %.80q does not start with %q", text, prefixes[0])
}

// QueryRows runs query through q and calls fn with each row's scan.
func QueryRows(ctx context.Context, q Querier, query string, args []any, fn func(scan func(...any) error) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}
