package schema

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Target is where a schema is created: the stores, routed by namespace.
type Target interface {
	storage.Admin
	StoreName(namespace string) (string, error)
	// Ping connects to the named stores, reporting every one that fails.
	Ping(ctx context.Context, stores []string) error
	// Limits are those of the engine of the store a namespace maps to.
	Limits(namespace string) (storage.Limits, error)
}

// Action says what Create did with one table.
type Action struct {
	Table   string `json:"table"`
	Store   string `json:"store"`
	Outcome string `json:"outcome"` // created, unchanged
	Columns int    `json:"columns"`
}

// Create makes the tables of a schema file, and the coordinator table when
// any table is transactional. It checks everything first (every namespace
// has a store, every store answers, no table exists with another layout),
// so bad input changes nothing. Tables that already exist with the same
// layout are left as they are, so loading a file twice is harmless.
func Create(ctx context.Context, t Target, tables []Table) ([]Action, error) {
	layouts := make([]*storage.TableMetadata, 0, len(tables)+1)
	needCoordinator := false
	for _, tb := range tables {
		layouts = append(layouts, tb.Layout())
		needCoordinator = needCoordinator || tb.Transactional
	}
	if needCoordinator {
		layouts = append(layouts, Coordinator())
	}
	stores, err := reachStores(ctx, t, layouts)
	if err != nil {
		return nil, err
	}
	if err := CheckLimits(ctx, t, layouts); err != nil {
		return nil, err
	}
	actions := make([]Action, len(layouts))
	var errs []error
	for i, m := range layouts {
		actions[i] = Action{Table: m.FullName(), Store: stores[i], Outcome: "created", Columns: len(m.Columns)}
		existing, err := t.TableMetadata(ctx, m.Namespace, m.Table)
		if err != nil {
			return nil, err
		}
		if existing == nil {
			continue
		}
		if !matchesFile(existing, m) {
			errs = append(errs, fmt.Errorf("table %s already exists in store %s with a different layout; drop it first (stillpoint schema drop) or change the file", m.FullName(), stores[i]))
		}
		actions[i].Outcome = "unchanged"
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, m := range layouts {
		if actions[i].Outcome != "created" {
			continue
		}
		if err := t.CreateTable(ctx, m); err != nil {
			return actions[:i], err
		}
	}
	return actions, nil
}

// CheckLimits refuses the names that the engine of each table's store
// cannot hold, before anything is created: the generic rules, identifiers
// (namespace, table, every column with the before_ twins, generated index
// names) longer than the engine's limit, full names wider than its
// metadata column, and names that differ only in case, among the tables
// given and those that exist, where the engine compares names without case.
// A restore runs it against its target before loading.
func CheckLimits(ctx context.Context, t Target, layouts []*storage.TableMetadata) error {
	c := &limitCheck{t: t, seen: map[string]string{}}
	// Existing tables first, so a clash names the table that is there.
	namespaces, err := t.Namespaces(ctx)
	if err != nil {
		return err
	}
	for _, ns := range namespaces {
		names, err := t.Tables(ctx, ns)
		if err != nil {
			return err
		}
		for _, name := range names {
			c.table(&storage.TableMetadata{Namespace: ns, Table: name}, false)
		}
	}
	for _, m := range layouts {
		c.table(m, true)
	}
	return errors.Join(c.errs...)
}

type limitCheck struct {
	t    Target
	seen map[string]string // folded name in its scope -> the name as given
	errs []error
}

func (c *limitCheck) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// table checks one table; only new ones (not yet created) are measured.
func (c *limitCheck) table(m *storage.TableMetadata, isNew bool) {
	store, err := c.t.StoreName(m.Namespace)
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	l, err := c.t.Limits(m.Namespace)
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	fold := func(s string) string {
		if l.FoldsCase {
			return strings.ToLower(s)
		}
		return s
	}
	// unique records a name in a scope; a different name that folds the
	// same is a clash.
	unique := func(scope, what, name string) {
		key := store + "\x00" + scope + "\x00" + fold(name)
		prev, ok := c.seen[key]
		if !ok {
			c.seen[key] = name
		} else if prev != name {
			c.fail("%s %s and %s differ only in case: store %s compares names without case; rename one", what, prev, name, store)
		}
	}
	if l.NamespaceSeparator != "" && strings.Contains(m.Namespace, l.NamespaceSeparator) {
		c.fail("namespace %s: store %s names its tables namespace%stable, so a namespace may not contain %q: rename it", m.Namespace, store, l.NamespaceSeparator, l.NamespaceSeparator)
	}
	unique("namespace", "namespaces", m.Namespace)
	unique("table", "tables", m.Namespace+"."+m.Table)
	if !isNew {
		return
	}
	if err := m.Validate(); err != nil {
		c.errs = append(c.errs, err)
		return
	}
	if l.MaxFullTableName > 0 && len(m.FullName()) > l.MaxFullTableName {
		c.fail("table %s: its full name is %d characters, and store %s records it in scalardb.metadata's full_table_name, which holds %d: shorten the namespace or table name", m.FullName(), len(m.FullName()), store, l.MaxFullTableName)
	}
	long := func(what, name string) {
		if l.MaxName > 0 && len(name) > l.MaxName {
			c.fail("table %s: %s %q is %d bytes, and store %s holds names of at most %d: shorten it", m.FullName(), what, name, len(name), store, l.MaxName)
		}
	}
	if l.NamespaceSeparator == "" {
		long("namespace", m.Namespace)
		long("table name", m.Table)
	} else {
		long("table name", m.Namespace+l.NamespaceSeparator+m.Table)
	}
	for _, col := range m.Columns {
		long("column", col.Name)
		unique("column "+m.FullName(), "columns of "+m.FullName()+":", col.Name)
	}
	// The names the store's ScalarDB release gives its indexes (from
	// 3.15.8 and 3.16.5 long ones are shortened to a hash).
	indexes := []string{}
	for _, ix := range m.Indexes {
		indexes = append(indexes, l.ScalarDB.IndexName(m.Namespace, m.Table, ix))
	}
	if l.ClusteringOrderIndex && l.ScalarDB.ClusteringOrderIndex(m) {
		indexes = append(indexes, l.ScalarDB.ClusteringIndexName(m.Namespace, m.Table))
	}
	for _, ix := range indexes {
		long("generated index name", ix)
		key := store + "\x00index\x00" + fold(m.Namespace) + "\x00" + fold(ix)
		if prev, ok := c.seen[key]; ok && prev != m.FullName() {
			c.fail("table %s: generated index name %q is also that of table %s in store %s: rename one of the tables or columns", m.FullName(), ix, prev, store)
		}
		c.seen[key] = m.FullName()
	}
}

// Drop removes the tables of a schema file (and namespaces left empty).
// The coordinator table stays unless dropCoordinator: other schemas'
// transactions may still need its decisions.
func Drop(ctx context.Context, t Target, tables []Table, dropCoordinator bool) ([]Action, error) {
	layouts := make([]*storage.TableMetadata, 0, len(tables)+1)
	for _, tb := range tables {
		layouts = append(layouts, tb.User)
	}
	if dropCoordinator {
		layouts = append(layouts, Coordinator())
	}
	stores, err := reachStores(ctx, t, layouts)
	if err != nil {
		return nil, err
	}
	var actions []Action
	namespaces := map[string]bool{}
	for i, m := range layouts {
		existing, err := t.TableMetadata(ctx, m.Namespace, m.Table)
		if err != nil {
			return actions, err
		}
		if existing == nil {
			actions = append(actions, Action{Table: m.FullName(), Store: stores[i], Outcome: "absent"})
			continue
		}
		if err := t.DropTable(ctx, m.Namespace, m.Table); err != nil {
			return actions, err
		}
		actions = append(actions, Action{Table: m.FullName(), Store: stores[i], Outcome: "dropped", Columns: len(existing.Columns)})
		namespaces[m.Namespace] = true
	}
	for ns := range namespaces {
		left, err := t.Tables(ctx, ns)
		if err != nil {
			return actions, err
		}
		if len(left) == 0 {
			if err := t.DropNamespace(ctx, ns); err != nil {
				return actions, err
			}
		}
	}
	return actions, nil
}

// reachStores names the store of each table and connects to them all.
func reachStores(ctx context.Context, t Target, layouts []*storage.TableMetadata) ([]string, error) {
	stores := make([]string, len(layouts))
	var errs []error
	for i, m := range layouts {
		name, err := t.StoreName(m.Namespace)
		if err != nil {
			errs = append(errs, fmt.Errorf("table %s: %w", m.FullName(), err))
		}
		stores[i] = name
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return stores, t.Ping(ctx, uniqueValues(stores))
}

func uniqueValues(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

// withoutScalarDBExtras is a table as a schema file describes it: what
// some ScalarDB releases add on their own is left out, so a file loaded
// again into the database another release made adds nothing and refuses
// nothing (docs/schema-files.md). Those extras are the coordinator's
// tx_child_ids column (3.13+ with group commit) and, in a transactional
// table, the index on before_<col> beside each index on <col> (3.16.5+,
// 3.17.3+, 3.18+). want is the table the file asks for.
func withoutScalarDBExtras(m, want *storage.TableMetadata) *storage.TableMetadata {
	c := *m
	if c.Namespace == CoordinatorNamespace && c.Table == CoordinatorTable && !slices.ContainsFunc(want.Columns, isChildIDs) {
		c.Columns = slices.DeleteFunc(slices.Clone(c.Columns), isChildIDs)
	}
	if IsTransactional(want) {
		c.Indexes = slices.DeleteFunc(slices.Clone(c.Indexes), func(ix string) bool {
			col, ok := strings.CutPrefix(ix, BeforePrefix)
			return ok && slices.Contains(want.Indexes, col)
		})
	}
	return &c
}

// matchesFile reports whether an existing table is the one a file asks
// for, whichever release made it.
func matchesFile(existing, want *storage.TableMetadata) bool {
	return SameLayout(withoutScalarDBExtras(existing, want), withoutScalarDBExtras(want, want))
}

func isChildIDs(c storage.Column) bool { return c.Name == CoordinatorChildIDs }

// SameLayout reports whether two tables have the same columns, keys and
// indexes. Column order does not count: stored metadata lists the key
// columns first, as ScalarDB's does, whatever order a schema file used.
func SameLayout(a, b *storage.TableMetadata) bool {
	ia, ib := slices.Clone(a.Indexes), slices.Clone(b.Indexes)
	slices.Sort(ia)
	slices.Sort(ib)
	byName := func(x, y storage.Column) int { return strings.Compare(x.Name, y.Name) }
	ca, cb := slices.Clone(a.Columns), slices.Clone(b.Columns)
	slices.SortFunc(ca, byName)
	slices.SortFunc(cb, byName)
	return a.FullName() == b.FullName() &&
		slices.Equal(ca, cb) &&
		slices.Equal(a.PartitionKey, b.PartitionKey) &&
		slices.Equal(a.ClusteringKey, b.ClusteringKey) &&
		slices.Equal(ia, ib)
}
