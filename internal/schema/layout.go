// Package schema reads ScalarDB schema-loader files and lays tables out as
// ScalarDB does: transactional tables carry the transaction metadata and a
// before image, and the coordinator table records commit decisions.
package schema

import (
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Transaction metadata columns (DESIGN.md section 2).
const (
	TxID          = "tx_id"
	TxState       = "tx_state"
	TxVersion     = "tx_version"
	TxPreparedAt  = "tx_prepared_at"
	TxCommittedAt = "tx_committed_at"
	BeforePrefix  = "before_"
)

// TxColumns are the transaction metadata columns every transactional table
// carries, each with a before_ twin.
var TxColumns = []storage.Column{
	{Name: TxID, Type: storage.Text},
	{Name: TxState, Type: storage.Int},
	{Name: TxVersion, Type: storage.Int},
	{Name: TxPreparedAt, Type: storage.BigInt},
	{Name: TxCommittedAt, Type: storage.BigInt},
}

// The coordinator table: one row per decided transaction.
const (
	// CoordinatorNamespace is the coordinator's namespace as Stillpoint names
	// it; a store maps it to the configured one (storage.Layout).
	CoordinatorNamespace = storage.DefaultCoordinatorNamespace
	CoordinatorTable     = "state"
	// CoordinatorChildIDs is the column of a coordinator table created by
	// ScalarDB 3.13+ with group commit enabled: the child ids of a normal
	// group, comma-joined, NULL otherwise. Tables created without group
	// commit lack it, and Stillpoint never writes it.
	CoordinatorChildIDs  = "tx_child_ids"
	CoordinatorCreatedAt = "tx_created_at"
)

// Coordinator returns the metadata of coordinator.state.
func Coordinator() *storage.TableMetadata {
	return &storage.TableMetadata{
		Namespace: CoordinatorNamespace,
		Table:     CoordinatorTable,
		Columns: []storage.Column{
			{Name: TxID, Type: storage.Text},
			{Name: TxState, Type: storage.Int},
			{Name: CoordinatorCreatedAt, Type: storage.BigInt},
		},
		PartitionKey: []string{TxID},
	}
}

// IsReserved reports whether a column of table m belongs to the
// transaction layout rather than to the user, by ScalarDB's rule: the ten
// metadata columns (tx_* and before_tx_*), and before_<x> where m has a
// column x (its before image). A user column before_x with no column x is
// the user's own, and its twin is before_before_x. m may be the user's
// table (as a schema file declares it) or its full layout.
func IsReserved(m *storage.TableMetadata, column string) bool {
	for _, c := range TxColumns {
		if column == c.Name || column == BeforePrefix+c.Name {
			return true
		}
	}
	x, ok := strings.CutPrefix(column, BeforePrefix)
	if !ok {
		return false
	}
	_, ok = m.Column(x)
	return ok
}

// Transactional is TransactionalAs the newest ScalarDB release.
func Transactional(user *storage.TableMetadata) *storage.TableMetadata {
	return TransactionalAs(user, Latest)
}

// TransactionalAs returns the full layout of a transactional table as
// ScalarDB release v's Consensus Commit admin builds it
// (ConsensusCommitUtils.buildTransactionTableMetadata): the user's
// columns, the transaction metadata, its before image, then before_<col>
// for each non-key column (in Java HashSet order from 3.7); from 3.16.5 an
// index on a non-key column has a twin on its before_ column.
func TransactionalAs(user *storage.TableMetadata, v Version) *storage.TableMetadata {
	m := *user
	m.Columns = append([]storage.Column{}, user.Columns...)
	m.Columns = append(m.Columns, TxColumns...)
	for _, c := range TxColumns {
		m.Columns = append(m.Columns, storage.Column{Name: BeforePrefix + c.Name, Type: c.Type})
	}
	before := user.NonKeyColumns()
	if v.HashSetBeforeOrder() {
		before = hashSetOrder(before)
	}
	for _, c := range before {
		m.Columns = append(m.Columns, storage.Column{Name: BeforePrefix + c.Name, Type: c.Type})
	}
	m.Indexes = slices.Clone(user.Indexes)
	if v.BeforeImageIndex() {
		for _, ix := range user.Indexes {
			if !user.IsKey(ix) {
				m.Indexes = append(m.Indexes, BeforePrefix+ix)
			}
		}
	}
	return &m
}

// hashSetOrder is the order in which a java.util.HashSet of the columns'
// names, built by adding them in order, iterates: by bucket, and in
// insertion order within a bucket (a resize keeps it). The table grows
// from 16 buckets by doubling while more than 3/4 full; a name's bucket
// is the low bits of its String.hashCode() spread by h ^ h>>>16.
func hashSetOrder(cols []storage.Column) []storage.Column {
	buckets := 16
	for 4*len(cols) > 3*buckets {
		buckets *= 2
	}
	bucket := func(c storage.Column) int {
		var h int32
		for _, u := range utf16.Encode([]rune(c.Name)) {
			h = 31*h + int32(u)
		}
		return int((uint32(h) ^ uint32(h)>>16) & uint32(buckets-1))
	}
	out := slices.Clone(cols)
	slices.SortStableFunc(out, func(a, b storage.Column) int { return bucket(a) - bucket(b) })
	return out
}

// IsTransactional recognises a table laid out by Transactional.
func IsTransactional(m *storage.TableMetadata) bool {
	for _, c := range append(TxColumns, storage.Column{Name: BeforePrefix + TxID}) {
		if _, ok := m.Column(c.Name); !ok {
			return false
		}
	}
	return true
}

// UserColumns strips the transaction layout from a table's columns.
func UserColumns(m *storage.TableMetadata) []storage.Column {
	if !IsTransactional(m) {
		return m.Columns
	}
	var out []storage.Column
	for _, c := range m.Columns {
		if !IsReserved(m, c.Name) {
			out = append(out, c)
		}
	}
	return out
}
