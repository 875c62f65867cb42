package compat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Apply runs the fixture's statements on db, in order.
func (f *Fixture) Apply(ctx context.Context, db *sql.DB) error {
	for _, s := range f.Statements {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("ScalarDB %s fixture on %s: %s: %w", f.Era.Version, f.Engine.Name, s, err)
		}
	}
	return nil
}

// Schemas are the fixture's physical schemas.
func (f *Fixture) Schemas() []string {
	return []string{f.Names.Namespace, f.Names.Metadata, f.Names.Coordinator}
}

// TableNames are the user tables as ns.table.
func (f *Fixture) TableNames() []string {
	var out []string
	for _, t := range f.Tables {
		out = append(out, f.Names.Namespace+"."+t.Name)
	}
	return out
}

// SchemaFile is the schema-loader file that declares the fixture's user
// tables (the imported one is not loaded: it is imported).
func (f *Fixture) SchemaFile() []byte {
	file := map[string]any{}
	for _, t := range f.Tables {
		if t.Imported {
			continue
		}
		// In the fixture's column order, as ScalarDB's loader reads it
		// (a map would sort them).
		var cols bytes.Buffer
		for i, c := range t.Columns {
			if i > 0 {
				cols.WriteByte(',')
			}
			fmt.Fprintf(&cols, "%q:%q", c.Name, c.Type)
		}
		var ck []string
		for _, o := range t.Clustering {
			order := " ASC"
			if o.Desc {
				order = " DESC"
			}
			ck = append(ck, o.Name+order)
		}
		def := map[string]any{"transaction": true, "partition-key": t.Partition, "columns": json.RawMessage("{" + cols.String() + "}")}
		if ck != nil {
			def["clustering-key"] = ck
		}
		if t.Indexes != nil {
			def["secondary-index"] = t.Indexes
		}
		file[f.Names.Namespace+"."+t.Name] = def
	}
	b, _ := json.Marshal(file) // maps of strings and slices always marshal
	return b
}

// Check compares a record in db with how ScalarDB settles it.
func (f *Fixture) Check(ctx context.Context, db *sql.DB, r Record) error {
	cols := slices.Sorted(maps.Keys(r.Want))
	if r.Want == nil {
		cols = []string{"tx_id"}
	}
	keys := slices.Sorted(maps.Keys(r.Key))
	where := make([]string, len(keys))
	for i, k := range keys {
		where[i] = f.Engine.Q(k) + " = " + f.literal(r.Key[k])
	}
	query := "SELECT " + f.Engine.quoteAll(cols) + " FROM " + f.Engine.Table(f.Names.Namespace, r.Table) + " WHERE " + strings.Join(where, " AND ")
	got := make([]sql.NullString, len(cols))
	dest := make([]any, len(cols))
	for i := range got {
		dest[i] = &got[i]
	}
	err := db.QueryRowContext(ctx, query).Scan(dest...)
	switch {
	case errors.Is(err, sql.ErrNoRows) && r.Want == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s %v (%s): gone, want it present (%s)", r.Table, r.Key, r.Name, r.Rule)
	case err != nil:
		return fmt.Errorf("%s: %w", query, err)
	case r.Want == nil:
		return fmt.Errorf("%s %v (%s): present with tx_id %q, want it gone (%s)", r.Table, r.Key, r.Name, got[0].String, r.Rule)
	}
	var diffs []string
	for i, c := range cols {
		// A settled record's before image is read by no ScalarDB version
		// (only a PREPARED or DELETED record's is, and prepare overwrites
		// it): Want holds what 3.4 to 3.15 leave, and 3.16+'s NULL is
		// accepted in every era (docs/compat.md).
		if strings.HasPrefix(c, "before_") && !got[i].Valid {
			continue
		}
		if w := text(r.Want[c]); w != text(got[i]) {
			diffs = append(diffs, fmt.Sprintf("%s = %s, want %s", c, text(got[i]), w))
		}
	}
	if diffs != nil {
		return fmt.Errorf("%s %v (%s): %s (%s)", r.Table, r.Key, r.Name, strings.Join(diffs, "; "), r.Rule)
	}
	return nil
}

// text prints a value for comparison; NULL as NULL.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case sql.NullString:
		if !v.Valid {
			return "NULL"
		}
		return strconv.Quote(v.String)
	case string:
		return strconv.Quote(v)
	}
	return strconv.Quote(fmt.Sprint(v))
}

// Decision is the coordinator's answer for a transaction id as ScalarDB
// reads it (Coordinator.getStateForGroupCommit, §6): for a full
// group-commit id, the parent's row if it lists the child, else the row
// keyed by the full id; otherwise the row keyed by the id. NoDecision
// when there is none.
func (f *Fixture) Decision(ctx context.Context, db *sql.DB, id string) (string, error) {
	table := f.Engine.Table(f.Names.Coordinator, "state")
	read := func(key string) (state int, children sql.NullString, found bool, err error) {
		cols := f.Engine.Q("tx_state") + ", NULL"
		if f.Era.GroupCommit {
			cols = f.Engine.Q("tx_state") + ", " + f.Engine.Q("tx_child_ids")
		}
		err = db.QueryRowContext(ctx, "SELECT "+cols+" FROM "+table+" WHERE "+f.Engine.Q("tx_id")+" = "+quote(key)).Scan(&state, &children)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, children, false, nil
		}
		return state, children, err == nil, err
	}
	name := func(state int) string {
		switch state {
		case stateCommitted:
			return Committed
		case stateAborted:
			return Aborted
		}
		return fmt.Sprintf("tx_state %d", state)
	}
	if f.Era.GroupCommit && len(id) > 24 && id[24:25] == f.Era.Delimiter {
		parent, child := parentOf(id)
		state, children, found, err := read(parent)
		if err != nil {
			return "", err
		}
		if found && slices.Contains(strings.Split(children.String, ","), child) {
			return name(state), nil
		}
	}
	state, _, found, err := read(id)
	if err != nil || !found {
		return NoDecision, err
	}
	return name(state), nil
}

// Catalog describes the DDL of the given schemas as the engine's catalog
// has it: schemas (and their character sets), tables, every column's type,
// length, collation, nullability and default, and every index's
// definition. Two databases with equal catalogs have the same DDL.
func Catalog(ctx context.Context, db *sql.DB, engine Engine, schemas []string) (map[string]string, error) {
	queries := pgCatalog
	if engine.mysql() {
		queries = mysqlCatalog
	}
	out := map[string]string{}
	for _, q := range queries {
		query, args := q, []any{schemas}
		if engine.mysql() {
			query = strings.ReplaceAll(q, "(?)", "("+strings.TrimSuffix(strings.Repeat("?,", len(schemas)), ",")+")")
			args = make([]any, len(schemas))
			for i, s := range schemas {
				args[i] = s
			}
		}
		rows, err := db.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", query, err)
		}
		for rows.Next() {
			var k, v sql.NullString
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return nil, err
			}
			out[k.String] += v.String
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// The catalog queries: each row is a key and a description.
var (
	pgCatalog = []string{
		`SELECT 'schema ' || schema_name, '' FROM information_schema.schemata WHERE schema_name = ANY($1)`,
		`SELECT 'table ' || table_schema || '.' || table_name, table_type FROM information_schema.tables WHERE table_schema = ANY($1)`,
		`SELECT 'column ' || table_schema || '.' || table_name || '.' || column_name,
			concat_ws(' ', ordinal_position, data_type, character_maximum_length, numeric_precision, collation_name, is_nullable, column_default)
			FROM information_schema.columns WHERE table_schema = ANY($1)`,
		`SELECT 'index ' || schemaname || '.' || indexname, indexdef FROM pg_indexes WHERE schemaname = ANY($1)`,
		`SELECT 'constraint ' || n.nspname || '.' || c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = ANY($1)`,
	}
	mysqlCatalog = []string{
		`SELECT CONCAT('schema ', SCHEMA_NAME), CONCAT_WS(' ', DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?)`,
		`SELECT CONCAT('table ', TABLE_SCHEMA, '.', TABLE_NAME), CONCAT_WS(' ', TABLE_TYPE, ENGINE, TABLE_COLLATION) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?)`,
		`SELECT CONCAT('column ', TABLE_SCHEMA, '.', TABLE_NAME, '.', COLUMN_NAME),
			CONCAT_WS(' ', ORDINAL_POSITION, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, CHARACTER_SET_NAME, COLLATION_NAME, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_KEY)
			FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (?)`,
		`SELECT CONCAT('index ', TABLE_SCHEMA, '.', TABLE_NAME, '.', INDEX_NAME),
			GROUP_CONCAT(CONCAT_WS(' ', SEQ_IN_INDEX, COLUMN_NAME, COLLATION, SUB_PART, NON_UNIQUE, INDEX_TYPE) ORDER BY SEQ_IN_INDEX SEPARATOR ', ')
			FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN (?) GROUP BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME`,
	}
)

// Checksums hashes every row of every table of the catalog (keys
// "table ..."), in an order of their own: two equal checksums mean equal
// rows, byte for byte as the driver reads them.
func Checksums(ctx context.Context, db *sql.DB, engine Engine, catalog map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for k := range catalog {
		name, ok := strings.CutPrefix(k, "table ")
		if !ok {
			continue
		}
		schema, table, _ := strings.Cut(name, ".")
		sum, err := rowsChecksum(ctx, db, "SELECT * FROM "+engine.Table(schema, table))
		if err != nil {
			return nil, err
		}
		out["rows "+name] = sum
	}
	return out, nil
}

func rowsChecksum(ctx context.Context, db *sql.DB, query string) (string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return "", fmt.Errorf("%s: %w", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	var hashes []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return "", err
		}
		h := sha256.New()
		for _, v := range vals {
			fmt.Fprintf(h, "%t:%d:%s|", v == nil, len(v), v)
		}
		hashes = append(hashes, hex.EncodeToString(h.Sum(nil)))
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	slices.Sort(hashes)
	sum := sha256.Sum256([]byte(strings.Join(hashes, ",")))
	return fmt.Sprintf("%d:%x", len(hashes), sum[:8]), nil
}

// State is what a read-only command must leave as it was: the catalog of
// the schemas and a checksum of every row.
func State(ctx context.Context, db *sql.DB, engine Engine, schemas []string) (map[string]string, error) {
	cat, err := Catalog(ctx, db, engine, schemas)
	if err != nil {
		return nil, err
	}
	sums, err := Checksums(ctx, db, engine, cat)
	if err != nil {
		return nil, err
	}
	maps.Copy(cat, sums)
	return cat, nil
}

// Outcomes is the fixture's records and how ScalarDB settles each, as a
// markdown table (internal/compat/testdata/outcomes.md holds every era's).
func (f *Fixture) Outcomes() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## ScalarDB %s (era %s)\n\n| table | key | written as | settled | coordinator says | rule |\n| --- | --- | --- | --- | --- | --- |\n", f.Era.Version, f.Era.Name)
	for _, r := range f.Records {
		keys := slices.Sorted(maps.Keys(r.Key))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s=%v", k, r.Key[k])
		}
		settled := "gone"
		if r.Want != nil {
			cols := slices.Sorted(maps.Keys(r.Want))
			vals := make([]string, 0, len(cols))
			for _, c := range cols {
				vals = append(vals, c+"="+text(r.Want[c]))
			}
			settled = strings.Join(vals, " ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.Table, strings.Join(parts, " "), r.Name, settled, r.Decision, r.Rule)
	}
	return b.String()
}

// clockColumns hold the settling process's clock: a roll-forward's
// tx_committed_at and an abort's tx_created_at (docs/restore.md).
var clockColumns = []string{"tx_committed_at", "tx_created_at"}

// Data is a checksum of the rows of each of the fixture's tables and its
// coordinator table, every column but those holding the clock of
// whoever settled them: two databases settled from the same state have
// equal Data, byte for byte as the driver reads them.
func (f *Fixture) Data(ctx context.Context, db *sql.DB) (map[string]string, error) {
	tables := [][2]string{{f.Names.Coordinator, "state"}}
	for _, t := range f.Tables {
		tables = append(tables, [2]string{f.Names.Namespace, t.Name})
	}
	out := map[string]string{}
	for _, tb := range tables {
		name := f.Engine.Table(tb[0], tb[1])
		rows, err := db.QueryContext(ctx, "SELECT * FROM "+name+" WHERE 1 = 0")
		if err != nil {
			return nil, err
		}
		cols, err := rows.Columns()
		rows.Close()
		if err != nil {
			return nil, err
		}
		cols = slices.DeleteFunc(cols, func(c string) bool { return slices.Contains(clockColumns, c) })
		sum, err := rowsChecksum(ctx, db, "SELECT "+f.Engine.quoteAll(cols)+" FROM "+name)
		if err != nil {
			return nil, err
		}
		out["rows "+tb[0]+"."+tb[1]] = sum
	}
	return out, nil
}
