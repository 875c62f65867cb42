package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/pitr/pitrtest"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const mib = 1 << 20

// archiveOf is an archive of 1 MiB segments: "1:2-5" holds timeline 1's
// segments 2 to 5, "1:4p" segment 4 as .partial, "h3:1@0/400028,2@0/600028"
// timeline 3's history file: timeline 1 switched to 2 at 0/400028, 2 to 3
// at 0/600028.
func archiveOf(t *testing.T, specs ...string) *pitrtest.MemLogs {
	t.Helper()
	logs := pitrtest.NewMemLogs()
	for _, spec := range specs {
		var tli, lo, hi uint64
		if sw, ok := strings.CutPrefix(spec, "h"); ok {
			tl, switches, _ := strings.Cut(sw, ":")
			if _, err := fmt.Sscan(tl, &tli); err != nil {
				t.Fatal(err)
			}
			var history strings.Builder
			for _, s := range strings.Split(switches, ",") {
				parent, lsn, _ := strings.Cut(s, "@")
				fmt.Fprintf(&history, "%s\t%s\tno recovery target specified\n\n", parent, lsn)
			}
			logs.Files[historyName(uint32(tli))] = []byte(history.String())
			continue
		}
		tl, rng, _ := strings.Cut(spec, ":")
		rng, partial := strings.CutSuffix(rng, "p")
		a, b, isRange := strings.Cut(rng, "-")
		if _, err := fmt.Sscan(tl, &tli); err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscan(a, &lo); err != nil {
			t.Fatal(err)
		}
		hi = lo
		if isRange {
			if _, err := fmt.Sscan(b, &hi); err != nil {
				t.Fatal(err)
			}
		}
		for n := lo; n <= hi; n++ {
			name := segmentName(uint32(tli), n, mib)
			if partial {
				name += ".partial"
			}
			logs.Files[name] = make([]byte, mib)
		}
	}
	return logs
}

func TestGaps(t *testing.T) {
	seg := func(tli uint32, n uint64) string { return segmentName(tli, n, mib) }
	from := pitr.Position{Engine: "postgres", LSN: "0/200028", Timeline: 1} // in segment 2
	for _, tc := range []struct {
		name    string
		archive []string
		missing string // "" for no gap
		after   string
		before  string
	}{
		{"contiguous", []string{"1:2-5"}, "", "", ""},
		{"older segments before the start do not matter", []string{"1:0", "1:2-5"}, "", "", ""},
		{"a hole in the middle", []string{"1:2-3", "1:5"}, seg(1, 4), seg(1, 3), seg(1, 5)},
		{"the start missing", []string{"1:3-5"}, seg(1, 2), "", seg(1, 3)},
		// Nothing tells the segment size: the default 16 MiB is assumed.
		{"an empty archive", nil, segmentName(1, 0, 16*mib), "", ""},
		{"across the 4 GiB boundary of segment names", []string{"1:2-4097"}, "", "", ""},
		{"a hole at the 4 GiB boundary", []string{"1:2-4095", "1:4097"}, seg(1, 4096), seg(1, 4095), seg(1, 4097)},
		{"a timeline switch", []string{"1:2-3", "1:4p", "h2:1@0/400028", "2:4-6"}, "", "", ""},
		{"a timeline without its history file", []string{"1:2-3", "1:4p", "2:4-6"}, "00000002.history", "", ""},
		{"a hole after a timeline switch", []string{"1:2-3", "1:4p", "h2:1@0/400028", "2:4", "2:6"}, seg(2, 5), seg(2, 4), seg(2, 6)},
		{"a hole on the old timeline before the switch", []string{"1:2", "h2:1@0/400028", "2:4-6"}, seg(1, 3), seg(1, 2), ""},
		{"the old timeline's switch segment is not needed", []string{"1:2-3", "h2:1@0/400028", "2:4-6"}, "", "", ""},
		{"a timeline branched off before the base is not its", []string{"1:2-5", "h2:1@0/100028", "2:1-3"}, "", "", ""},
		{"two switches", []string{"1:2-3", "h2:1@0/400028", "2:4-5", "h3:1@0/400028,2@0/600028", "3:6-7"}, "", "", ""},
		{"two switches in one segment", []string{"1:2-3", "h2:1@0/400028", "h3:1@0/400028,2@0/400100", "3:4-7"}, "", "", ""},
		{"two switches, a hole on the middle timeline", []string{"1:2-3", "h2:1@0/400028", "2:4", "h3:1@0/400028,2@0/600028", "3:6-7"}, seg(2, 5), seg(2, 4), ""},
		{"the switch segment missing on the new timeline", []string{"1:2-4", "h2:1@0/400028", "2:5-6"}, seg(2, 4), "", seg(2, 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Engine{}.Gaps(context.Background(), "pg", archiveOf(t, tc.archive...), from)
			if tc.missing == "" {
				if err != nil {
					t.Fatalf("Gaps: %v", err)
				}
				return
			}
			var gap *pitr.GapError
			if !errors.As(err, &gap) {
				t.Fatalf("Gaps = %v, want a *pitr.GapError", err)
			}
			if gap.Store != "pg" || gap.Missing != tc.missing || gap.After != tc.after || gap.Before != tc.before {
				t.Fatalf("gap = %+v, want missing %s after %q before %q", gap, tc.missing, tc.after, tc.before)
			}
		})
	}
}

func TestGapsRefusesAnArchiveOfOddSizedFiles(t *testing.T) {
	logs := pitrtest.NewMemLogs()
	logs.Files[segmentName(1, 2, mib)] = []byte("not a segment")
	err := Engine{}.Gaps(context.Background(), "pg", logs, pitr.Position{LSN: "0/200028", Timeline: 1})
	if err == nil || !strings.Contains(err.Error(), "not a WAL segment size") {
		t.Fatalf("Gaps = %v, want a refusal naming the segment size", err)
	}
}

func TestPushFetch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logs := pitrtest.NewMemLogs()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Every kind of file PostgreSQL archives goes in and comes back verbatim.
	for _, tc := range []struct{ name, content string }{
		{"000000010000000000000003", "segment"},
		{"000000010000000000000004.partial", "partial segment"},
		{"00000002.history", "1\t0/4000028\tno recovery target specified\n"},
		{"000000010000000000000002.00000028.backup", "START WAL LOCATION: 0/2000028\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(tc.name, tc.content)
			for range 2 { // archive_command may run again after a crash
				if err := Push(ctx, logs, tc.name, p); err != nil {
					t.Fatalf("Push: %v", err)
				}
			}
			out := filepath.Join(dir, "restored-"+tc.name)
			if err := Fetch(ctx, logs, tc.name, out); err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if b, _ := os.ReadFile(out); !bytes.Equal(b, []byte(tc.content)) {
				t.Fatalf("fetched %q, pushed %q", b, tc.content)
			}
		})
	}
	t.Run("other content under an archived name is refused", func(t *testing.T) {
		if err := Push(ctx, logs, "000000010000000000000003", write("other", "changed")); err == nil {
			t.Fatal("Push of other content under an archived name succeeded")
		}
	})
	t.Run("a path as the name is refused", func(t *testing.T) {
		if err := Push(ctx, logs, "pg_wal/000000010000000000000005", write("x", "x")); err == nil || !strings.Contains(err.Error(), "not a WAL file name") {
			t.Fatalf("Push = %v, want a refusal of the name", err)
		}
	})
	t.Run("a missing file is ErrMissing and leaves nothing behind", func(t *testing.T) {
		out := filepath.Join(dir, "RECOVERYHISTORY")
		err := Fetch(ctx, logs, "00000009.history", out)
		if !errors.Is(err, pitr.ErrMissing) {
			t.Fatalf("Fetch = %v, want ErrMissing", err)
		}
		if entries, _ := filepath.Glob(out + "*"); len(entries) != 0 {
			t.Fatalf("Fetch of a missing file left %v", entries)
		}
	})
}
