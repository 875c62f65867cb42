package pitr

import (
	"cmp"
	"strings"
)

// CompareLogNames orders two of a store's log file names as its server
// wrote them. A binlog's sequence number (after the last '.') compares as
// a number: MariaDB goes from mysql-bin.999999 to mysql-bin.1000000, which
// text order puts first. Any other name compares as text, which is log
// order for WAL segments (fixed-width hex).
func CompareLogNames(a, b string) int {
	as, an, aok := numbered(a)
	bs, bn, bok := numbered(b)
	if aok && bok && as == bs {
		return cmp.Or(cmp.Compare(len(an), len(bn)), strings.Compare(an, bn))
	}
	return strings.Compare(a, b)
}

// numbered splits a name "stem.digits" into its stem and its number
// without leading zeros (so that longer is larger).
func numbered(name string) (stem, num string, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 || strings.Trim(name[i+1:], "0123456789") != "" {
		return "", "", false
	}
	return name[:i], strings.TrimLeft(name[i+1:], "0"), true
}
