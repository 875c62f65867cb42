package mariadb

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/pitr/pitrtest"
)

// TestGapsTo: a restore to a cut checks only the binlogs its replay
// reads, so a hole after the cut does not refuse it; files not archived
// yet (none after them) are no hole. Numbers past six digits included.
func TestGapsTo(t *testing.T) {
	at := func(f string) pitr.Position {
		return pitr.Position{Engine: "mysql", File: "mysql-bin." + f, Offset: 400}
	}
	for _, tc := range []struct {
		name     string
		held     []string
		from, to string
		missing  string // "" for no gap
	}{
		{"complete", []string{"000003", "000004", "000005"}, "000003", "000005", ""},
		{"a hole after the cut", []string{"000003", "000004", "000006"}, "000003", "000004", ""},
		{"a hole before the cut", []string{"000003", "000005", "000006"}, "000003", "000005", "mysql-bin.000004"},
		{"the cut's file is the hole", []string{"000003", "000005"}, "000003", "000004", "mysql-bin.000004"},
		{"the base's file is the hole", []string{"000004", "000005"}, "000003", "000004", "mysql-bin.000003"},
		{"the cut's file not archived yet", []string{"000003"}, "000003", "000004", ""},
		{"nothing of the base's log archived", []string{"000002"}, "000003", "000004", "mysql-bin.000003"},
		{"past six digits", []string{"999999", "1000000", "1000002"}, "999999", "1000001", "mysql-bin.1000001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := pitrtest.NewMemLogs()
			for _, n := range tc.held {
				logs.Put(context.Background(), "mysql-bin."+n, strings.NewReader(n))
			}
			err := Engine{}.GapsTo(context.Background(), "maria", logs, at(tc.from), at(tc.to))
			var gap *pitr.GapError
			switch {
			case tc.missing == "" && err != nil:
				t.Fatalf("GapsTo: %v", err)
			case tc.missing != "" && (!errors.As(err, &gap) || gap.Missing != tc.missing || gap.Store != "maria"):
				t.Fatalf("GapsTo = %v, want store maria missing %s", err, tc.missing)
			}
		})
	}
}
