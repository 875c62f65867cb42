package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/stillpoint/stillpoint/internal/pitr"
)

// TestGapsTo: a restore to a mark checks only the path replay reads, so a
// hole after the mark does not refuse it; segments not archived yet at
// the end of the path are no hole.
func TestGapsTo(t *testing.T) {
	from := pitr.Position{Engine: "postgres", LSN: "0/200028", Timeline: 1} // in segment 2
	to := func(lsn string, tli uint32) pitr.Position {
		return pitr.Position{Engine: "postgres", LSN: lsn, Timeline: tli}
	}
	for _, tc := range []struct {
		name    string
		archive []string
		to      pitr.Position
		missing string // "" for no gap
	}{
		{"a hole after the mark", []string{"1:2-4", "1:6-8"}, to("0/400100", 1), ""},
		{"a hole before the mark", []string{"1:2-3", "1:5-8"}, to("0/600100", 1), segmentName(1, 4, mib)},
		{"the mark's segment is the hole", []string{"1:2-3", "1:5-8"}, to("0/400100", 1), segmentName(1, 4, mib)},
		{"the mark's segment not archived yet", []string{"1:2-3"}, to("0/400100", 1), ""},
		{"a hole after the mark, on the next timeline", []string{"1:2-4", "1:5p", "h2:1@0/500028", "2:5", "2:7"}, to("0/400100", 1), ""},
		{"a timeline without its history file", []string{"1:2-4", "2:5-6"}, to("0/500100", 2), "00000002.history"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Engine{}.GapsTo(context.Background(), "pg", archiveOf(t, tc.archive...), from, tc.to)
			var gap *pitr.GapError
			switch {
			case tc.missing == "" && err != nil:
				t.Fatalf("GapsTo: %v", err)
			case tc.missing != "" && (!errors.As(err, &gap) || gap.Missing != tc.missing || gap.Store != "pg"):
				t.Fatalf("GapsTo = %v, want store pg missing %s", err, tc.missing)
			}
		})
	}
}
