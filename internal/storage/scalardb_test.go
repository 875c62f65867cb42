package storage

import (
	"strings"
	"testing"
)

// TestScalarDBRules: each rule changes at the release the research read it
// change (docs/research/scalardb-layouts.md), patch lines included; a
// version without a patch is the newest of its line.
func TestScalarDBRules(t *testing.T) {
	rules := map[string]func(ScalarDBVersion) bool{
		"TransactionDefault":    ScalarDBVersion.TransactionDefault,
		"HashSetBeforeOrder":    ScalarDBVersion.HashSetBeforeOrder,
		"BeforeImageIndex":      ScalarDBVersion.BeforeImageIndex,
		"RealFloat":             ScalarDBVersion.RealFloat,
		"MySQLNamespaceCharset": ScalarDBVersion.MySQLNamespaceCharset,
		"QuotedIndexNames":      ScalarDBVersion.QuotedIndexNames,
		"MixedOrderIndexOnly":   ScalarDBVersion.MixedOrderIndexOnly,
		"shortIndexNames":       ScalarDBVersion.shortIndexNames,
		"MySQLKeySize 128":      func(v ScalarDBVersion) bool { return v.MySQLKeySize() == 128 },
	}
	for _, tt := range []struct {
		rule    string
		no, yes []string
	}{
		{"TransactionDefault", []string{"3.4", "3.6.8"}, []string{"3.7.0", "3.19"}},
		{"HashSetBeforeOrder", []string{"3.6"}, []string{"3.7.0"}},
		{"BeforeImageIndex", []string{"3.15", "3.16.4", "3.17.2"}, []string{"3.16.5", "3.16", "3.17.3", "3.18.0", "3.19", ""}},
		{"RealFloat", []string{"3.12.8", "3.12"}, []string{"3.13.0"}},
		{"MySQLNamespaceCharset", []string{"3.12.1", "3.12", "3.13.0"}, []string{"3.4.9", "3.11", "3.12.0"}},
		{"QuotedIndexNames", []string{"3.4", "3.5.9"}, []string{"3.6.0"}},
		{"MixedOrderIndexOnly", []string{"3.12"}, []string{"3.13.0"}},
		{"shortIndexNames", []string{"3.14", "3.15.7", "3.16.4", "3.17.2"}, []string{"3.15.8", "3.15", "3.16.5", "3.17.3", "3.18.0"}},
		{"MySQLKeySize 128", []string{"3.13", "3.13.6"}, []string{"3.14.0", "3.16"}},
	} {
		for want, versions := range map[bool][]string{false: tt.no, true: tt.yes} {
			for _, s := range versions {
				v, err := ParseScalarDBVersion(s)
				if err != nil {
					t.Fatal(err)
				}
				if got := rules[tt.rule](v); got != want {
					t.Errorf("%s(%s) = %v, want %v", tt.rule, v, got, want)
				}
			}
		}
	}
}

// TestIndexNames: JdbcUtils.shortenIndexNameIfNeeded counts Java chars
// (UTF-16 units) and keeps the prefix with 32 hex digits of SHA-256.
func TestIndexNames(t *testing.T) {
	old, _ := ParseScalarDBVersion("3.15.7")
	short, _ := ParseScalarDBVersion("3.15.8")
	long := strings.Repeat("x", 60)
	for _, tt := range []struct {
		v            ScalarDBVersion
		ns, tbl, col string
		want         string
	}{
		{short, "shop", "items", "c" + long, "index_80cc5c74076b4477d2333b8b14ac3cbf"},
		{old, "shop", "items", "c" + long, "index_shop_items_c" + long},
		{short, "ns", "t", strings.Repeat("x", 52), "index_ns_t_" + strings.Repeat("x", 52)}, // 63: kept
		{short, "ns", "t", strings.Repeat("x", 53), "index_3aa7238fd9ca70e28dd4639fc3420efa"},
		// 37 runes, but 64 UTF-16 units: shortened.
		{short, "a", "b", strings.Repeat("😀", 27), "index_0df80668cde69f16a6c2c1177b7a20c3"},
	} {
		if got := tt.v.IndexName(tt.ns, tt.tbl, tt.col); got != tt.want {
			t.Errorf("IndexName(%s, %s, %s) at %s = %q, want %q", tt.ns, tt.tbl, tt.col, tt.v, got, tt.want)
		}
	}
	if got := short.ClusteringIndexName("ns", "t"); got != "index_clustering_order_ns_t" {
		t.Errorf("clustering index %q", got)
	}
	if got := old.ClusteringIndexName("ns", "t"); got != "ns.t_clustering_order_idx" {
		t.Errorf("clustering index %q", got)
	}
}
