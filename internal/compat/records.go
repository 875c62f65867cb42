package compat

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Names are the physical names a fixture uses: the user namespace, the
// metadata schema (scalar.db.jdbc.table_metadata.schema) and the
// coordinator namespace (scalar.db.consensus_commit.coordinator.namespace).
type Names struct{ Namespace, Metadata, Coordinator string }

// Fixture is a ScalarDB database of one era on one engine: the statements
// that build it and every record with the outcome ScalarDB gives it.
type Fixture struct {
	Era        Era
	Engine     Engine
	Names      Names
	Tables     []Table // the user tables
	Statements []string
	Records    []Record
}

// Record is one record the fixture writes, and how ScalarDB settles it.
type Record struct {
	Name  string // the state it is written in
	Table string // in Names.Namespace
	Key   map[string]any
	TxID  string // its tx_id; "" for NULL metadata
	// Pending: PREPARED or DELETED, older than the lifetime: a read-only
	// verify lists it, lazy recovery settles it.
	Pending bool
	// Want is the record once settled: checked columns and their values
	// (nil for SQL NULL). A nil Want means the record is gone.
	Want map[string]any
	// Decision is what the coordinator says for TxID once settled, read
	// by ScalarDB's lookup (Fixture.Decision): Committed, Aborted, or
	// NoDecision when there must be no row (one-phase commit, imported
	// rows).
	Decision string
	Rule     string // where the outcome comes from
}

// Coordinator answers (tx_state 3 and 4; §5).
const (
	Committed  = "COMMITTED"
	Aborted    = "ABORTED"
	NoDecision = "NONE"
)

// Transaction states (core/.../api/TransactionState.java, §4).
const (
	statePrepared  = 1
	stateDeleted   = 2
	stateCommitted = 3
	stateAborted   = 4
)

// t0 is when the fixture's transactions ran (2023-11-14): every prepared
// record is far older than ScalarDB's 15 s lifetime
// (cc/RecoveryHandler.TRANSACTION_LIFETIME_MILLIS in every era, §9).
const t0 = int64(1700000000000)

// The user tables every fixture holds: a partition key with a secondary
// index on a TEXT column, and a TEXT partition key with mixed clustering
// orders (ASC, DESC) and the other types.
var (
	accounts = Table{Name: "accounts", Partition: []string{"id"}, Indexes: []string{"owner"},
		Columns: []Column{{Name: "id", Type: "INT"}, {Name: "owner", Type: "TEXT"}, {Name: "balance", Type: "INT"}}}
	events = Table{Name: "events", Partition: []string{"device"}, Clustering: []Order{{Name: "day"}, {Name: "seq", Desc: true}},
		Columns: []Column{{Name: "device", Type: "TEXT"}, {Name: "day", Type: "INT"}, {Name: "seq", Type: "BIGINT"},
			{Name: "reading", Type: "DOUBLE"}, {Name: "ratio", Type: "FLOAT"}, {Name: "note", Type: "TEXT"}, {Name: "raw", Type: "BLOB"}, {Name: "flag", Type: "BOOLEAN"}}}
	// legacy is a table its owner made before ScalarDB (3.16 era only).
	legacy = Table{Name: "legacy", Partition: []string{"id"}, Imported: true,
		Columns: []Column{{Name: "id", Type: "INT", Physical: "INT"}, {Name: "note", Type: "TEXT", Physical: "VARCHAR(50)"}, {Name: "qty", Type: "INT", Physical: "INT"}}}
)

// meta is a record's transaction metadata; a nil *meta is NULL metadata.
type meta struct {
	id                  string
	state, version      int
	prepared, committed int64 // 0: NULL
}

// image is a record's after image: its non-key values and metadata.
type image struct {
	vals map[string]any
	meta *meta
}

// Build returns the fixture of era on engine with names n.
func Build(era Era, engine Engine, n Names) *Fixture {
	f := &Fixture{Era: era, Engine: engine, Names: n, Tables: []Table{accounts, events}}
	if era.Imported {
		f.Tables = append(f.Tables, legacy)
	}
	f.Statements = append(f.Statements, f.createNamespace(n.Namespace))
	for _, t := range f.Tables {
		if t.Imported {
			f.Statements = append(f.Statements, f.importTable(n.Namespace, t)...)
		} else {
			f.Statements = append(f.Statements, f.createTable(n.Namespace, t, true)...)
		}
	}
	f.Statements = append(f.Statements, f.createCoordinator()...)
	w := &writer{f: f, coord: map[string]coordRow{}}
	w.records()
	for _, id := range slices.Sorted(maps.Keys(w.coord)) {
		f.Statements = append(f.Statements, w.coordInsert(id))
	}
	return f
}

type coordRow struct {
	state    int
	children string // "" for NULL
}

// writer writes the records of a fixture and their coordinator rows.
type writer struct {
	f     *Fixture
	coord map[string]coordRow
	n     int // transactions so far
}

// txID is a fresh transaction id: a UUID, as ScalarDB makes them.
func (w *writer) txID() string {
	w.n++
	return fmt.Sprintf("0c0ffee0-0000-4000-8000-%012d", w.n)
}

// groupID is a fresh full group-commit id: a 24-character parent, the
// era's delimiter, a UUID child (§6).
func (w *writer) groupID(parent string) string {
	return parent + w.f.Era.Delimiter + w.txID()
}

func parentOf(full string) (parent, child string) { return full[:24], full[25:] }

func (w *writer) decide(id string, state int) { w.coord[id] = coordRow{state: state} }

func (w *writer) coordInsert(id string) string {
	f, r := w.f, w.coord[id]
	cols, vals := []string{"tx_id", "tx_state", "tx_created_at"}, []string{quote(id), strconv.Itoa(r.state), strconv.FormatInt(t0+9000, 10)}
	if f.Era.GroupCommit {
		children := "NULL"
		if r.children != "" {
			children = quote(r.children)
		}
		cols, vals = append(cols, "tx_child_ids"), append(vals, children)
	}
	return "INSERT INTO " + f.Engine.Table(f.Names.Coordinator, "state") + " (" + f.Engine.quoteAll(cols) + ") VALUES (" + strings.Join(vals, ",") + ")"
}

// committed is a record's first committed image, as an insert leaves it:
// version 1, no before image (before ScalarDB 3.16 commit leaves before_
// columns as prepare wrote them; an insert wrote none).
func (w *writer) committed(vals map[string]any) image {
	id := w.txID()
	w.decide(id, stateCommitted)
	return image{vals: vals, meta: &meta{id: id, state: stateCommitted, version: 1, prepared: t0, committed: t0 + 5}}
}

// settled is how a record ends once ScalarDB has settled it.
type settled struct {
	name    string
	present bool
	a       image // its after image then
	// b is the before image it keeps then, as 3.4 to 3.15 keep it (nil:
	// none). 3.16+ NULL it; Check accepts NULL in every era.
	b        *image
	decision string
	rule     string
}

// write inserts a record with after image a and before image b (nil:
// none), and adds it to the fixture with its outcome s.
func (w *writer) write(t Table, key map[string]any, a image, b *image, s settled) {
	f := w.f
	cols := map[string]any{}
	maps.Copy(cols, key)
	maps.Copy(cols, a.vals)
	setMeta(cols, "", a.meta)
	if b != nil {
		for c, v := range b.vals {
			cols["before_"+c] = v
		}
		if b.meta == nil {
			// Prepare over a NULL-metadata row: before_tx_version = 0,
			// the other before_tx_* stay NULL (PrepareMutationComposer
			// .createBeforeColumns, 3.10+; §8).
			cols["before_tx_version"] = 0
		} else {
			setMeta(cols, "before_", b.meta)
		}
	}
	names := slices.Sorted(maps.Keys(cols))
	lits := make([]string, len(names))
	for i, c := range names {
		lits[i] = f.literal(cols[c])
	}
	f.Statements = append(f.Statements, "INSERT INTO "+f.Engine.Table(f.Names.Namespace, t.Name)+" ("+f.Engine.quoteAll(names)+") VALUES ("+strings.Join(lits, ",")+")")
	r := Record{Name: s.name, Table: t.Name, Key: key, Decision: s.decision, Rule: s.rule}
	if a.meta != nil {
		r.TxID = a.meta.id
		r.Pending = a.meta.state == statePrepared || a.meta.state == stateDeleted
	}
	if s.present {
		r.Want = want(s.a, s.b)
	}
	f.Records = append(f.Records, r)
}

func setMeta(cols map[string]any, prefix string, m *meta) {
	if m == nil {
		return
	}
	cols[prefix+"tx_id"], cols[prefix+"tx_state"], cols[prefix+"tx_version"] = m.id, m.state, m.version
	cols[prefix+"tx_prepared_at"] = m.prepared
	if m.committed != 0 {
		cols[prefix+"tx_committed_at"] = m.committed
	}
}

// want is the checked columns of a record with after image a and before
// image b.
func want(a image, b *image) map[string]any {
	out := map[string]any{}
	for c, v := range a.vals {
		switch v.(type) {
		case int, int64, string, nil: // floats, blobs and booleans print differently per engine
			out[c] = v
		}
	}
	out["tx_id"], out["tx_state"], out["tx_version"] = nil, nil, nil
	out["before_tx_id"], out["before_tx_version"] = nil, nil
	if a.meta != nil {
		out["tx_id"], out["tx_state"], out["tx_version"] = a.meta.id, a.meta.state, a.meta.version
	}
	switch {
	case b != nil && b.meta != nil:
		out["before_tx_id"], out["before_tx_version"] = b.meta.id, b.meta.version
	case b != nil:
		out["before_tx_version"] = 0 // the before image of a NULL-metadata row (§8)
	}
	return out
}

// literal renders a value as an SQL literal for the engine.
func (f *Fixture) literal(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return quote(v)
	case []byte:
		if f.Engine.mysql() {
			return "X'" + hex.EncodeToString(v) + "'"
		}
		return `'\x` + hex.EncodeToString(v) + `'::bytea`
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(v)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
