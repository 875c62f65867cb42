package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// MetadataNamespace is the default schema of the metadata table.
const MetadataNamespace = storage.DefaultMetadataSchema

// Store is a storage.Store over database/sql.
type Store struct {
	db      *sql.DB
	dialect Dialect
	name    string // for error messages: the store's name in the config
	layout  storage.Layout

	mu       sync.Mutex
	metadata map[string]*storage.TableMetadata
	texts    *texts
	// prepares: cached texts run as prepared statements (StatementPreparer)
	prepares bool
}

var _ storage.Store = (*Store)(nil)

// New wraps an open database. name identifies the store in errors; l
// names the metadata schema and the coordinator namespace (empty fields:
// ScalarDB's defaults).
func New(db *sql.DB, d Dialect, name string, l storage.Layout) *Store {
	sp, ok := d.(StatementPreparer)
	return &Store{db: db, dialect: d, name: name, layout: l.WithDefaults(), metadata: map[string]*storage.TableMetadata{},
		texts: newTexts(MaxTexts), prepares: ok && sp.PrepareStatements()}
}

// PhysicalNamespace is the namespace's name in the database: the
// coordinator's is configurable, as in ScalarDB, while the layers above
// always call it storage.DefaultCoordinatorNamespace.
func (s *Store) PhysicalNamespace(namespace string) string {
	if namespace == storage.DefaultCoordinatorNamespace {
		return s.layout.CoordinatorNamespace
	}
	return namespace
}

// Table is the quoted name of a table in the database.
func (s *Store) Table(namespace, table string) string {
	return s.dialect.Table(s.PhysicalNamespace(namespace), table)
}

// fullName is a table's key in the metadata table.
func (s *Store) fullName(namespace, table string) string {
	return s.PhysicalNamespace(namespace) + "." + table
}

// DB exposes the pool, for engine-specific work such as snapshots.
func (s *Store) DB() *sql.DB { return s.db }

// Dialect returns the engine's dialect.
func (s *Store) Dialect() Dialect { return s.dialect }

func (s *Store) Close() error { return s.db.Close() }

func (s *Store) Info(ctx context.Context) (storage.EngineInfo, error) {
	var v string
	if err := s.db.QueryRowContext(ctx, s.dialect.VersionQuery()).Scan(&v); err != nil {
		return storage.EngineInfo{}, s.wrap(err, "read server version")
	}
	return storage.EngineInfo{Engine: s.dialect.Engine(), Version: v}, nil
}

func (s *Store) wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	if s.dialect.IsRetriable(err) {
		return fmt.Errorf("store %s (%s): %s: %w: %w", s.name, s.dialect.Engine(), what, storage.ErrRetriable, err)
	}
	return fmt.Errorf("store %s (%s): %s: %w", s.name, s.dialect.Engine(), what, err)
}

// meta returns a table's metadata, loading it from scalardb.metadata once.
func (s *Store) meta(ctx context.Context, namespace, table string) (*storage.TableMetadata, error) {
	m, err := s.TableMetadata(ctx, namespace, table)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("store %s: %s.%s: %w", s.name, namespace, table, storage.ErrTableNotFound)
	}
	return m, nil
}

func (s *Store) Get(ctx context.Context, g storage.Get) (storage.Record, error) {
	q, err := s.getQuery(ctx, g)
	if err != nil {
		return nil, err
	}
	recs, err := s.run(ctx, q)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

// getQuery is the SELECT of one record.
func (s *Store) getQuery(ctx context.Context, g storage.Get) (selectQuery, error) {
	m, err := s.meta(ctx, g.Namespace, g.Table)
	if err != nil {
		return selectQuery{}, err
	}
	key, err := storage.CheckGet(m, g)
	if err != nil {
		return selectQuery{}, err
	}
	var w where
	w.keyEquals(s.dialect, m, key, m.KeyColumns())
	return s.selectQuery(m, g.Projection, w, nil, 0), nil
}

var _ storage.EachGetter = (*Store)(nil)

// GetEach reads the records in one pipeline where the dialect has one,
// otherwise one query each, in parallel.
func (s *Store) GetEach(ctx context.Context, gs []storage.Get) ([]storage.Record, error) {
	qs := make([]selectQuery, len(gs))
	for i, g := range gs {
		q, err := s.getQuery(ctx, g)
		if err != nil {
			return nil, err
		}
		qs[i] = q
	}
	out := make([]storage.Record, len(gs))
	if len(qs) == 1 { // in this goroutine: no other to start and wait for
		recs, err := s.run(ctx, qs[0])
		if len(recs) > 0 {
			out[0] = recs[0]
		}
		return out, err
	}
	p, ok := s.dialect.(Pipeliner)
	if !ok {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(16)
		for i, q := range qs {
			g.Go(func() error {
				recs, err := s.run(gctx, q)
				if len(recs) > 0 {
					out[i] = recs[0]
				}
				return err
			})
		}
		return out, g.Wait()
	}
	queries, args := make([]string, len(qs)), make([][]any, len(qs))
	for i, q := range qs {
		queries[i], args[i] = q.sql, q.args
	}
	err := p.QueryPipeline(ctx, s.db, queries, args, func(i int, rows Rows) error {
		recs, err := s.scanRows(rows, qs[i])
		if len(recs) > 0 {
			out[i] = recs[0]
		}
		return err
	})
	if err != nil {
		return nil, s.wrap(err, fmt.Sprintf("read %d records of %s and others", len(qs), qs[0].m.FullName()))
	}
	return out, nil
}

func (s *Store) Scan(ctx context.Context, sc storage.Scan) ([]storage.Record, error) {
	m, err := s.meta(ctx, sc.Namespace, sc.Table)
	if err != nil {
		return nil, err
	}
	checked, err := storage.CheckScan(m, sc)
	if err != nil {
		return nil, err
	}
	part, start, end := checked.Partition, checked.Start, checked.End
	var w where
	w.keyEquals(s.dialect, m, part, m.PartitionKey)
	w.bound(s.dialect, m, start, ">")
	w.bound(s.dialect, m, end, "<")
	return s.query(ctx, m, sc.Projection, w, storage.ScanOrdering(m, sc.Ordering), sc.Limit)
}

func (s *Store) ScanAll(ctx context.Context, sc storage.ScanAll) ([]storage.Record, error) {
	return s.ScanAllWhere(ctx, sc, nil)
}

func (s *Store) query(ctx context.Context, m *storage.TableMetadata, projection []string, w where, order []storage.ClusteringKey, limit int) ([]storage.Record, error) {
	return s.run(ctx, s.selectQuery(m, projection, w, order, limit))
}

// selectQuery is a SELECT and what its rows hold.
type selectQuery struct {
	m    *storage.TableMetadata
	cols []string
	sql  string
	args []any
	text *text
}

func (s *Store) selectQuery(m *storage.TableMetadata, projection []string, w where, order []storage.ClusteringKey, limit int) selectQuery {
	sh := newShape('s', m)
	sh.cols(m, projection)
	w.shape(sh, m)
	sh.int(len(order))
	for _, o := range order {
		sh.col(m, o.Name)
		sh.int(int(o.Order))
	}
	sh.int(limit)
	t := s.texts.get(sh, m)
	if t == nil {
		t = s.texts.add(sh, m, s.selectText(m, projection, w, order, limit))
	}
	return selectQuery{m: m, cols: t.cols, sql: t.query, args: w.args, text: t}
}

func (s *Store) selectText(m *storage.TableMetadata, projection []string, w where, order []storage.ClusteringKey, limit int) *text {
	cols := slices.Clone(projection)
	if len(cols) == 0 {
		cols = make([]string, len(m.Columns))
		for i, c := range m.Columns {
			cols[i] = c.Name
		}
	}
	q := "SELECT " + strings.Join(quoteAll(s.dialect, cols), ", ") + " FROM " + s.Table(m.Namespace, m.Table) + w.sql(s.dialect, 0)
	if len(order) > 0 {
		by := make([]string, len(order))
		for i, o := range order {
			by[i] = s.dialect.Quote(o.Name) + " " + o.Order.String()
		}
		q += " ORDER BY " + strings.Join(by, ", ")
	}
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	return &text{query: q, cols: cols}
}

func (s *Store) run(ctx context.Context, q selectQuery) ([]storage.Record, error) {
	scan := func(rows *sql.Rows, err error) ([]storage.Record, error) {
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		return s.scanRows(rows, q)
	}
	out, err := runPrepared(ctx, s, s.db, q.text, func(stmt *sql.Stmt) ([]storage.Record, error) {
		return scan(stmt.QueryContext(ctx, q.args...))
	}, func() ([]storage.Record, error) {
		return scan(s.db.QueryContext(ctx, q.sql, q.args...))
	})
	return out, s.wrap(err, "read "+q.m.FullName())
}

// runPrepared runs a cached text through its prepared statement on e (the
// pool or a local transaction) where the store prepares, and as text
// otherwise: where the dialect does not prepare, the text was evicted
// meanwhile, or the statement cannot be prepared (the text then reports
// the error, or runs if the server only ran out of prepared statements).
func runPrepared[T any](ctx context.Context, s *Store, e any, t *text, viaStmt func(*sql.Stmt) (T, error), viaText func() (T, error)) (T, error) {
	if t == nil || !s.prepares || !s.texts.acquire(t) {
		return viaText()
	}
	defer s.texts.release(t)
	stmt, err := t.prepare(ctx, s.db)
	if err != nil {
		return viaText()
	}
	if tx, ok := e.(*sql.Tx); ok {
		stmt = tx.StmtContext(ctx, stmt)
	}
	out, err := viaStmt(stmt)
	if err != nil && s.dialect.(StatementPreparer).IsPrepareLimit(err) {
		return viaText()
	}
	return out, err
}

// Rows is what scanning needs of a result: database/sql's or a driver's.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

func (s *Store) scanRows(rows Rows, q selectQuery) ([]storage.Record, error) {
	var out []storage.Record
	for rows.Next() {
		rec, err := s.scanRow(rows, q.m, q.cols)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

func (s *Store) scanRow(rows Rows, m *storage.TableMetadata, cols []string) (storage.Record, error) {
	dests := make([]any, len(cols))
	values := make([]func() (any, error), len(cols))
	for i, c := range cols {
		t, _ := m.ColumnType(c)
		dests[i], values[i] = s.dialect.ScanTarget(t)
	}
	if err := rows.Scan(dests...); err != nil {
		return nil, err
	}
	rec := make(storage.Record, len(cols))
	for i, c := range cols {
		v, err := values[i]()
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c, err)
		}
		rec[c] = v
	}
	return rec, nil
}

func (s *Store) Put(ctx context.Context, p storage.Put) error {
	return s.Mutate(ctx, []storage.Mutation{p})
}

func (s *Store) Delete(ctx context.Context, d storage.Delete) error {
	return s.Mutate(ctx, []storage.Mutation{d})
}

// statement is one prepared-in-memory SQL mutation.
type statement struct {
	query string
	args  []any
	// how the outcome shows that the condition failed
	needRows         bool // zero rows affected means no mutation
	duplicateIsError bool
	table            string
	cond             storage.ConditionKind
	lockKey          string // see lockKey
	text             *text  // the cached text of query
}

func (s *Store) Mutate(ctx context.Context, ms []storage.Mutation) error {
	if len(ms) == 0 {
		return nil
	}
	stmts, err := s.buildAll(ctx, ms)
	if err != nil {
		return err
	}
	if len(stmts) == 1 {
		return s.exec(ctx, s.db, stmts[0])
	}
	err = s.inTx(ctx, stmts, inOrder(len(stmts)))
	if f, ok := err.(*storage.FailedMutationError); ok {
		return f.Err
	}
	return err
}

func (s *Store) buildAll(ctx context.Context, ms []storage.Mutation) ([]statement, error) {
	stmts := make([]statement, 0, len(ms))
	for _, mu := range ms {
		st, err := s.build(ctx, mu)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, st)
	}
	return stmts, nil
}

// inTx runs the statements in the given order in one local transaction,
// and rolls it back at the first failed condition, which it names.
func (s *Store) inTx(ctx context.Context, stmts []statement, order []int) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err, "begin")
	}
	for _, i := range order {
		if err := s.exec(ctx, tx, stmts[i]); err != nil {
			_ = tx.Rollback()
			if errors.Is(err, storage.ErrNoMutation) {
				return &storage.FailedMutationError{Index: i, Err: err}
			}
			return err
		}
	}
	return s.wrap(tx.Commit(), "commit")
}

var _ storage.AtomicMutator = (*Store)(nil)

// MutateAtomic applies the mutations in one local transaction, the first
// one first and the others in lock order. Where the dialect pipelines, it
// is one round trip: each conditional statement is made to fail when it
// writes no row, which undoes the whole pipeline; elsewhere BEGIN, one
// statement each, COMMIT (docs/performance-transactions.md).
func (s *Store) MutateAtomic(ctx context.Context, ms []storage.Mutation) error {
	if len(ms) == 0 {
		return nil
	}
	stmts, err := s.buildAll(ctx, ms)
	if err != nil {
		return err
	}
	order := lockOrder(stmts, 1)
	p, ok := s.dialect.(Pipeliner)
	if !ok {
		return s.inTx(ctx, stmts, order)
	}
	queries, args := make([]string, len(stmts)), make([][]any, len(stmts))
	for j, i := range order {
		queries[j], args[j] = stmts[i].query, stmts[i].args
		if stmts[i].needRows {
			queries[j] = p.AssertWrote(queries[j])
		}
	}
	_, err = p.ExecPipeline(ctx, s.db, queries, args)
	var pe *PipelineError
	if errors.As(err, &pe) && p.IsAssertion(pe.Err) {
		st := stmts[order[pe.Index]]
		return &storage.FailedMutationError{Index: order[pe.Index], Err: &storage.NoMutationError{Table: st.table, Condition: st.cond}}
	}
	if err != nil {
		return s.wrap(err, fmt.Sprintf("write %d records of %s and others in one transaction", len(stmts), stmts[0].table))
	}
	return nil
}

// inOrder is 0, 1, ..., n-1.
func inOrder(n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	return order
}

// lockOrder is the order to run statements in: the first keep stay in
// place, the rest by table and key, so that two transactions or pipelines
// never wait for each other's rows in a cycle (a deadlock PostgreSQL
// breaks only after deadlock_timeout). Statements of one record keep
// their order (an insert, then its delete).
func lockOrder(stmts []statement, keep int) []int {
	order := inOrder(len(stmts))
	slices.SortStableFunc(order[min(keep, len(order)):], func(a, b int) int { return strings.Compare(stmts[a].lockKey, stmts[b].lockKey) })
	return order
}

// Pipeliner is an optional Dialect: an engine that sends several
// statements in one round trip (PostgreSQL's extended protocol pipeline).
type Pipeliner interface {
	// ExecPipeline runs the queries in order, in one round trip and one
	// implicit transaction, and returns each one's rows affected. An error
	// of any query undoes them all.
	ExecPipeline(ctx context.Context, db *sql.DB, queries []string, args [][]any) ([]int64, error)
	// QueryPipeline runs the queries in one round trip and hands each
	// one's rows to scan, with its index.
	QueryPipeline(ctx context.Context, db *sql.DB, queries []string, args [][]any, scan func(i int, rows Rows) error) error
	// AssertWrote wraps a conditional write so that it fails, undoing the
	// pipeline, when it writes no row; IsAssertion recognises that failure.
	AssertWrote(query string) string
	IsAssertion(err error) bool
}

// PipelineError is the error of query Index of a pipeline.
type PipelineError struct {
	Index int
	Err   error
}

func (e *PipelineError) Error() string {
	return fmt.Sprintf("statement %d of a pipeline: %v", e.Index, e.Err)
}

func (e *PipelineError) Unwrap() error { return e.Err }

var _ storage.EachMutator = (*Store)(nil)

// MutateEach applies each mutation on its own condition: in one pipeline
// where the dialect has one, otherwise one autocommit statement each, in
// parallel (docs/performance-transactions.md).
func (s *Store) MutateEach(ctx context.Context, ms []storage.Mutation) ([]error, error) {
	stmts := make([]statement, 0, len(ms))
	pipelined := len(ms) > 1
	for _, mu := range ms {
		st, err := s.build(ctx, mu)
		if err != nil {
			return nil, err
		}
		// A duplicate key would undo the whole pipeline, not only its
		// own statement.
		pipelined = pipelined && !st.duplicateIsError
		stmts = append(stmts, st)
	}
	errs := make([]error, len(stmts))
	if len(stmts) == 1 { // in this goroutine: no other to start and wait for
		errs[0] = s.exec(ctx, s.db, stmts[0])
		return errs, nil
	}
	p, ok := s.dialect.(Pipeliner)
	if !ok || !pipelined {
		var g errgroup.Group
		g.SetLimit(16)
		for i, st := range stmts {
			g.Go(func() error { errs[i] = s.exec(ctx, s.db, st); return nil })
		}
		return errs, g.Wait()
	}
	order := lockOrder(stmts, 0)
	queries, args := make([]string, len(stmts)), make([][]any, len(stmts))
	for j, i := range order {
		queries[j], args[j] = stmts[i].query, stmts[i].args
	}
	affected, err := p.ExecPipeline(ctx, s.db, queries, args)
	if err != nil {
		return nil, s.wrap(err, fmt.Sprintf("write %d records of %s and others", len(stmts), stmts[0].table))
	}
	for j, i := range order {
		if st := stmts[i]; st.needRows && affected[j] == 0 {
			errs[i] = &storage.NoMutationError{Table: st.table, Condition: st.cond}
		}
	}
	return errs, nil
}

// lockKey places a mutation's row in the order pipelines lock rows in.
func lockKey(mu storage.Mutation, m *storage.TableMetadata) string {
	var key map[string]any
	switch mu := mu.(type) {
	case storage.Put:
		key = mu.Values
	case storage.Delete:
		key = mu.Key
	}
	b := make([]byte, 0, 64)
	b = append(b, m.Namespace...)
	b = append(b, '.')
	b = append(b, m.Table...)
	for _, c := range m.KeyColumns() {
		b = append(b, 0)
		// What fmt's %v prints, without its reflection for the usual key types.
		switch v := key[c].(type) {
		case string:
			b = append(b, v...)
		case int32:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		default:
			b = fmt.Appendf(b, "%v", v)
		}
	}
	return string(b)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Store) exec(ctx context.Context, e execer, st statement) error {
	res, err := runPrepared(ctx, s, e, st.text, func(stmt *sql.Stmt) (sql.Result, error) {
		return stmt.ExecContext(ctx, st.args...)
	}, func() (sql.Result, error) {
		return e.ExecContext(ctx, st.query, st.args...)
	})
	if err != nil {
		if st.duplicateIsError && s.dialect.IsDuplicateKey(err) {
			return &storage.NoMutationError{Table: st.table, Condition: st.cond}
		}
		return s.wrap(err, "write "+st.table)
	}
	if !st.needRows {
		return nil
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(err, "write "+st.table)
	}
	if n == 0 {
		return &storage.NoMutationError{Table: st.table, Condition: st.cond}
	}
	return nil
}

func (s *Store) build(ctx context.Context, mu storage.Mutation) (statement, error) {
	if err := storage.CheckCondition(mu); err != nil {
		return statement{}, err
	}
	ns, tbl := storage.Target(mu)
	m, err := s.meta(ctx, ns, tbl)
	if err != nil {
		return statement{}, err
	}
	var st statement
	switch mu := mu.(type) {
	case storage.Put:
		st, err = s.buildPut(m, mu)
	case storage.Delete:
		st, err = s.buildDelete(m, mu)
	default:
		return statement{}, fmt.Errorf("unknown mutation %T", mu)
	}
	st.lockKey = lockKey(mu, m)
	return st, err
}

func (s *Store) buildPut(m *storage.TableMetadata, p storage.Put) (statement, error) {
	values, err := storage.NormalizeRecord(m, p.Values)
	if err != nil {
		return statement{}, err
	}
	exprs, err := storage.NormalizeExprs(m, p.Condition.Exprs)
	if err != nil {
		return statement{}, err
	}
	keyCols := m.KeyColumns()
	var cols, update []string
	for _, c := range m.Columns { // ordinal order keeps the SQL text stable
		if _, ok := values[c.Name]; ok {
			cols = append(cols, c.Name)
			if !slices.Contains(keyCols, c.Name) {
				update = append(update, c.Name)
			}
		}
	}
	st := statement{table: m.FullName(), cond: p.Condition.Kind}
	var w where
	if p.Condition.Kind == storage.PutIfExists || p.Condition.Kind == storage.PutIf {
		w.args = s.args(m, values, update)
		w.keyEquals(s.dialect, m, values, keyCols)
		w.exprs(s.dialect, m, exprs)
		st.needRows = true
	} else {
		w.args = s.args(m, values, cols)
	}
	st.args = w.args
	sh := newShape('p', m)
	sh.int(int(p.Condition.Kind))
	sh.cols(m, cols)
	w.shape(sh, m)
	t := s.texts.get(sh, m)
	if t == nil {
		t = s.texts.add(sh, m, s.putText(m, p.Condition.Kind, cols, keyCols, update, w))
	}
	st.query, st.duplicateIsError, st.text = t.query, t.duplicateIsError, t
	if p.Condition.Kind == storage.PutIfNotExists {
		st.needRows = !st.duplicateIsError
	}
	return st, nil
}

// putText is the SQL of a Put of the columns cols on the condition kind;
// w is a conditional update's key and conditions.
func (s *Store) putText(m *storage.TableMetadata, kind storage.ConditionKind, cols, keyCols, update []string, w where) *text {
	table := s.Table(m.Namespace, m.Table)
	switch kind {
	case storage.Unconditional:
		return &text{query: s.dialect.Upsert(table, quoteAll(s.dialect, cols), quoteAll(s.dialect, keyCols), quoteAll(s.dialect, update))}
	case storage.PutIfNotExists:
		q, dup := s.dialect.InsertIfNotExists(table, quoteAll(s.dialect, cols), quoteAll(s.dialect, keyCols))
		return &text{query: q, duplicateIsError: dup}
	}
	var set []string
	for i, c := range update {
		set = append(set, s.dialect.Quote(c)+" = "+s.dialect.Placeholder(i+1))
	}
	if len(set) == 0 { // only the key given: a no-op write that still checks existence
		k := s.dialect.Quote(keyCols[0])
		set = append(set, k+" = "+k)
	}
	return &text{query: "UPDATE " + table + " SET " + strings.Join(set, ", ") + w.sql(s.dialect, len(update))}
}

func (s *Store) buildDelete(m *storage.TableMetadata, d storage.Delete) (statement, error) {
	key, err := storage.NormalizeKey(m, d.Key, m.KeyColumns(), "delete")
	if err != nil {
		return statement{}, err
	}
	exprs, err := storage.NormalizeExprs(m, d.Condition.Exprs)
	if err != nil {
		return statement{}, err
	}
	var w where
	w.keyEquals(s.dialect, m, key, m.KeyColumns())
	w.exprs(s.dialect, m, exprs)
	sh := newShape('d', m)
	w.shape(sh, m)
	t := s.texts.get(sh, m)
	if t == nil {
		t = s.texts.add(sh, m, &text{query: "DELETE FROM " + s.Table(m.Namespace, m.Table) + w.sql(s.dialect, 0)})
	}
	return statement{
		text:     t,
		query:    t.query,
		args:     w.args,
		needRows: d.Condition.Kind != storage.Unconditional,
		table:    m.FullName(),
		cond:     d.Condition.Kind,
	}, nil
}

func (s *Store) args(m *storage.TableMetadata, values map[string]any, cols []string) []any {
	out := make([]any, len(cols))
	for i, c := range cols {
		t, _ := m.ColumnType(c)
		out[i] = s.dialect.ToDriver(t, values[c])
	}
	return out
}

// ColumnList is the table's columns, quoted, in order and separated by
// commas: the column list of a bulk load (INSERT, COPY, LOAD DATA).
func ColumnList(d Dialect, m *storage.TableMetadata) string {
	cols := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		cols[i] = d.Quote(c.Name)
	}
	return strings.Join(cols, ", ")
}

func quoteAll(d Dialect, cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = d.Quote(c)
	}
	return out
}

// where accumulates a WHERE clause's conditions and their arguments; its
// text is built only when the statement's is not cached (texts.go).
type where struct {
	conds []cond
	args  []any
}

// cond is one condition: column op placeholder, or column op alone (IS
// NULL, IS NOT NULL).
type cond struct {
	column, op string
	noValue    bool
}

func (w *where) add(d Dialect, m *storage.TableMetadata, column, op string, v any) {
	t, _ := m.ColumnType(column)
	w.args = append(w.args, d.ToDriver(t, v))
	w.conds = append(w.conds, cond{column: column, op: op})
}

func (w *where) keyEquals(d Dialect, m *storage.TableMetadata, key map[string]any, cols []string) {
	for _, c := range cols {
		w.add(d, m, c, "=", key[c])
	}
}

// bound adds a clustering range end; dir is ">" for a start, "<" for an end.
func (w *where) bound(d Dialect, m *storage.TableMetadata, b *storage.Bound, dir string) {
	if b == nil {
		return
	}
	cols := storage.BoundColumns(m, b)
	last := len(cols) - 1
	w.keyEquals(d, m, b.Key, cols[:last])
	op := dir
	if b.Inclusive {
		op += "="
	}
	w.add(d, m, cols[last], op, b.Key[cols[last]])
}

var sqlOps = map[storage.Op]string{storage.EQ: "=", storage.NE: "<>", storage.GT: ">", storage.GTE: ">=", storage.LT: "<", storage.LTE: "<="}

func (w *where) exprs(d Dialect, m *storage.TableMetadata, exprs []storage.Expr) {
	for _, e := range exprs {
		switch e.Op {
		case storage.IsNull:
			w.conds = append(w.conds, cond{column: e.Column, op: "IS NULL", noValue: true})
		case storage.IsNotNull:
			w.conds = append(w.conds, cond{column: e.Column, op: "IS NOT NULL", noValue: true})
		default:
			w.add(d, m, e.Column, sqlOps[e.Op], e.Value)
		}
	}
}

// shape adds the conditions' columns and operators to a text's key.
func (w *where) shape(sh *shape, m *storage.TableMetadata) {
	sh.int(len(w.conds))
	for _, c := range w.conds {
		sh.col(m, c.column)
		sh.str(c.op)
	}
}

// sql is the WHERE clause; n placeholders come before it.
func (w *where) sql(d Dialect, n int) string {
	if len(w.conds) == 0 {
		return ""
	}
	conds := make([]string, len(w.conds))
	for i, c := range w.conds {
		conds[i] = d.Quote(c.column) + " " + c.op
		if !c.noValue {
			n++
			conds[i] += " " + d.Placeholder(n)
		}
	}
	return " WHERE " + strings.Join(conds, " AND ")
}
