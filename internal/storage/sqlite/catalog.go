package sqlite

import (
	"context"
	"strings"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// DescribeTable reads a table's and its indexes' statements from
// sqlite_schema, as they were written (SQLite keeps the text), and the
// declared column types from table_info.
func (d Dialect) DescribeTable(ctx context.Context, q sqlstore.Querier, namespace, table string) (*storage.TableDefinition, error) {
	name := namespace + separator + table
	def := &storage.TableDefinition{Engine: "sqlite"}
	err := sqlstore.QueryRows(ctx, q, "SELECT name, type FROM pragma_table_info(?1) ORDER BY cid", []any{name}, func(scan func(...any) error) error {
		var c storage.ColumnDefinition
		err := scan(&c.Name, &c.Type)
		def.Columns = append(def.Columns, c)
		return err
	})
	if err != nil || def.Columns == nil {
		return nil, err
	}
	// Autoindexes (of the primary key) have no text: the table's makes them.
	err = sqlstore.QueryRows(ctx, q, "SELECT type, name, sql FROM sqlite_schema WHERE tbl_name = ?1 AND type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type DESC, name",
		[]any{name}, func(scan func(...any) error) error {
			var typ, obj, text string
			if err := scan(&typ, &obj, &text); err != nil {
				return err
			}
			if typ == "table" {
				body, err := sqlstore.CutPrefix(text, named("CREATE TABLE ", name, "", "IF NOT EXISTS ")...)
				def.Body = strings.TrimLeft(body, " ")
				return err
			}
			ix := storage.IndexDefinition{Name: obj, Unique: strings.HasPrefix(text, "CREATE UNIQUE INDEX ")}
			head := "CREATE INDEX "
			if ix.Unique {
				head = "CREATE UNIQUE INDEX "
			}
			var prefixes []string
			for _, p := range named(head, obj, "", "IF NOT EXISTS ") {
				prefixes = append(prefixes, named(p+" ON ", name, "")...)
			}
			body, err := sqlstore.CutPrefix(text, prefixes...)
			ix.Def = strings.TrimLeft(body, " ")
			def.Indexes = append(def.Indexes, ix)
			return err
		})
	if err != nil {
		return nil, err
	}
	return def, nil
}

// named are the ways a statement SQLite keeps can name an object after
// head: quoted or bare, after each of conds (IF NOT EXISTS or nothing).
func named(head, name string, conds ...string) []string {
	var out []string
	for _, cond := range conds {
		for _, n := range []string{Dialect{}.Quote(name), name} {
			out = append(out, head+cond+n)
		}
	}
	return out
}

// DescribeNamespace: a namespace is a prefix of table names, with nothing
// of its own.
func (Dialect) DescribeNamespace(context.Context, sqlstore.Querier, string) (*storage.NamespaceDefinition, error) {
	return &storage.NamespaceDefinition{Engine: "sqlite"}, nil
}

func (Dialect) CreateNamespaceFrom(string, *storage.NamespaceDefinition) ([]string, error) {
	return nil, nil
}
