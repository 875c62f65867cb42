package consensus

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// Group-commit ids as ScalarDB writes them: a 24-character parent from
// [0-9A-Za-z], the delimiter, and the child (a UUID by default).
const (
	parent = "Ab3dE5gH7jK9mN1pQ3sT5vW7"
	child  = "0f8fad5b-d9cb-469f-a165-70867728950e"
)

func TestGroupCommitID(t *testing.T) {
	tests := []struct {
		name          string
		id            string
		parent, child string
		ok            bool
	}{
		{"3.13.2+ delimiter $", parent + "$" + child, parent, child, true},
		{"3.13.0, 3.13.1, 3.14.0 delimiter :", parent + ":" + child, parent, child, true},
		{"plain UUID", child, "", "", false},
		{"parent alone", parent, "", "", false},
		{"other delimiter", parent + "#" + child, "", "", false},
		{"delimiter one place early", parent[:23] + "$" + child, "", "", false},
		{"delimiter and empty child", parent + "$", parent, "", true},
		{"child holds the delimiter too", parent + "$a$b", parent, "a$b", true},
		// Java counts UTF-16 code units: é is one, 𝄞 is two.
		{"non-ASCII parent", strings.Repeat("é", 24) + "$c", strings.Repeat("é", 24), "c", true},
		{"surrogate pair counts twice", strings.Repeat("𝄞", 12) + "$c", strings.Repeat("𝄞", 12), "c", true},
		{"empty", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, c, ok := GroupCommitID(tt.id)
			if p != tt.parent || c != tt.child || ok != tt.ok {
				t.Errorf("GroupCommitID(%q) = %q, %q, %v; want %q, %q, %v", tt.id, p, c, ok, tt.parent, tt.child, tt.ok)
			}
		})
	}
}

func TestCoordinatorRowOf(t *testing.T) {
	tests := []struct {
		name string
		rec  storage.Record
		want CoordinatorRow
		ok   bool
	}{
		{"no row", nil, CoordinatorRow{}, false},
		{"table without tx_child_ids", storage.Record{schema.TxID: "x", schema.TxState: int32(Committed)}, CoordinatorRow{State: Committed}, true},
		{"NULL tx_child_ids", storage.Record{schema.TxID: "x", schema.CoordinatorChildIDs: nil, schema.TxState: int32(Aborted)}, CoordinatorRow{State: Aborted}, true},
		{"normal group", storage.Record{schema.TxID: parent, schema.CoordinatorChildIDs: "a,b", schema.TxState: int32(Committed)}, CoordinatorRow{State: Committed, Children: []string{"a", "b"}}, true},
		{"empty parts dropped", storage.Record{schema.TxID: parent, schema.CoordinatorChildIDs: ",a,,b,", schema.TxState: int32(Committed)}, CoordinatorRow{State: Committed, Children: []string{"a", "b"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := CoordinatorRowOf(tt.rec)
			if ok != tt.ok || got.State != tt.want.State || len(got.Children) != len(tt.want.Children) || (len(got.Children) > 0 && !reflect.DeepEqual(got.Children, tt.want.Children)) {
				t.Errorf("CoordinatorRowOf = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestDecide: the decision of a transaction from the coordinator rows, by
// ScalarDB's rules (Coordinator.getState / getStateForGroupCommit, v3.13.0
// to v3.19.0). Each expected outcome is ScalarDB's.
func TestDecide(t *testing.T) {
	full := parent + "$" + child
	colon := parent + ":" + child
	group := func(s State, children ...string) CoordinatorRow { return CoordinatorRow{State: s, Children: children} }
	tests := []struct {
		name string
		id   string
		rows map[string]CoordinatorRow
		keys []string // rows to read, in order
		want State
	}{
		{"plain id, committed", child, map[string]CoordinatorRow{child: group(Committed)}, []string{child}, Committed},
		{"plain id, aborted", child, map[string]CoordinatorRow{child: group(Aborted)}, []string{child}, Aborted},
		{"plain id, no row", child, nil, []string{child}, 0},
		{"normal group member", full, map[string]CoordinatorRow{parent: group(Committed, "x", child, "y")}, []string{parent, full}, Committed},
		{"normal group member, ':' delimiter", colon, map[string]CoordinatorRow{parent: group(Committed, child)}, []string{parent, colon}, Committed},
		{"normal group aborted as a whole", full, map[string]CoordinatorRow{parent: group(Aborted, child)}, []string{parent, full}, Aborted},
		{"child not in the parent's list", full, map[string]CoordinatorRow{parent: group(Committed, "x", "y")}, []string{parent, full}, 0},
		{"child id is only a prefix of a listed one", full, map[string]CoordinatorRow{parent: group(Committed, child+"0")}, []string{parent, full}, 0},
		{"child not listed, own row aborted", full, map[string]CoordinatorRow{parent: group(Committed, "x"), full: group(Aborted)}, []string{parent, full}, Aborted},
		{"delayed group keyed by the full id", full, map[string]CoordinatorRow{full: group(Committed)}, []string{parent, full}, Committed},
		{"parent ABORTED with no child ids decides nothing", full, map[string]CoordinatorRow{parent: group(Aborted)}, []string{parent, full}, 0},
		{"lazy-recovery abort: parent ABORTED with no child ids, then the full id", full, map[string]CoordinatorRow{parent: group(Aborted), full: group(Aborted)}, []string{parent, full}, Aborted},
		{"delayed commit after the parent was blocked", full, map[string]CoordinatorRow{parent: group(Aborted), full: group(Committed)}, []string{parent, full}, Committed},
		{"no row", full, nil, []string{parent, full}, 0},
		{"other delimiter is a plain id", parent + "#" + child, map[string]CoordinatorRow{parent: group(Committed, child)}, []string{parent + "#" + child}, 0},
		{"empty child is never listed", parent + "$", map[string]CoordinatorRow{parent: group(Committed, "")}, []string{parent, parent + "$"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DecisionKeys(tt.id); !reflect.DeepEqual(got, tt.keys) {
				t.Errorf("DecisionKeys = %q, want %q", got, tt.keys)
			}
			if got := Decide(tt.id, tt.rows); got != tt.want {
				t.Errorf("Decide = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAbortPuts: what aborting an expired transaction inserts, in ScalarDB
// 3.13.1+'s order (Coordinator.putStateForLazyRecoveryRollback).
func TestAbortPuts(t *testing.T) {
	full := parent + "$" + child
	tests := []struct {
		name string
		id   string
		keys []string
	}{
		{"plain id: one ABORTED row", child, []string{child}},
		{"group commit: the parent's ABORTED row with no child ids, then the full id's", full, []string{parent, full}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			puts := AbortPuts(tt.id, 7)
			var keys []string
			for _, p := range puts {
				keys = append(keys, p.Values[schema.TxID].(string))
				if p.Values[schema.TxState] != int32(Aborted) || p.Condition.Kind != storage.PutIfNotExists || p.Values[schema.CoordinatorCreatedAt] != int64(7) {
					t.Errorf("insert %+v, want ABORTED, put-if-not-exists, created at 7", p)
				}
				if _, ok := p.Values[schema.CoordinatorChildIDs]; ok {
					t.Errorf("insert %+v writes tx_child_ids; ScalarDB leaves it NULL and a 3.4 table has no such column", p)
				}
			}
			if !reflect.DeepEqual(keys, tt.keys) {
				t.Errorf("inserts keyed %q, want %q", keys, tt.keys)
			}
		})
	}
}
