package restore

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// sourceTypes is the cross-engine mapping's domain (docs/ddl.md): for each
// engine a backup was taken on, and each ScalarDB type, the catalog types
// (lower case, without length, precision or display width) a column of
// that type may have there. Such a column holds exactly the values of its
// ScalarDB type, so the target's own column for the type (the same type a
// schema load creates) holds them. Anything else (a NUMERIC read as
// DOUBLE, a padded CHAR read as TEXT) is refused before anything is
// created.
var sourceTypes = map[string]map[storage.DataType][]string{
	"postgres": {
		storage.Boolean:     {"boolean"},
		storage.Int:         {"integer"},
		storage.BigInt:      {"bigint"},
		storage.Float:       {"real", "double precision"}, // ScalarDB up to 3.12: FLOAT (double precision)
		storage.Double:      {"double precision"},
		storage.Text:        {"text", "character varying"},
		storage.Blob:        {"bytea"},
		storage.Date:        {"date"},
		storage.Time:        {"time without time zone"},
		storage.Timestamp:   {"timestamp without time zone"},
		storage.TimestampTZ: {"timestamp with time zone"},
	},
	"mysql": {
		storage.Boolean:     {"tinyint"}, // BOOLEAN is tinyint(1)
		storage.Int:         {"int"},
		storage.BigInt:      {"bigint"},
		storage.Float:       {"float", "double"}, // ScalarDB up to 3.12: DOUBLE; REAL is DOUBLE
		storage.Double:      {"double"},
		storage.Text:        {"longtext", "varchar", "text", "mediumtext"},
		storage.Blob:        {"longblob", "varbinary", "blob", "mediumblob"},
		storage.Date:        {"date"},
		storage.Time:        {"time"},
		storage.Timestamp:   {"datetime"},
		storage.TimestampTZ: {"datetime"},
	},
	"sqlite": {
		storage.Boolean:     {"boolean"},
		storage.Int:         {"int", "integer"},
		storage.BigInt:      {"bigint"},
		storage.Float:       {"float", "real"},
		storage.Double:      {"double"},
		storage.Text:        {"text"},
		storage.Blob:        {"blob"},
		storage.Date:        {"int"},
		storage.Time:        {"bigint"},
		storage.Timestamp:   {"bigint"},
		storage.TimestampTZ: {"bigint"},
	},
}

// typeArgs are a catalog type's length, precision or display width.
var typeArgs = regexp.MustCompile(`\([^)]*\)`)

// baseType is a catalog type without its arguments: "character varying",
// "int", "timestamp without time zone".
func baseType(t string) string {
	return strings.Join(strings.Fields(typeArgs.ReplaceAllString(strings.ToLower(t), "")), " ")
}

// checkMapping refuses a table going to another engine than the one its
// definition was captured on if a column is outside the mapping: a type
// the mapping does not cover for its ScalarDB type, or a column the
// metadata does not name (the target gets only the metadata's columns).
func checkMapping(t *table) error {
	def := t.backup.Definition
	if def == nil || t.replay {
		return nil
	}
	meta := &t.backup.Metadata
	target := t.d.Engine()
	types, known := sourceTypes[def.Engine]
	var errs []string
	for _, c := range def.Columns {
		col, ok := meta.Column(c.Name)
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("column %s (%s) is not in its ScalarDB metadata, so a %s table would not have it", c.Name, c.Type, target))
		case !known || !slices.Contains(types[col.Type], baseType(c.Type)):
			errs = append(errs, fmt.Sprintf("column %s is %s on %s, which the mapping to %s does not cover for ScalarDB type %s", c.Name, c.Type, def.Engine, target, col.Type))
		}
	}
	if errs == nil {
		return nil
	}
	return fmt.Errorf("restore: table %s cannot go from %s to store %s (%s), nothing was restored: %s; restore it into a %s store (its DDL is then replayed as it was), or change the source column (docs/ddl.md lists the mapping)",
		t.full, def.Engine, t.store, target, strings.Join(errs, "; "), def.Engine)
}
