package compat

import (
	"fmt"
	"slices"
	"strings"
)

// Column is a user column with its ScalarDB data type. Physical is the
// owner's own column type of an imported table (importTable keeps it).
type Column struct{ Name, Type, Physical string }

// Order is a clustering key column and its order.
type Order struct {
	Name string
	Desc bool
}

// Table is a user table as a schema file declares it.
type Table struct {
	Name       string
	Columns    []Column // schema-file order, keys included
	Partition  []string
	Clustering []Order
	Indexes    []string
	// Imported: created by its owner (Physical types), then imported
	// with importTable (3.10+, §8): ALTERed in metadata columns.
	Imported bool
}

func (t Table) isKey(col string) bool {
	if slices.Contains(t.Partition, col) {
		return true
	}
	for _, o := range t.Clustering {
		if o.Name == col {
			return true
		}
	}
	return false
}

func (t Table) nonKey() []string {
	var out []string
	for _, c := range t.Columns {
		if !t.isKey(c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

func (t Table) typeOf(col string) string {
	for _, c := range t.Columns {
		if c.Name == col {
			return c.Type
		}
	}
	if strings.HasPrefix(col, "before_") {
		if typ := t.typeOf(strings.TrimPrefix(col, "before_")); typ != "" {
			return typ
		}
	}
	for _, c := range txColumns {
		if c.Name == col {
			return c.Type
		}
	}
	return ""
}

func (t Table) keys() []string {
	keys := append([]string(nil), t.Partition...)
	for _, o := range t.Clustering {
		keys = append(keys, o.Name)
	}
	return keys
}

// txColumns are Consensus Commit's metadata columns, in ScalarDB's order
// (cc/ConsensusCommitUtils TRANSACTION_META_COLUMNS, §4).
var txColumns = []Column{
	{Name: "tx_id", Type: "TEXT"}, {Name: "tx_state", Type: "INT"}, {Name: "tx_version", Type: "INT"},
	{Name: "tx_prepared_at", Type: "BIGINT"}, {Name: "tx_committed_at", Type: "BIGINT"},
	{Name: "before_tx_id", Type: "TEXT"}, {Name: "before_tx_state", Type: "INT"}, {Name: "before_tx_version", Type: "INT"},
	{Name: "before_tx_prepared_at", Type: "BIGINT"}, {Name: "before_tx_committed_at", Type: "BIGINT"},
}

// beforeColumns are the before_ columns in the era's order (§4).
func (e Era) beforeColumns(t Table) []string {
	cols := t.nonKey()
	if e.HashSetBeforeOrder {
		cols = javaHashSetOrder(cols)
	}
	for i, c := range cols {
		cols[i] = "before_" + c
	}
	return cols
}

// metadataColumns are the table's columns in TableMetadata order: user
// columns, the transaction columns, the before_ columns.
func (e Era) metadataColumns(t Table) []string {
	var cols []string
	for _, c := range t.Columns {
		cols = append(cols, c.Name)
	}
	for _, c := range txColumns {
		cols = append(cols, c.Name)
	}
	return append(cols, e.beforeColumns(t)...)
}

// physicalOrder is the DDL and ordinal_position order: partition keys,
// clustering keys, then the rest in metadata order (§1, §3).
func physicalOrder(t Table, metadata []string) []string {
	out := t.keys()
	for _, c := range metadata {
		if !t.isKey(c) {
			out = append(out, c)
		}
	}
	return out
}

// indexes are the secondary indexes ScalarDB creates: the declared ones,
// and from 3.16.5 a twin on before_<col> of each non-key one (§3).
func (e Era) indexes(t Table) []string {
	out := append([]string(nil), t.Indexes...)
	if e.BeforeImageIndex {
		for _, c := range t.Indexes {
			if !t.isKey(c) {
				out = append(out, "before_"+c)
			}
		}
	}
	return out
}

// sqlType maps a ScalarDB type to the engine's column type (§3 table):
// keys and indexed columns get the key mapping.
func (f *Fixture) sqlType(scalar string, key bool) string {
	e, mysql := f.Era, f.Engine.mysql()
	switch scalar {
	case "TEXT":
		switch {
		case key && mysql:
			return e.MySQLKeyText
		case key:
			return "VARCHAR(10485760)"
		case mysql:
			return "LONGTEXT"
		}
		return "TEXT"
	case "BLOB":
		switch {
		case key && mysql:
			return e.MySQLKeyBlob
		case mysql:
			return "LONGBLOB"
		}
		return "BYTEA"
	case "FLOAT":
		switch {
		case e.RealFloat:
			return "REAL"
		case mysql:
			return "DOUBLE"
		}
		return "FLOAT"
	case "DOUBLE":
		if mysql {
			return "DOUBLE"
		}
		return "DOUBLE PRECISION"
	}
	return scalar // BOOLEAN, INT, BIGINT
}

func (f *Fixture) createNamespace(ns string) string {
	s := "CREATE SCHEMA " + f.Engine.Q(ns)
	if f.Engine.mysql() && f.Era.MySQLNamespaceCharset {
		s += " character set utf8 COLLATE utf8_bin"
	}
	return s
}

// metadataTable is the metadata schema and table, identical in every 3.x
// release (§1): created IF NOT EXISTS, without a charset clause.
func (f *Fixture) metadataTable() []string {
	q := f.Engine.Q
	return []string{
		"CREATE SCHEMA IF NOT EXISTS " + q(f.Names.Metadata),
		"CREATE TABLE IF NOT EXISTS " + f.Engine.Table(f.Names.Metadata, "metadata") + "(" +
			q("full_table_name") + " VARCHAR(128)," + q("column_name") + " VARCHAR(128)," + q("data_type") + " VARCHAR(20) NOT NULL," +
			q("key_type") + " VARCHAR(20)," + q("clustering_order") + " VARCHAR(10)," + q("indexed") + " BOOLEAN NOT NULL," +
			q("ordinal_position") + " INTEGER NOT NULL,PRIMARY KEY (" + q("full_table_name") + ", " + q("column_name") + "))",
	}
}

// metadataRows are one INSERT per column, in ordinal order (§1).
func (f *Fixture) metadataRows(ns string, t Table, order []string, indexed []string) []string {
	var out []string
	for i, c := range order {
		keyType, clustering := "NULL", "NULL"
		if slices.Contains(t.Partition, c) {
			keyType = "'PARTITION'"
		}
		for _, o := range t.Clustering {
			if o.Name == c {
				keyType, clustering = "'CLUSTERING'", "'ASC'"
				if o.Desc {
					clustering = "'DESC'"
				}
			}
		}
		out = append(out, fmt.Sprintf("INSERT INTO %s VALUES ('%s.%s','%s','%s',%s,%s,%t,%d)",
			f.Engine.Table(f.Names.Metadata, "metadata"), ns, t.Name, c, t.typeOf(c), keyType, clustering, slices.Contains(indexed, c), i+1))
	}
	return out
}

// createTable is what createTable (through the Consensus Commit admin when
// transactional) issues for t in namespace ns (§3): the table, PostgreSQL's
// clustering-order index, the secondary indexes, and, before 3.13, the
// metadata table lazily afterwards; then the metadata rows.
func (f *Fixture) createTable(ns string, t Table, transactional bool) []string {
	e, q := f.Engine, f.Engine.Q
	metadata := make([]string, 0, len(t.Columns))
	for _, c := range t.Columns {
		metadata = append(metadata, c.Name)
	}
	indexed := t.Indexes
	if transactional {
		metadata, indexed = f.Era.metadataColumns(t), f.Era.indexes(t)
	}
	order := physicalOrder(t, metadata)
	defs := make([]string, len(order))
	for i, c := range order {
		defs[i] = q(c) + " " + f.sqlType(t.typeOf(c), t.isKey(c) || slices.Contains(indexed, c))
	}
	var stmts []string
	if f.Era.MetadataFirst {
		stmts = f.metadataTable()
	}
	stmts = append(stmts, "CREATE TABLE "+e.Table(ns, t.Name)+"("+strings.Join(defs, ",")+", PRIMARY KEY ("+f.primaryKey(t)+"))")
	if ck := f.clusteringOrderIndex(ns, t); ck != "" {
		stmts = append(stmts, ck)
	}
	for _, c := range indexed {
		name := "index_" + ns + "_" + t.Name + "_" + c
		if f.Era.QuotedIndexNames {
			name = q(name)
		}
		stmts = append(stmts, "CREATE INDEX "+name+" ON "+e.Table(ns, t.Name)+" ("+q(c)+")")
	}
	if !f.Era.MetadataFirst {
		stmts = append(stmts, f.metadataTable()...)
	}
	return append(stmts, f.metadataRows(ns, t, order, indexed)...)
}

// primaryKey: on MySQL with any DESC clustering key every key column gets
// its order; otherwise, and always on PostgreSQL, a plain list (§3).
func (f *Fixture) primaryKey(t Table) string {
	anyDesc := false
	for _, o := range t.Clustering {
		anyDesc = anyDesc || o.Desc
	}
	if !f.Engine.mysql() || !anyDesc {
		return f.Engine.quoteAll(t.keys())
	}
	return f.orderedKeys(t)
}

func (f *Fixture) orderedKeys(t Table) string {
	var parts []string
	for _, p := range t.Partition {
		parts = append(parts, f.Engine.Q(p)+" ASC")
	}
	for _, o := range t.Clustering {
		order := " ASC"
		if o.Desc {
			order = " DESC"
		}
		parts = append(parts, f.Engine.Q(o.Name)+order)
	}
	return strings.Join(parts, ",")
}

// clusteringOrderIndex is PostgreSQL's unique index carrying the
// clustering order (§3), or "".
func (f *Fixture) clusteringOrderIndex(ns string, t Table) string {
	asc, desc := false, false
	for _, o := range t.Clustering {
		asc, desc = asc || !o.Desc, desc || o.Desc
	}
	if f.Engine.mysql() || !desc || (f.Era.MixedOrderIndexOnly && !asc) {
		return ""
	}
	name := ns + "." + t.Name + "_clustering_order_idx"
	if f.Era.NewClusteringIndexName {
		name = "index_clustering_order_" + ns + "_" + t.Name
	}
	return "CREATE UNIQUE INDEX " + f.Engine.Q(name) + " ON " + f.Engine.Table(ns, t.Name) + " (" + f.orderedKeys(t) + ")"
}

// importTable is the owner's table and what importTable adds to it (§8):
// the metadata columns and the before_ columns ALTERed in with the
// non-key mapping, then the metadata rows (repairTable).
func (f *Fixture) importTable(ns string, t Table) []string {
	q := f.Engine.Q
	defs := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		defs[i] = q(c.Name) + " " + c.Physical
	}
	stmts := []string{"CREATE TABLE " + f.Engine.Table(ns, t.Name) + "(" + strings.Join(defs, ",") + ", PRIMARY KEY (" + f.Engine.quoteAll(t.keys()) + "))"}
	metadata := f.Era.metadataColumns(t)
	for _, c := range metadata[len(t.Columns):] {
		stmts = append(stmts, "ALTER TABLE "+f.Engine.Table(ns, t.Name)+" ADD "+q(c)+" "+f.sqlType(t.typeOf(c), false))
	}
	return append(stmts, f.metadataRows(ns, t, physicalOrder(t, metadata), nil)...)
}

// createCoordinator is the coordinator namespace and table, created through
// the storage admin like any table (§5).
func (f *Fixture) createCoordinator() []string {
	cols := []Column{{Name: "tx_id", Type: "TEXT"}, {Name: "tx_state", Type: "INT"}, {Name: "tx_created_at", Type: "BIGINT"}}
	if f.Era.GroupCommit {
		cols = append(cols[:1], append([]Column{{Name: "tx_child_ids", Type: "TEXT"}}, cols[1:]...)...)
	}
	state := Table{Name: "state", Columns: cols, Partition: []string{"tx_id"}}
	return append([]string{f.createNamespace(f.Names.Coordinator)}, f.createTable(f.Names.Coordinator, state, false)...)
}
