package consensus

import (
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// groupParentLen is the length of a group-commit parent id
// (DefaultGroupCommitKeyManipulator.PRIMARY_KEY_SIZE, v3.15.0).
const groupParentLen = 24

// GroupCommitID splits a ScalarDB group-commit full id,
// <parent><delimiter><child>, by ScalarDB's test (isFullKey, v3.13.0 to
// v3.19.0): longer than 24 characters with the delimiter at index 24. The
// delimiter is ':' in 3.13.0, 3.13.1 and 3.14.0 and '$' from 3.13.2, 3.14.1
// and 3.15.0; both are accepted, so records written before an upgrade are
// read by the rules their writer followed. Characters count as Java's do
// (UTF-16 code units).
func GroupCommitID(id string) (parent, child string, ok bool) {
	u := utf16.Encode([]rune(id))
	if len(u) <= groupParentLen || (u[groupParentLen] != ':' && u[groupParentLen] != '$') {
		return "", "", false
	}
	return string(utf16.Decode(u[:groupParentLen])), string(utf16.Decode(u[groupParentLen+1:])), true
}

// CoordinatorRow is a coordinator row as decisions need it.
type CoordinatorRow struct {
	State State
	// Children lists the child ids of a normal group commit (nil: none).
	Children []string
}

// CoordinatorRowOf reads a stored coordinator row (false: no row). Child
// ids are split as ScalarDB splits them (Coordinator.State: on ",",
// empty strings dropped).
func CoordinatorRowOf(r storage.Record) (CoordinatorRow, bool) {
	if r == nil {
		return CoordinatorRow{}, false
	}
	row := CoordinatorRow{State: DecisionOf(r)}
	if s, ok := r[schema.CoordinatorChildIDs].(string); ok {
		row.Children = slices.DeleteFunc(strings.Split(s, ","), func(c string) bool { return c == "" })
	}
	return row, true
}

// DecisionKeys are the coordinator rows that may hold the decision of
// transaction id, in the order to read them: a group-commit id's parent
// row first, then its own row (Coordinator.getStateForGroupCommit, v3.15.0;
// 3.13 and 3.14 read the full id first, with the same answer, since a
// transaction is never both in a normal group and a delayed one).
func DecisionKeys(id string) []string {
	if parent, _, ok := GroupCommitID(id); ok {
		return []string{parent, id}
	}
	return []string{id}
}

// Decide is the decision of transaction id given coordinator rows by
// tx_id (0: the rows decide nothing). A group-commit transaction is decided
// by its parent's row only if that row lists its child id; a parent row
// that does not (another group's, or the ABORTED row with no children that
// a lazy recovery writes to block a late group commit) says nothing about
// it, and its own row, keyed by the full id, decides.
func Decide(id string, rows map[string]CoordinatorRow) State {
	if parent, child, ok := GroupCommitID(id); ok {
		if p, ok := rows[parent]; ok && child != "" && slices.Contains(p.Children, child) {
			return p.State
		}
	}
	return rows[id].State
}

// AbortPuts are the coordinator inserts that abort an expired transaction
// with no decision, in ScalarDB's order (putStateForLazyRecoveryRollback,
// v3.13.1 to v3.18.x; forceAbort in v3.19.0). For a group-commit id: first
// an ABORTED row keyed by the parent with no child ids, which makes a late
// normal group commit of that parent fail, then an ABORTED row keyed by
// the full id, which decides. A driver applies them in order, and after an
// insert that fails its condition reads the decision again and stops if
// the rows now decide (the group committed or aborted first).
func AbortPuts(id string, now int64) []storage.Put {
	out := []storage.Put{}
	for _, k := range DecisionKeys(id) {
		out = append(out, CoordinatorPut(k, Aborted, now))
	}
	return out
}

// CoordinatorPut records a decision: the single insert that is the commit
// point (or the abort point) of a transaction. It writes no child ids, so
// it fits coordinator tables with and without tx_child_ids.
func CoordinatorPut(id string, state State, now int64) storage.Put {
	return storage.Put{
		Namespace: schema.CoordinatorNamespace, Table: schema.CoordinatorTable,
		Values:    storage.Record{schema.TxID: id, schema.TxState: int32(state), schema.CoordinatorCreatedAt: now},
		Condition: storage.Condition{Kind: storage.PutIfNotExists},
	}
}

// CoordinatorGet reads one coordinator row.
func CoordinatorGet(id string) storage.Get {
	return storage.Get{Namespace: schema.CoordinatorNamespace, Table: schema.CoordinatorTable, Key: storage.Key{schema.TxID: id}}
}

// DecisionOf reads the state in a coordinator row; absent (nil) is 0.
func DecisionOf(row storage.Record) State {
	if row == nil {
		return 0
	}
	if v, ok := row[schema.TxState].(int32); ok {
		return State(v)
	}
	return 0
}
