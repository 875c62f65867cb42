package pitr

import (
	"strings"
	"testing"
	"time"
)

func TestCompare(t *testing.T) {
	pg := func(lsn string, tl uint32) Position { return Position{Engine: "postgres", LSN: lsn, Timeline: tl} }
	my := func(f string, o uint64) Position { return Position{Engine: "mysql", File: f, Offset: o} }
	for _, tc := range []struct {
		name string
		a, b Position
		want int
		err  string
	}{
		{"LSN within a segment", pg("0/3000060", 1), pg("0/3000100", 1), -1, ""},
		{"LSN high half decides (not text order)", pg("1/0", 1), pg("0/FFFFFFFF", 1), 1, ""},
		{"LSN equal", pg("0/3000060", 1), pg("0/3000060", 1), 0, ""},
		{"a later timeline is later", pg("0/9000000", 1), pg("0/3000000", 2), -1, ""},
		{"binlog file decides", my("mysql-bin.000002", 4), my("mysql-bin.000001", 900), 1, ""},
		{"binlog numbers past six digits compare as numbers", my("mysql-bin.999999", 900), my("mysql-bin.1000000", 4), -1, ""},
		{"binlog offset within a file", my("mysql-bin.000002", 4), my("mysql-bin.000002", 900), -1, ""},
		{"different logs", pg("0/1", 1), my("mysql-bin.000001", 4), 0, "different logs"},
		{"a bad LSN", pg("zz", 1), pg("0/1", 1), 0, "invalid LSN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Compare(tc.a, tc.b)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Compare = %d, %v; want an error saying %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Compare = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestFindCut(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 11, 25, 10, m, 0, 0, time.UTC) }
	cuts := []*Cut{
		{ID: "20261125T100000Z-aaaa1111", Taken: at(0)},
		{ID: "20261125T100500Z-bbbb2222", Name: "before-upgrade", Taken: at(5)},
		{ID: "20261125T101000Z-bbbb3333", Taken: at(10)},
	}
	for _, tc := range []struct{ ref, want, err string }{
		{"before-upgrade", cuts[1].ID, ""},
		{cuts[2].ID, cuts[2].ID, ""},
		{"20261125T1000", cuts[0].ID, ""},
		{"20261125T10", "", "ambiguous"},
		{"nosuch", "", "no cut named"},
	} {
		c, err := FindCut(cuts, tc.ref)
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) || tc.err == "" && (err != nil || c.ID != tc.want) {
			t.Errorf("FindCut(%q) = %v, %v; want %q %q", tc.ref, c, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		t    time.Time
		want string
	}{{at(5), cuts[1].ID}, {at(9), cuts[1].ID}, {at(60), cuts[2].ID}, {at(0).Add(-time.Second), ""}} {
		c, err := CutAt(cuts, tc.t)
		if tc.want == "" && err == nil || tc.want != "" && (err != nil || c.ID != tc.want) {
			t.Errorf("CutAt(%v) = %v, %v; want %q", tc.t, c, err, tc.want)
		}
	}
}
