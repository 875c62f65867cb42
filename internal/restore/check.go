package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// sameLayout reports whether a table's metadata as read back from a store
// is the manifest's: the same columns and types, keys in the same order,
// the same indexes. Stores read columns back in their own order (keys
// first), so order matters only for keys.
func sameLayout(got, want *storage.TableMetadata) bool {
	if len(got.Columns) != len(want.Columns) || !slices.Equal(got.PartitionKey, want.PartitionKey) ||
		!slices.Equal(got.ClusteringKey, want.ClusteringKey) || len(got.Indexes) != len(want.Indexes) {
		return false
	}
	for _, c := range want.Columns {
		if g, ok := got.Column(c.Name); !ok || g.Type != c.Type {
			return false
		}
	}
	for _, ix := range want.Indexes {
		if !slices.Contains(got.Indexes, ix) {
			return false
		}
	}
	return true
}

// validateTargetTables is where every check that a backup's tables fit the
// target stores belongs; it runs before anything is created, so a backup
// that cannot be held restores nothing: names (lengths, generated index
// names, case collisions per engine, as a schema load checks them), the
// cross-engine type mapping, and the lengths of key values.
func validateTargetTables(ctx context.Context, r *repo.Repository, target Target, p *plan) error {
	layouts := make([]*storage.TableMetadata, len(p.tables))
	for i, t := range p.tables {
		layouts[i] = &t.backup.Metadata
	}
	if err := schema.CheckLimits(ctx, target, layouts); err != nil {
		return fmt.Errorf("restore: the backup's tables do not fit the target stores, nothing was restored: %w", err)
	}
	var errs []error
	for _, t := range p.tables {
		if err := checkMapping(t); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 { // before key lengths, which may read the backup again
		return errors.Join(errs...)
	}
	for _, t := range p.tables {
		if err := checkKeyLengths(ctx, r, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkKeyLengths compares the longest TEXT/BLOB key and indexed values of
// a table with its target engine's bounds. Manifests record them; for one
// written before they did, the table's stream is read once to measure. A
// table whose DDL is replayed gets the source's widths, and needs no check.
func checkKeyLengths(ctx context.Context, r *repo.Repository, t *table) error {
	limit := t.limits.MaxKeyLength
	if limit == 0 || t.replay { // replayed, the columns are as wide as the source's
		return nil
	}
	lengths := t.backup.KeyLengths
	if lengths == nil {
		k := backup.NewKeyLengths(&t.backup.Metadata)
		if err := readTable(ctx, r, t.backup, k.Add); err != nil {
			return fmt.Errorf("restore %s: measure key lengths: %w", t.full, err)
		}
		lengths = k.Max
	}
	var errs []error
	for _, c := range t.backup.Metadata.Columns {
		l, ok := lengths[c.Name]
		if !ok {
			continue
		}
		switch {
		case c.Type == storage.Text && l.Chars > limit:
			errs = append(errs, fmt.Errorf("restore: table %s column %s holds a TEXT key of %d characters; store %s keeps at most %d in key and indexed columns: restore into another engine",
				t.full, c.Name, l.Chars, t.store, limit))
		case c.Type == storage.Blob && l.Bytes > limit:
			errs = append(errs, fmt.Errorf("restore: table %s column %s holds a BLOB key of %d bytes; store %s keeps at most %d in key and indexed columns: restore into another engine",
				t.full, c.Name, l.Bytes, t.store, limit))
		}
	}
	return errors.Join(errs...)
}

// checkTargets refuses, unless force, targets that hold anything the
// restore would replace: tables with data or another layout, and tables
// that exist without metadata (which only --force may drop).
func checkTargets(ctx context.Context, st storage.Store, p *plan, force bool) error {
	if force {
		return nil
	}
	var errs []error
	full := 0 // tables with the backup's layout that hold data
	for _, t := range p.tables {
		meta := &t.backup.Metadata
		existing, err := t.d.TableMetadata(ctx, meta.Namespace, meta.Table)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if existing == nil {
			exists, err := t.d.HasTable(ctx, meta.Namespace, meta.Table)
			if err != nil {
				errs = append(errs, err)
			} else if exists {
				errs = append(errs, fmt.Errorf("restore: table %s exists in store %s without ScalarDB metadata (left by an interrupted schema load, or not made by Stillpoint); drop it, or pass --force to replace it", t.full, t.store))
			}
			continue
		}
		if !sameLayout(existing, meta) {
			errs = append(errs, fmt.Errorf("restore: table %s exists in store %s with another layout than the backup's; drop it, or pass --force to replace it", t.full, t.store))
			continue
		}
		recs, err := st.ScanAll(ctx, storage.ScanAll{Namespace: meta.Namespace, Table: meta.Table, Limit: 1})
		if err != nil {
			errs = append(errs, err)
		} else if len(recs) > 0 {
			full++
			errs = append(errs, fmt.Errorf("restore: table %s already holds data; restore into empty stores, or pass --force to replace it", t.full))
		}
	}
	if full == len(p.tables) && len(errs) == full {
		// What a complete restore of this backup looks like, once its
		// journal is gone: say so rather than list every table.
		return fmt.Errorf("restore: every table of backup %s already holds data in these stores (a complete restore of it, e.g. by a run stopped after it finished, or other data); nothing was changed: check them with verify (read-only), or pass --force to restore again", p.journal.backup)
	}
	return errors.Join(errs...)
}

// readTable streams a table's rows out of the repository, verifying
// every chunk, and checks the count against the manifest.
func readTable(ctx context.Context, r *repo.Repository, t backup.TableBackup, fn func(row []any)) error {
	var n int64
	err := backup.EachRow(ctx, r, t, func(row []any) {
		fn(row)
		n++
	})
	if err == nil && n != t.Rows {
		err = fmt.Errorf("%d records in the repository, the manifest says %d", n, t.Rows)
	}
	return err
}
