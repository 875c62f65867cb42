package mysql

import (
	"context"
	"fmt"
	"regexp"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// DescribeTable reads a table as SHOW CREATE TABLE prints it (columns
// with types, character sets and collations, the primary key with its
// orders, every index, the table's engine and defaults), and the columns'
// types and collations from information_schema.
func (d Dialect) DescribeTable(ctx context.Context, q sqlstore.Querier, schema, table string) (*storage.TableDefinition, error) {
	def := &storage.TableDefinition{Engine: "mysql"}
	err := sqlstore.QueryRows(ctx, q, "SELECT COLUMN_NAME, COLUMN_TYPE, coalesce(COLLATION_NAME, '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
		[]any{schema, table}, func(scan func(...any) error) error {
			var c storage.ColumnDefinition
			err := scan(&c.Name, &c.Type, &c.Collation)
			def.Columns = append(def.Columns, c)
			return err
		})
	if err != nil || def.Columns == nil {
		return nil, err
	}
	var text string
	err = sqlstore.QueryRows(ctx, q, "SHOW CREATE TABLE "+d.Table(schema, table), nil, func(scan func(...any) error) error {
		var name string
		return scan(&name, &text)
	})
	if err != nil {
		return nil, err
	}
	// SHOW CREATE TABLE names the table alone, never its database.
	def.Body, err = sqlstore.CutPrefix(text, "CREATE TABLE "+d.Quote(table)+" ")
	if err != nil {
		return nil, err
	}
	return def, nil
}

// DescribeNamespace reads a database's default character set and collation.
func (Dialect) DescribeNamespace(ctx context.Context, q sqlstore.Querier, schema string) (*storage.NamespaceDefinition, error) {
	var def *storage.NamespaceDefinition
	err := sqlstore.QueryRows(ctx, q, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
		[]any{schema}, func(scan func(...any) error) error {
			def = &storage.NamespaceDefinition{Engine: "mysql"}
			return scan(&def.Charset, &def.Collation)
		})
	return def, err
}

// charsetName is what character set and collation names look like; a
// manifest's are checked against it before they go into DDL.
var charsetName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// CreateNamespaceFrom creates a database with its captured character set
// and collation (ScalarDB up to 3.12.0: utf8, utf8_bin).
func (d Dialect) CreateNamespaceFrom(schema string, def *storage.NamespaceDefinition) ([]string, error) {
	if !charsetName.MatchString(def.Charset) || !charsetName.MatchString(def.Collation) {
		return nil, fmt.Errorf("captured character set %q / collation %q are not names MariaDB gives", def.Charset, def.Collation)
	}
	return []string{"CREATE DATABASE IF NOT EXISTS " + d.Quote(schema) + " CHARACTER SET " + def.Charset + " COLLATE " + def.Collation}, nil
}
