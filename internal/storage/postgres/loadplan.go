package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// loadPlan is how a load prepares its table, decided from the catalog
// under the load's lock.
type loadPlan struct {
	table string
	// freeze: the table is empty and plain, so the load truncates it (in
	// its own transaction) and COPY freezes the rows it writes.
	freeze bool
	// keys are the table's keys and indexes, dropped before the COPY and
	// built after it; none where one of them could not be rebuilt exactly
	// (the COPY then maintains them as it goes).
	keys []key
}

// key is a primary key, unique or exclusion constraint, or an index.
type key struct {
	name, drop, create string
}

// before are the statements that run before the COPY.
func (p loadPlan) before() []string {
	var qs []string
	for _, k := range p.keys {
		qs = append(qs, k.drop)
	}
	if p.freeze {
		qs = append(qs, "TRUNCATE "+p.table)
	}
	return qs
}

// plainQuery: an ordinary table, neither partition nor parent nor child,
// that no foreign key references (TRUNCATE and dropping its keys would
// fail or cascade) and whose replica identity is not an index.
const plainQuery = `SELECT c.relkind = 'r' AND NOT c.relispartition AND c.relreplident <> 'i'
 AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.confrelid = c.oid)
 AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = c.oid OR h.inhparent = c.oid)
 FROM pg_class c WHERE c.oid = $1::regclass`

// keysQuery lists the table's indexes in the order they were made, each
// with how to drop it and make it again (its constraint's definition, or
// the index's), and whether that gives back exactly the same catalog: a
// valid index in the default tablespace, not CLUSTERed on, not the
// replica identity, without a comment or a statistics target, that no
// other object depends on, whose constraint (if any) bears its name, is
// not inherited and has no index options (pg_get_constraintdef leaves them
// out).
const keysQuery = `SELECT quote_ident(ic.relname),
 CASE WHEN k.oid IS NULL THEN 'DROP INDEX ' || quote_ident(n.nspname) || '.' || quote_ident(ic.relname)
  ELSE 'ALTER TABLE ' || $2 || ' DROP CONSTRAINT ' || quote_ident(k.conname) END,
 CASE WHEN k.oid IS NULL THEN pg_get_indexdef(i.indexrelid)
  ELSE 'ALTER TABLE ' || $2 || ' ADD CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid) END,
 i.indisvalid AND i.indisready AND NOT i.indisclustered AND NOT i.indisreplident AND ic.reltablespace = 0
 AND (k.oid IS NULL OR (k.conname = ic.relname AND k.coninhcount = 0 AND ic.reloptions IS NULL))
 AND NOT EXISTS (SELECT 1 FROM pg_description d WHERE (d.classoid = 'pg_class'::regclass AND d.objoid = i.indexrelid)
  OR (d.classoid = 'pg_constraint'::regclass AND d.objoid = k.oid))
 AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0)
 AND NOT EXISTS (SELECT 1 FROM pg_depend dp WHERE dp.refclassid = 'pg_class'::regclass AND dp.refobjid = i.indexrelid)
 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
 LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')
 WHERE i.indrelid = $1::regclass ORDER BY i.indexrelid`

// planLoad locks the table for the load's transaction and decides how to
// load it. Only an empty plain table is truncated and has its keys
// deferred; any other is loaded by a plain COPY.
func planLoad(ctx context.Context, tx pgx.Tx, table string) (loadPlan, error) {
	p := loadPlan{table: table}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return p, err
	}
	var plain, empty bool
	if err := tx.QueryRow(ctx, plainQuery, table).Scan(&plain); err != nil {
		return p, err
	}
	if err := tx.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM "+table+")").Scan(&empty); err != nil {
		return p, err
	}
	if !plain || !empty {
		return p, nil
	}
	p.freeze = true
	rows, err := tx.Query(ctx, keysQuery, table, table)
	if err != nil {
		return p, err
	}
	defer rows.Close()
	exact := true
	for rows.Next() {
		var k key
		var ok bool
		if err := rows.Scan(&k.name, &k.drop, &k.create, &ok); err != nil {
			return p, err
		}
		exact = exact && ok
		p.keys = append(p.keys, k)
	}
	if err := rows.Err(); err != nil {
		return p, err
	}
	if !exact {
		p.keys = nil
	}
	return p, nil
}
