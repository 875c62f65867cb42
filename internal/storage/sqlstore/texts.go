package sqlstore

import (
	"encoding/binary"
	"sync"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// maxTexts bounds the statement texts a store keeps: a store with many
// tables or ad-hoc column sets rebuilds the least recently used ones
// instead of growing (docs/performance-transactions.md).
const maxTexts = 512

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
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.byKey[e.key]; old != nil {
		t.unlink(old)
	}
	t.byKey[e.key] = e
	t.pushFront(e)
	for len(t.byKey) > t.max {
		last := t.lru.prev
		t.unlink(last)
		delete(t.byKey, last.key)
	}
	return e
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
