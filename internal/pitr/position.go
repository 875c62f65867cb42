package pitr

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Compare orders two positions of one store's log: PostgreSQL's by
// timeline then LSN, MariaDB's by binlog file then offset. Positions of
// different kinds do not compare (an error).
func Compare(a, b Position) (int, error) {
	switch {
	case a.LSN != "" && b.LSN != "":
		x, err := parseLSN(a.LSN)
		if err != nil {
			return 0, err
		}
		y, err := parseLSN(b.LSN)
		if err != nil {
			return 0, err
		}
		return cmp.Or(cmp.Compare(a.Timeline, b.Timeline), cmp.Compare(x, y)), nil
	case a.File != "" && b.File != "":
		return cmp.Or(CompareLogNames(a.File, b.File), cmp.Compare(a.Offset, b.Offset)), nil
	}
	return 0, fmt.Errorf("positions %s and %s are of different logs", a, b)
}

// parseLSN reads PostgreSQL's "X/Y" (two hex halves of 64 bits).
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid LSN %q: want two hex numbers X/Y", s)
	}
	return h<<32 | l, nil
}
