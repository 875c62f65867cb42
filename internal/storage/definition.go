package storage

import "context"

// DefinitionFormat is the version of the captured definitions below, as
// backups record them (docs/ddl.md). Raise it when their meaning changes.
const DefinitionFormat = 1

// TableDefinition is a table as the engine's catalog has it, so that a
// restore into the same engine recreates exactly that table, and a restore
// into another engine can check it maps (docs/ddl.md). It names neither
// the table nor its schema: a restore puts them in front.
type TableDefinition struct {
	// Engine is the engine whose SQL Body and Indexes are (sqlite,
	// postgres, mysql).
	Engine string `json:"engine"`
	// Body follows "CREATE TABLE <schema>.<table> ": the columns with
	// their types, lengths, collations, NOT NULL and defaults, the
	// constraints with their names, and the table's options, as the
	// catalog gives them (MariaDB: SHOW CREATE TABLE, indexes included).
	Body string `json:"body"`
	// Indexes are the indexes created by statements of their own
	// (PostgreSQL, SQLite), in name order.
	Indexes []IndexDefinition `json:"indexes,omitempty"`
	// Columns are each column's type and collation as the catalog names
	// them, in catalog order: what a restore into another engine checks.
	Columns []ColumnDefinition `json:"columns"`
}

// IndexDefinition is one index: "CREATE [UNIQUE ]INDEX <name> ON
// <schema>.<table> <Def>".
type IndexDefinition struct {
	Name   string `json:"name"`
	Unique bool   `json:"unique,omitempty"`
	Def    string `json:"def"`
}

// ColumnDefinition is a column's type as the catalog names it
// (PostgreSQL's format_type, MariaDB's COLUMN_TYPE, SQLite's declared
// type) and its collation where it has one.
type ColumnDefinition struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Collation string `json:"collation,omitempty"`
}

// NamespaceDefinition is what a namespace's own DDL carries beyond its
// name: MariaDB's default character set and collation (ScalarDB up to
// 3.12.0 creates namespaces "character set utf8 COLLATE utf8_bin"). Empty
// on engines whose namespaces carry nothing (PostgreSQL schemas, SQLite).
type NamespaceDefinition struct {
	Engine    string `json:"engine"`
	Charset   string `json:"charset,omitempty"`
	Collation string `json:"collation,omitempty"`
}

// Catalog reads definitions from a store's catalog. It only reads: no
// DDL, no DML. A nil definition with no error means there is nothing to
// capture (no such table).
type Catalog interface {
	DescribeNamespace(ctx context.Context, namespace string) (*NamespaceDefinition, error)
	DescribeTable(ctx context.Context, namespace, table string) (*TableDefinition, error)
	// DescribeMetadata describes the metadata table and its schema.
	DescribeMetadata(ctx context.Context) (*TableDefinition, *NamespaceDefinition, error)
}

// CatalogSnapshot is a snapshot that can read the catalog in its own
// transaction, so definitions are those of the cut where the engine's
// catalog is transactional (docs/ddl.md says which are).
type CatalogSnapshot interface {
	Catalog(ctx context.Context, fn func(Catalog) error) error
}

// DefinitionAdmin recreates objects from definitions captured on the same
// engine.
type DefinitionAdmin interface {
	// Engine is the store's engine, the Engine of the definitions it takes.
	Engine() string
	// CreateNamespaceFrom creates a namespace (if it does not exist) with
	// its captured options.
	CreateNamespaceFrom(ctx context.Context, namespace string, def *NamespaceDefinition) error
	// CreateTableFrom creates the table as def says, with m's metadata rows.
	CreateTableFrom(ctx context.Context, m *TableMetadata, def *TableDefinition) error
	// CreateMetadataFrom creates the metadata schema and table as captured,
	// unless the table exists already.
	CreateMetadataFrom(ctx context.Context, def *TableDefinition, schema *NamespaceDefinition) error
}
