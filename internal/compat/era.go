// Package compat builds databases as ScalarDB's JDBC storage lays them out,
// era by era and engine by engine, written with SQL by hand from ScalarDB's
// own DDL and Consensus Commit state rules (never through Stillpoint), and
// says beside each record how ScalarDB would settle it. The e2e suite
// (cmd/stillpoint/compat_e2e_test.go) runs Stillpoint against them.
//
// Facts: docs/research/scalardb-layouts.md (sections cited as §n), read from
// github.com/scalar-labs/scalardb at the release tags named below.
package compat

import (
	"cmp"
	"slices"
	"strings"
)

// Era is one ScalarDB release whose layout and state rules a fixture
// follows. Each field is a rule that changed between releases.
type Era struct {
	Name    string // short name used in test names: "3.4"
	Version string // the release whose source the fixture follows
	// MySQLNamespaceCharset: CREATE SCHEMA carries "character set utf8
	// COLLATE utf8_bin" (3.4.x to 3.12.0, §2).
	MySQLNamespaceCharset bool
	// QuotedIndexNames: secondary index names are quoted (3.6.0+, §3);
	// 3.4 and 3.5 leave them bare, so PostgreSQL folds them.
	QuotedIndexNames bool
	// HashSetBeforeOrder: before_ columns come in Java HashSet order
	// (3.7.0+, §4), else in user column order.
	HashSetBeforeOrder bool
	// RealFloat: FLOAT maps to REAL (3.13.0+), else FLOAT on PostgreSQL
	// and DOUBLE on MySQL (§3).
	RealFloat bool
	// MySQLKeyText is the MySQL/MariaDB type of a TEXT key column
	// (VARCHAR(64) up to 3.13.x, VARCHAR(128) from 3.14.0; §3).
	MySQLKeyText, MySQLKeyBlob string
	// MixedOrderIndexOnly: PostgreSQL's clustering-order index exists only
	// when ASC and DESC are mixed (3.13.0+), else whenever a key is DESC.
	MixedOrderIndexOnly bool
	// NewClusteringIndexName: the index is named
	// index_clustering_order_<ns>_<tbl> (3.15.8+, 3.16.5+), else
	// "<ns>.<tbl>_clustering_order_idx" (§3).
	NewClusteringIndexName bool
	// BeforeImageIndex: an indexed non-key column's before_ column is
	// indexed too (3.16.5+, §3).
	BeforeImageIndex bool
	// MetadataFirst: the metadata table is created before the user table
	// (3.13+), else lazily after it and its indexes (§1).
	MetadataFirst bool
	// GroupCommit: the coordinator has tx_child_ids and records carry
	// full ids <parent><Delimiter><child> (3.13+, opt-in, §5-6).
	GroupCommit bool
	Delimiter   string
	// OnePhase: one-phase commit is on (3.16+, opt-in, §7).
	OnePhase bool
	// ClearBeforeImage: commit, roll-forward and rollback set every
	// before_ column to NULL (3.16.0+, §9); earlier releases leave them.
	ClearBeforeImage bool
	// DeletePlaceholder: a delete of an absent record prepares a DELETED
	// placeholder (3.9.7+, §9).
	DeletePlaceholder bool
	// Imported: a table imported with importTable (3.10+, §8) holding rows
	// with NULL transaction metadata.
	Imported bool
}

// Eras are the layout eras issue 10 names: 3.4, 3.9, 3.13 with group
// commit (3.13.0: the ':' delimiter), 3.16 with one-phase commit, group
// commit ('$') and imported NULL-metadata rows.
var Eras = []Era{
	{Name: "3.4", Version: "3.4.9", MySQLNamespaceCharset: true,
		MySQLKeyText: "VARCHAR(64)", MySQLKeyBlob: "VARBINARY(64)"},
	{Name: "3.9", Version: "3.9.7", MySQLNamespaceCharset: true, QuotedIndexNames: true, HashSetBeforeOrder: true,
		MySQLKeyText: "VARCHAR(64)", MySQLKeyBlob: "VARBINARY(64)", DeletePlaceholder: true},
	{Name: "3.13", Version: "3.13.0", QuotedIndexNames: true, HashSetBeforeOrder: true, RealFloat: true,
		MySQLKeyText: "VARCHAR(64)", MySQLKeyBlob: "VARBINARY(64)", MixedOrderIndexOnly: true, MetadataFirst: true,
		GroupCommit: true, Delimiter: ":", DeletePlaceholder: true},
	// MariaDB through a jdbc:mariadb: URL: RdbEngineMariaDB's default key
	// size 128 (§3).
	{Name: "3.16", Version: "3.16.6", QuotedIndexNames: true, HashSetBeforeOrder: true, RealFloat: true,
		MySQLKeyText: "VARCHAR(128)", MySQLKeyBlob: "VARBINARY(128)", MixedOrderIndexOnly: true, NewClusteringIndexName: true,
		BeforeImageIndex: true, MetadataFirst: true, GroupCommit: true, Delimiter: "$", OnePhase: true,
		ClearBeforeImage: true, DeletePlaceholder: true, Imported: true},
}

// Engine is a database engine a fixture is written for.
type Engine struct {
	Name   string // Stillpoint's engine name: "postgres" or "mariadb"
	Driver string // database/sql driver: "pgx" or "mysql"
}

var (
	Postgres = Engine{Name: "postgres", Driver: "pgx"}
	MariaDB  = Engine{Name: "mariadb", Driver: "mysql"}
)

// Engines are the engines every era is built on.
var Engines = []Engine{Postgres, MariaDB}

func (e Engine) mysql() bool { return e.Name == "mariadb" }

// Q quotes an identifier as ScalarDB does: enclosed, never escaped.
func (e Engine) Q(name string) string {
	if e.mysql() {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

// Table quotes ns.tbl.
func (e Engine) Table(ns, tbl string) string { return e.Q(ns) + "." + e.Q(tbl) }

func (e Engine) quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = e.Q(n)
	}
	return strings.Join(q, ",")
}

// javaHashSetOrder is the iteration order of a java.util.HashSet built by
// adding names in order (Collectors.toSet(): default capacity 16, load
// factor 0.75): buckets in index order, insertion order within a bucket
// (a resize splits buckets keeping that order). ScalarDB 3.7+ orders the
// before_ columns this way (§4).
func javaHashSetOrder(names []string) []string {
	capacity := 16
	for float64(len(names)) > 0.75*float64(capacity) {
		capacity *= 2
	}
	bucket := func(s string) int {
		var h int32
		for _, c := range []rune(s) { // String.hashCode over UTF-16 units; our names are ASCII
			h = 31*h + int32(c)
		}
		u := uint32(h)
		return int((u ^ u>>16) & uint32(capacity-1))
	}
	out := slices.Clone(names)
	// A stable sort by bucket keeps insertion order within a bucket.
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(bucket(a), bucket(b)) })
	return out
}
