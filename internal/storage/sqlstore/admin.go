package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// The metadata table follows ScalarDB's JDBC layout (the same DDL in every
// 3.x release), so a database ScalarDB manages can be read, and one we
// create can be read by ScalarDB. No 3.x release has a namespaces table
// for JDBC: namespaces are the ones the metadata table names (docs/layout.md).

// MetadataNameWidth is the width of the metadata table's full_table_name
// and column_name, VARCHAR(128) in ScalarDB's DDL.
const MetadataNameWidth = 128

func (s *Store) metadataTable() string { return s.dialect.Table(s.layout.MetadataSchema, "metadata") }

// ensureMetadataTable creates the metadata schema and table as ScalarDB
// does, with ScalarDB's exact DDL. Only commands that change data get
// here (through CreateTable): reading never creates it.
func (s *Store) ensureMetadataTable(ctx context.Context) error {
	d := s.dialect
	q := d.Quote
	stmts := append(d.CreateMetadataSchema(s.layout.MetadataSchema),
		"CREATE TABLE IF NOT EXISTS "+s.metadataTable()+"("+
			q("full_table_name")+" "+d.TextType(MetadataNameWidth)+","+q("column_name")+" "+d.TextType(MetadataNameWidth)+","+
			q("data_type")+" "+d.TextType(20)+" NOT NULL,"+q("key_type")+" "+d.TextType(20)+","+
			q("clustering_order")+" "+d.TextType(10)+","+q("indexed")+" "+d.ColumnType(storage.Boolean, false, s.layout.ScalarDB)+" NOT NULL,"+
			q("ordinal_position")+" INTEGER NOT NULL,"+
			"PRIMARY KEY ("+q("full_table_name")+", "+q("column_name")+"))")
	for _, stmt := range stmts {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return s.wrap(err, "create metadata table "+s.layout.MetadataSchema+".metadata")
		}
	}
	return nil
}

// CreateNamespace creates the namespace's schema, as the configured
// ScalarDB release's createNamespace does; nothing is recorded about it.
func (s *Store) CreateNamespace(ctx context.Context, namespace string) error {
	if err := s.checkNamespace(namespace); err != nil {
		return err
	}
	for _, q := range s.dialect.CreateNamespace(s.PhysicalNamespace(namespace), s.layout.ScalarDB) {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return s.wrap(err, "create namespace "+namespace)
		}
	}
	return nil
}

// checkNamespace refuses the layout's own schemas as user namespaces.
func (s *Store) checkNamespace(namespace string) error {
	return s.layout.CheckNamespace(s.name, namespace)
}

func (s *Store) DropNamespace(ctx context.Context, namespace string) error {
	tables, err := s.Tables(ctx, namespace)
	if err != nil {
		return err
	}
	if len(tables) > 0 {
		return fmt.Errorf("store %s: namespace %s still has tables %v; drop them first", s.name, namespace, tables)
	}
	for _, q := range s.dialect.DropNamespace(s.PhysicalNamespace(namespace)) {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return s.wrap(err, "drop namespace "+namespace)
		}
	}
	return nil
}

// Namespaces lists the namespaces that hold a table in the metadata, as
// ScalarDB 3.x's JdbcAdmin.getNamespaceNames does: a namespace created
// with no table yet is not listed.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	fulls, err := s.fullTableNames(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, full := range fulls {
		ns, _, err := storage.SplitFullName(full)
		if err != nil {
			continue // not a name of ours to list
		}
		switch {
		case ns == s.layout.CoordinatorNamespace:
			ns = storage.DefaultCoordinatorNamespace
		case ns == storage.DefaultCoordinatorNamespace:
			continue // another deployment's coordinator, not this layout's
		}
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out, nil
}

// fullTableNames lists the tables the metadata table names, sorted; none
// when there is no metadata table.
func (s *Store) fullTableNames(ctx context.Context) ([]string, error) {
	if ok, err := s.hasMetadata(ctx); err != nil || !ok {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT DISTINCT full_table_name FROM "+s.metadataTable()+" ORDER BY full_table_name")
	if err != nil {
		return nil, s.wrap(err, "list tables")
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var full string
		if err := rows.Scan(&full); err != nil {
			return nil, s.wrap(err, "list tables")
		}
		out = append(out, full)
	}
	return out, s.wrap(rows.Err(), "list tables")
}

// hasMetadata tells whether the metadata table exists, without creating
// it: reading a store must not write to it.
func (s *Store) hasMetadata(ctx context.Context) (bool, error) {
	return s.exists(ctx, s.metadataTable())
}

// HasTable tells whether a table exists in the database, whatever its
// metadata rows say.
func (s *Store) HasTable(ctx context.Context, namespace, table string) (bool, error) {
	return s.exists(ctx, s.Table(namespace, table))
}

func (s *Store) exists(ctx context.Context, table string) (bool, error) {
	_, err := s.db.ExecContext(ctx, "SELECT 1 FROM "+table+" WHERE 1 = 0")
	if err == nil {
		return true, nil
	}
	if err := s.db.PingContext(ctx); err != nil {
		return false, s.wrap(err, "connect")
	}
	return false, nil
}

func (s *Store) CreateTable(ctx context.Context, m *storage.TableMetadata) error {
	return s.createTable(ctx, m, s.tableDDL)
}

// tableDDL is the DDL ScalarDB's JDBC admin of the configured release
// issues for m (keys first), table being its quoted name
// (JdbcAdmin.createTableInternal and the RdbEngine* classes; the forms and
// their sources are in docs/layout.md): the columns joined by "," with
// ScalarDB's types, the primary key, PostgreSQL's clustering-order index,
// then one index per indexed column.
func (s *Store) tableDDL(m *storage.TableMetadata, table string) []string {
	d, v := s.dialect, s.layout.ScalarDB
	ns := s.PhysicalNamespace(m.Namespace)
	defs := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		defs[i] = d.Quote(c.Name) + " " + d.ColumnType(c.Type, m.IsKey(c.Name) || slices.Contains(m.Indexes, c.Name), v)
	}
	pk := strings.Join(quoteAll(d, m.KeyColumns()), ",")
	if d.OrderedPrimaryKey() && slices.ContainsFunc(m.ClusteringKey, func(c storage.ClusteringKey) bool { return c.Order == storage.Desc }) {
		pk = orderedKeys(d, m)
	}
	stmts := []string{"CREATE TABLE " + table + "(" + strings.Join(defs, ",") + ", PRIMARY KEY (" + pk + "))"}
	if d.ClusteringOrderIndex() && v.ClusteringOrderIndex(m) {
		stmts = append(stmts, "CREATE UNIQUE INDEX "+d.Quote(v.ClusteringIndexName(ns, m.Table))+" ON "+table+" ("+orderedKeys(d, m)+")")
	}
	for _, ix := range m.Indexes {
		name := v.IndexName(ns, m.Table, ix)
		if !v.QuotedIndexNames() {
			name = d.Unquoted(name)
		}
		stmts = append(stmts, "CREATE INDEX "+d.Quote(name)+" ON "+table+" ("+d.Quote(ix)+")")
	}
	return stmts
}

// orderedKeys lists the partition keys ASC and the clustering keys in
// their order.
func orderedKeys(d Dialect, m *storage.TableMetadata) string {
	var cols []string
	for _, p := range m.PartitionKey {
		cols = append(cols, d.Quote(p)+" ASC")
	}
	for _, c := range m.ClusteringKey {
		cols = append(cols, d.Quote(c.Name)+" "+c.Order.String())
	}
	return strings.Join(cols, ",")
}

// createTable creates a table with the DDL ddl gives for it (keys first)
// and its quoted name, then records its metadata rows.
func (s *Store) createTable(ctx context.Context, m *storage.TableMetadata, ddl func(m *storage.TableMetadata, table string) []string) error {
	if err := m.Validate(); err != nil {
		return err
	}
	m = keysFirst(m)
	existing, err := s.TableMetadata(ctx, m.Namespace, m.Table)
	if err != nil {
		return err
	}
	if existing != nil {
		return fmt.Errorf("store %s: table %s already exists", s.name, m.FullName())
	}
	if err := s.CreateNamespace(ctx, m.Namespace); err != nil {
		return err
	}
	if err := s.ensureMetadataTable(ctx); err != nil { // before the table, as ScalarDB 3.13+ does
		return err
	}
	stmts := ddl(m, s.Table(m.Namespace, m.Table))
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err, "begin")
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	// MySQL commits DDL implicitly, so the metadata goes in last: a table
	// without metadata rows is invisible and can be created again.
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return s.wrap(err, "create table "+m.FullName())
		}
	}
	if err := s.insertMetadata(ctx, tx, m); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return s.wrap(err, "create table "+m.FullName())
	}
	s.changed(m.FullName(), m)
	return nil
}

// keysFirst returns a copy of m whose columns are the partition key, the
// clustering key (each in key order) and then the other columns. The
// metadata layout records the key order only through ordinal_position, so,
// as ScalarDB does, positions follow this order; the copy is also what a
// later TableMetadata reads back.
func keysFirst(m *storage.TableMetadata) *storage.TableMetadata {
	c := *m
	c.Columns = make([]storage.Column, 0, len(m.Columns))
	for _, k := range m.KeyColumns() {
		col, _ := m.Column(k)
		c.Columns = append(c.Columns, col)
	}
	c.Columns = append(c.Columns, m.NonKeyColumns()...)
	c.PartitionKey = slices.Clone(m.PartitionKey)
	c.ClusteringKey = slices.Clone(m.ClusteringKey)
	c.Indexes = nil
	for _, col := range c.Columns { // indexes are read back in ordinal order too
		if slices.Contains(m.Indexes, col.Name) {
			c.Indexes = append(c.Indexes, col.Name)
		}
	}
	return &c
}

func (s *Store) insertMetadata(ctx context.Context, tx *sql.Tx, m *storage.TableMetadata) error {
	p := s.dialect.Placeholder
	q := "INSERT INTO " + s.metadataTable() + " (full_table_name, column_name, data_type, key_type, clustering_order, indexed, ordinal_position) VALUES (" +
		strings.Join([]string{p(1), p(2), p(3), p(4), p(5), p(6), p(7)}, ", ") + ")"
	for i, c := range m.Columns {
		var keyType, order any
		if m.IsPartitionKey(c.Name) {
			keyType = "PARTITION"
		} else if o, ok := m.ClusteringOrder(c.Name); ok {
			keyType, order = "CLUSTERING", o.String()
		}
		if _, err := tx.ExecContext(ctx, q, s.fullName(m.Namespace, m.Table), c.Name, c.Type.String(), keyType, order, slices.Contains(m.Indexes, c.Name), i+1); err != nil {
			return s.wrap(err, "record metadata of "+m.FullName())
		}
	}
	return nil
}

func (s *Store) DropTable(ctx context.Context, namespace, table string) error {
	m, err := s.meta(ctx, namespace, table)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err, "begin")
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+s.metadataTable()+" WHERE full_table_name = "+s.dialect.Placeholder(1), s.fullName(namespace, table)); err != nil {
		return s.wrap(err, "forget metadata of "+m.FullName())
	}
	if _, err := tx.ExecContext(ctx, "DROP TABLE "+s.Table(namespace, table)); err != nil {
		return s.wrap(err, "drop table "+m.FullName())
	}
	if err := tx.Commit(); err != nil {
		return s.wrap(err, "drop table "+m.FullName())
	}
	s.changed(m.FullName(), nil)
	return nil
}

// SchemaWatcher is an optional Dialect told when the store's DDL changed a
// table: statements the engine prepared for the table's old definition
// must not run again (PostgreSQL keeps their parameter and result types).
type SchemaWatcher interface {
	SchemaChanged()
}

// changed records DDL of a table: its metadata (nil: dropped), and new
// statement texts and preparations from now on.
func (s *Store) changed(full string, m *storage.TableMetadata) {
	s.cache(full, m)
	if w, ok := s.dialect.(SchemaWatcher); ok {
		w.SchemaChanged()
	}
}

func (s *Store) cache(full string, m *storage.TableMetadata) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m == nil {
		delete(s.metadata, full)
	} else {
		s.metadata[full] = m
	}
}

func (s *Store) TableMetadata(ctx context.Context, namespace, table string) (*storage.TableMetadata, error) {
	full := namespace + "." + table
	s.mu.Lock()
	m, ok := s.metadata[full]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	if ok, err := s.hasMetadata(ctx); err != nil || !ok {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT column_name, data_type, key_type, clustering_order, indexed FROM "+
		s.metadataTable()+" WHERE full_table_name = "+s.dialect.Placeholder(1)+" ORDER BY ordinal_position", s.fullName(namespace, table))
	if err != nil {
		return nil, s.wrap(err, "read metadata of "+full)
	}
	defer rows.Close()
	m = &storage.TableMetadata{Namespace: namespace, Table: table}
	for rows.Next() {
		var name, typ string
		var keyType, order sql.NullString
		var indexed bool
		if err := rows.Scan(&name, &typ, &keyType, &order, &indexed); err != nil {
			return nil, s.wrap(err, "read metadata of "+full)
		}
		t, err := storage.ParseDataType(typ)
		if err != nil {
			return nil, fmt.Errorf("store %s: metadata of %s column %s: %w", s.name, full, name, err)
		}
		m.Columns = append(m.Columns, storage.Column{Name: name, Type: t})
		switch keyType.String {
		case "PARTITION":
			m.PartitionKey = append(m.PartitionKey, name)
		case "CLUSTERING":
			o := storage.Asc
			if order.String == "DESC" {
				o = storage.Desc
			}
			m.ClusteringKey = append(m.ClusteringKey, storage.ClusteringKey{Name: name, Order: o})
		}
		if indexed {
			m.Indexes = append(m.Indexes, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err, "read metadata of "+full)
	}
	if len(m.Columns) == 0 {
		return nil, nil
	}
	s.cache(full, m)
	return m, nil
}

func (s *Store) Tables(ctx context.Context, namespace string) ([]string, error) {
	fulls, err := s.fullTableNames(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, full := range fulls {
		if ns, tbl, err := storage.SplitFullName(full); err == nil && ns == s.PhysicalNamespace(namespace) {
			out = append(out, tbl)
		}
	}
	return out, nil
}

// PurgeTable removes a table and its metadata rows in whatever state an
// interrupted creation left them: MySQL/MariaDB commit DDL implicitly, so a
// table can exist with some or none of its metadata rows. The metadata goes
// first, so a purge that is itself interrupted leaves at most a table with
// no metadata, which the next purge drops.
func (s *Store) PurgeTable(ctx context.Context, namespace, table string) error {
	full := namespace + "." + table
	if ok, err := s.hasMetadata(ctx); err != nil {
		return err
	} else if ok {
		if _, err := s.db.ExecContext(ctx, "DELETE FROM "+s.metadataTable()+" WHERE full_table_name = "+s.dialect.Placeholder(1), s.fullName(namespace, table)); err != nil {
			return s.wrap(err, "forget metadata of "+full)
		}
	}
	s.changed(full, nil)
	_, err := s.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+s.Table(namespace, table))
	return s.wrap(err, "drop table "+full)
}
