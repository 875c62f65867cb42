package postgres

import (
	"context"
	"strings"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// The table, with the quoted names pg_get_indexdef prints for it.
const tableCTE = `WITH t AS (SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified, c.reloptions
 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')) `

// Columns: name, type with its modifier (VARCHAR(10485760), not text), a
// collation other than the type's default, NOT NULL, default expression.
const columnsQuery = tableCTE + `SELECT a.attname, format_type(a.atttypid, a.atttypmod),
 CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) ELSE '' END,
 coalesce(co.collname, ''), a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), ''), coalesce(array_to_string(t.reloptions, ', '), '')
 FROM t JOIN pg_attribute a ON a.attrelid = t.oid JOIN pg_type ty ON ty.oid = a.atttypid
 LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> ty.typcollation
 LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`

// Constraints ScalarDB-era tables can hold: the primary key first (its
// name kept), then unique and check constraints by name.
const constraintsQuery = tableCTE + `SELECT quote_ident(k.conname), pg_get_constraintdef(k.oid)
 FROM t JOIN pg_constraint k ON k.conrelid = t.oid WHERE k.contype IN ('p', 'u', 'c')
 ORDER BY k.contype <> 'p', k.conname`

// Indexes other than those of constraints, by name: the clustering-order
// unique index and the secondary indexes.
const indexesQuery = tableCTE + `SELECT ic.relname, quote_ident(ic.relname), i.indisunique, t.qualified, pg_get_indexdef(i.indexrelid)
 FROM t JOIN pg_index i ON i.indrelid = t.oid JOIN pg_class ic ON ic.oid = i.indexrelid
 WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = t.oid AND k.contype IN ('p', 'u', 'x'))
 ORDER BY ic.relname`

// DescribeTable reads a table from pg_catalog.
func (Dialect) DescribeTable(ctx context.Context, q sqlstore.Querier, schema, table string) (*storage.TableDefinition, error) {
	def := &storage.TableDefinition{Engine: "postgres"}
	var defs []string
	var options string
	err := sqlstore.QueryRows(ctx, q, columnsQuery, []any{schema, table}, func(scan func(...any) error) error {
		var name, typ, collate, collation, dflt string
		var notNull bool
		if err := scan(&name, &typ, &collate, &collation, &notNull, &dflt, &options); err != nil {
			return err
		}
		col := Dialect{}.Quote(name) + " " + typ
		if collate != "" {
			col += " COLLATE " + collate
		}
		if notNull {
			col += " NOT NULL"
		}
		if dflt != "" {
			col += " DEFAULT " + dflt
		}
		defs = append(defs, col)
		def.Columns = append(def.Columns, storage.ColumnDefinition{Name: name, Type: typ, Collation: collation})
		return nil
	})
	if err != nil || def.Columns == nil {
		return nil, err
	}
	err = sqlstore.QueryRows(ctx, q, constraintsQuery, []any{schema, table}, func(scan func(...any) error) error {
		var name, body string
		if err := scan(&name, &body); err != nil {
			return err
		}
		defs = append(defs, "CONSTRAINT "+name+" "+body)
		return nil
	})
	if err != nil {
		return nil, err
	}
	def.Body = "(" + strings.Join(defs, ", ") + ")"
	if options != "" {
		def.Body += " WITH (" + options + ")"
	}
	err = sqlstore.QueryRows(ctx, q, indexesQuery, []any{schema, table}, func(scan func(...any) error) error {
		var ix storage.IndexDefinition
		var quoted, qualified, text string
		if err := scan(&ix.Name, &quoted, &ix.Unique, &qualified, &text); err != nil {
			return err
		}
		unique := ""
		if ix.Unique {
			unique = "UNIQUE "
		}
		// pg_get_indexdef always qualifies the table: what follows it is
		// the method, the columns with their order, and the options.
		var err error
		ix.Def, err = sqlstore.CutPrefix(text, "CREATE "+unique+"INDEX "+quoted+" ON "+qualified+" ")
		def.Indexes = append(def.Indexes, ix)
		return err
	})
	if err != nil {
		return nil, err
	}
	return def, nil
}

// DescribeNamespace: a schema carries nothing but its name; nil when it
// does not exist.
func (Dialect) DescribeNamespace(ctx context.Context, q sqlstore.Querier, schema string) (*storage.NamespaceDefinition, error) {
	var def *storage.NamespaceDefinition
	err := sqlstore.QueryRows(ctx, q, "SELECT 1 FROM pg_namespace WHERE nspname = $1", []any{schema}, func(scan func(...any) error) error {
		def = &storage.NamespaceDefinition{Engine: "postgres"}
		var one int
		return scan(&one)
	})
	return def, err
}

func (d Dialect) CreateNamespaceFrom(schema string, _ *storage.NamespaceDefinition) ([]string, error) {
	return d.CreateNamespace(schema, storage.ScalarDBVersion{}), nil
}
