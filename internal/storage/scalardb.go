package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf16"
)

// ScalarDBVersion is the ScalarDB 3.x release whose rules apply (config
// scalardb_version): how its schema loader reads files, and the DDL its
// JDBC admin issues, which Stillpoint's CreateTable reproduces
// (docs/layout.md). Patch < 0 ("3.16") means the newest patch of the line.
// The zero value is LatestScalarDB.
type ScalarDBVersion struct{ Minor, Patch int }

// LatestScalarDB is the newest ScalarDB release whose rules were checked;
// it is the default.
var LatestScalarDB = ScalarDBVersion{Minor: 19, Patch: -1}

func (v ScalarDBVersion) String() string {
	v = v.orLatest()
	if v.Patch < 0 {
		return fmt.Sprintf("3.%d", v.Minor)
	}
	return fmt.Sprintf("3.%d.%d", v.Minor, v.Patch)
}

func (v ScalarDBVersion) orLatest() ScalarDBVersion {
	if v.Minor == 0 {
		return LatestScalarDB
	}
	return v
}

// ParseScalarDBVersion reads "3.N" (the newest patch of 3.N) or "3.N.P";
// "" is LatestScalarDB.
func ParseScalarDBVersion(s string) (ScalarDBVersion, error) {
	if s == "" {
		return LatestScalarDB, nil
	}
	var minor, patch int
	n, err := fmt.Sscanf(s, "3.%d.%d", &minor, &patch)
	if err != nil && n == 1 && strings.Count(s, ".") == 1 {
		err, patch = nil, -1
	}
	if err != nil || minor < 4 || patch < 0 && fmt.Sprintf("3.%d", minor) != s || patch >= 0 && fmt.Sprintf("3.%d.%d", minor, patch) != s {
		return ScalarDBVersion{}, fmt.Errorf("ScalarDB version %q: want a release from 3.4 on, such as 3.6, 3.16.5 or %s (Stillpoint reads the layouts of ScalarDB 3.4 and later)", s, LatestScalarDB)
	}
	return ScalarDBVersion{Minor: minor, Patch: patch}, nil
}

// AtLeast reports whether v is release 3.minor.patch or later; a version
// without a patch is the newest of its line.
func (v ScalarDBVersion) AtLeast(minor, patch int) bool {
	v = v.orLatest()
	return v.Minor > minor || v.Minor == minor && (v.Patch < 0 || v.Patch >= patch)
}

// fixedIn reports whether v has a change released in one patch of each
// of several lines at once (3.15.8, 3.16.5, ...): every later line has it.
func (v ScalarDBVersion) fixedIn(patches ...[2]int) bool {
	v = v.orLatest()
	if v.Minor > patches[len(patches)-1][0] {
		return true
	}
	for _, p := range patches {
		if v.Minor == p[0] {
			return v.AtLeast(p[0], p[1])
		}
	}
	return false
}

// The rules below are ScalarDB's, release by release, as read from its
// source (docs/research/scalardb-layouts.md, section in brackets).

// TransactionDefault is what a schema file's absent "transaction" means:
// false up to 3.6, true from 3.7 (sl/TableSchema.java; §10).
func (v ScalarDBVersion) TransactionDefault() bool { return v.AtLeast(7, 0) }

// HashSetBeforeOrder: the before_<col> columns come in Java HashSet order
// from 3.7.0 (Collectors.toSet()), in column order before (§4).
func (v ScalarDBVersion) HashSetBeforeOrder() bool { return v.AtLeast(7, 0) }

// BeforeImageIndex: an index on a non-key column of a transactional table
// has a twin on before_<col> from 3.16.5, 3.17.3 and 3.18.0
// (ConsensusCommitUtils.buildTransactionTableMetadata; §3).
func (v ScalarDBVersion) BeforeImageIndex() bool {
	return v.fixedIn([2]int{16, 5}, [2]int{17, 3}, [2]int{18, 0})
}

// RealFloat: FLOAT is REAL from 3.13.0; before, FLOAT (double precision)
// on PostgreSQL and DOUBLE on MySQL (RdbEngine*.getDataTypeForEngine; §3).
func (v ScalarDBVersion) RealFloat() bool { return v.AtLeast(13, 0) }

// MySQLKeySize is the width of MySQL's VARCHAR and VARBINARY key columns:
// 64 up to 3.13.x, then scalar.db.jdbc.mysql.variable_key_column_size,
// default 128, which RdbEngineMariaDB always uses (§3).
func (v ScalarDBVersion) MySQLKeySize() int {
	if v.AtLeast(14, 0) {
		return 128
	}
	return 64
}

// MySQLNamespaceCharset: MySQL namespaces are created "character set utf8
// COLLATE utf8_bin" up to 3.12.0, plainly from 3.12.1 (§2).
func (v ScalarDBVersion) MySQLNamespaceCharset() bool { return !v.AtLeast(12, 1) }

// QuotedIndexNames: secondary index names are quoted from 3.6.0; 3.4 and
// 3.5 leave them bare, so PostgreSQL folds them to lower case (§3).
func (v ScalarDBVersion) QuotedIndexNames() bool { return v.AtLeast(6, 0) }

// MixedOrderIndexOnly: PostgreSQL's clustering-order index is created
// only when ASC and DESC clustering keys are mixed from 3.13.0; before,
// whenever one is DESC (§3).
func (v ScalarDBVersion) MixedOrderIndexOnly() bool { return v.AtLeast(13, 0) }

// shortIndexNames: index names are index_..., shortened to a hash when
// longer than 63 characters, from 3.15.8, 3.16.5, 3.17.3 and 3.18.0
// (JdbcUtils.shortenIndexNameIfNeeded; §3).
func (v ScalarDBVersion) shortIndexNames() bool {
	return v.fixedIn([2]int{15, 8}, [2]int{16, 5}, [2]int{17, 3}, [2]int{18, 0})
}

// IndexName is the name ScalarDB gives the secondary index on column of
// namespace.table: index_<ns>_<tbl>_<col> (JdbcAdmin.getIndexName).
func (v ScalarDBVersion) IndexName(namespace, table, column string) string {
	return v.shorten("index_"+namespace+"_"+table+"_"+column, "index_")
}

// ClusteringIndexName is the name of PostgreSQL's clustering-order index:
// "<ns>.<tbl>_clustering_order_idx", and index_clustering_order_<ns>_<tbl>
// once index names are shortened (RdbEnginePostgresql).
func (v ScalarDBVersion) ClusteringIndexName(namespace, table string) string {
	if !v.shortIndexNames() {
		return namespace + "." + table + "_clustering_order_idx"
	}
	return v.shorten("index_clustering_order_"+namespace+"_"+table, "index_clustering_order_")
}

// shorten replaces a name longer than 63 Java characters (UTF-16 units)
// by prefix and the first 32 hex digits of its SHA-256, where v does.
func (v ScalarDBVersion) shorten(name, prefix string) string {
	if !v.shortIndexNames() || len(utf16.Encode([]rune(name))) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return prefix + hex.EncodeToString(sum[:])[:32]
}

// ClusteringOrderIndex reports whether ScalarDB's PostgreSQL engine gives
// m a unique index in clustering order.
func (v ScalarDBVersion) ClusteringOrderIndex(m *TableMetadata) bool {
	asc, desc := false, false
	for _, c := range m.ClusteringKey {
		asc, desc = asc || c.Order == Asc, desc || c.Order == Desc
	}
	return desc && (asc || !v.MixedOrderIndexOnly())
}
