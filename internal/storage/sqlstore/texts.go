package sqlstore

import (
	"context"
	"database/sql"
	"encoding/binary"
	"sync"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// MaxTexts bounds the statement texts a store keeps: a store with many
// tables or ad-hoc column sets rebuilds the least recently used ones
// instead of growing (docs/performance-transactions.md). Where they are
// prepared (StatementPreparer), each is prepared at most once per pooled
// connection: 512 texts × 64 connections stays below MariaDB's default
// max_prepared_stmt_count (16,382) only while a workload uses fewer than
// 256 shapes on every connection, so a failed prepare falls back to the
// text (Store.prepared).
const MaxTexts = 512

// StatementPreparer is an optional Dialect whose server parses every
// statement it is sent as text (MariaDB with the driver's client-side
// interpolation): the store prepares each cached text once on the pool and
// runs it with the binary protocol, one round trip per execution
// (database/sql prepares it again on each connection it runs on, once).
type StatementPreparer interface {
	PrepareStatements() bool
	// IsPrepareLimit recognises a server out of prepared statements
	// (max_prepared_stmt_count): nothing ran, the text may.
	IsPrepareLimit(err error) bool
}

// text is the SQL of one statement shape of one table: what building it
// from the metadata (quoting, placeholders, concatenation) gives, kept
// because that was a quarter of the process's CPU on the transaction path.
type text struct {
	key   string
	m     *storage.TableMetadata // the metadata it was built from
	query string
	cols  []string // a SELECT's columns, in the order of its rows
	// duplicateIsError: an insert's duplicate key surfaces as an error
	duplicateIsError bool
	prev, next       *text // the LRU list, most recently used first

	// The prepared statement, where the dialect prepares: refs and evicted
	// are guarded by texts.mu, stmt (set once) by prepareMu. An evicted
	// text's statement is closed once no execution holds it.
	prepareMu sync.Mutex
	stmt      *sql.Stmt
	refs      int
	evicted   bool
}

// texts is a bounded LRU of statement texts, safe for concurrent use.
// An entry is found by table and shape and used only if it was built from
// the metadata the caller holds: a table dropped and re-created (new
// metadata) never gets the old table's text.
type texts struct {
	mu    sync.Mutex
	max   int
	byKey map[string]*text
	lru   text // sentinel: lru.next is the most recent, lru.prev the least
}

func newTexts(max int) *texts {
	t := &texts{max: max, byKey: map[string]*text{}}
	t.lru.next, t.lru.prev = &t.lru, &t.lru
	return t
}

// get returns the text of the shape if it was built from m.
func (t *texts) get(sh *shape, m *storage.TableMetadata) *text {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byKey[string(sh.b)]
	if e == nil || e.m != m {
		return nil
	}
	t.unlink(e)
	t.pushFront(e)
	return e
}

// add keeps e (built from m for the shape) and returns it, evicting the
// least recently used text beyond the bound.
func (t *texts) add(sh *shape, m *storage.TableMetadata, e *text) *text {
	e.key, e.m = string(sh.b), m
	var closing []*text
	t.mu.Lock()
	if old := t.byKey[e.key]; old != nil {
		t.unlink(old)
		closing = t.evict(old, closing)
	}
	t.byKey[e.key] = e
	t.pushFront(e)
	for len(t.byKey) > t.max {
		last := t.lru.prev
		t.unlink(last)
		delete(t.byKey, last.key)
		closing = t.evict(last, closing)
	}
	t.mu.Unlock()
	closeStmts(closing)
	return e
}

// evict marks e evicted and adds it to closing if its statement is to be
// closed now (no execution holds it).
func (t *texts) evict(e *text, closing []*text) []*text {
	e.evicted = true
	if e.refs == 0 {
		closing = append(closing, e)
	}
	return closing
}

func closeStmts(es []*text) {
	for _, e := range es {
		e.prepareMu.Lock()
		stmt := e.stmt
		e.prepareMu.Unlock()
		if stmt != nil {
			stmt.Close()
		}
	}
}

// acquire holds e's statement for an execution; false if e was evicted
// (its statement closed or about to be).
func (t *texts) acquire(e *text) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.evicted {
		return false
	}
	e.refs++
	return true
}

// release lets go of e's statement after an execution, closing it if e
// was evicted meanwhile.
func (t *texts) release(e *text) {
	t.mu.Lock()
	e.refs--
	last := e.evicted && e.refs == 0
	t.mu.Unlock()
	if last {
		closeStmts([]*text{e})
	}
}

// prepare returns e's statement, preparing it on db the first time. The
// preparation is the caller's (its context, no lock held over the round
// trip): two callers may both prepare, and the loser closes its own.
func (e *text) prepare(ctx context.Context, db *sql.DB) (*sql.Stmt, error) {
	e.prepareMu.Lock()
	stmt := e.stmt
	e.prepareMu.Unlock()
	if stmt != nil {
		return stmt, nil
	}
	mine, err := db.PrepareContext(ctx, e.query)
	if err != nil {
		return nil, err
	}
	e.prepareMu.Lock()
	if e.stmt == nil {
		e.stmt = mine
	}
	stmt = e.stmt
	e.prepareMu.Unlock()
	if stmt != mine {
		mine.Close()
	}
	return stmt, nil
}

func (t *texts) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey)
}

func (t *texts) unlink(e *text) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (t *texts) pushFront(e *text) {
	e.prev, e.next = &t.lru, t.lru.next
	t.lru.next.prev = e
	t.lru.next = e
}

// shape is the key of a statement text: the table and everything else
// that decides the text (kind, columns, conditions' operators, order,
// limit), never a value.
type shape struct{ b []byte }

func newShape(kind byte, m *storage.TableMetadata) *shape {
	sh := &shape{b: make([]byte, 0, 96)}
	sh.b = append(sh.b, kind)
	sh.str(m.Namespace)
	sh.str(m.Table)
	return sh
}

func (sh *shape) str(s string) {
	sh.b = append(sh.b, s...)
	sh.b = append(sh.b, 0)
}

func (sh *shape) int(n int) { sh.b = binary.AppendUvarint(sh.b, uint64(n)) }

// col adds a column: its position in the table, or its name if it has
// none (a text naming an unknown column still gets its own key).
func (sh *shape) col(m *storage.TableMetadata, name string) {
	for i, c := range m.Columns {
		if c.Name == name {
			sh.int(i + 1)
			return
		}
	}
	sh.int(0)
	sh.str(name)
}

func (sh *shape) cols(m *storage.TableMetadata, names []string) {
	sh.int(len(names))
	for _, c := range names {
		sh.col(m, c)
	}
}
