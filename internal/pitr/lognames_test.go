package pitr

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/repo"
)

func TestCompareLogNames(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"mysql-bin.000041", "mysql-bin.000042", -1},
		{"mysql-bin.999999", "mysql-bin.1000000", -1},
		{"mysql-bin.1000000", "mysql-bin.000042", 1},
		{"mysql-bin.000042", "mysql-bin.42", 0},
		{"a-bin.000002", "b-bin.000001", -1}, // other servers' files: by name
		{"000000010000000000000009", "00000001000000000000000A", -1},
		{"00000001000000010000000F", "000000010000000200000000", -1},
		{"000000010000000000000003.partial", "000000010000000000000004", -1},
		{"00000002.history", "000000020000000000000001", -1},
	} {
		if got := CompareLogNames(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareLogNames(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareLogNames(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareLogNames(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

// TestBinlogsPastSixDigits: a base, a restore's choice of base and forget
// order binlogs by number where mysql-bin.999999 is followed by
// mysql-bin.1000000 (text order would keep the old files and remove the
// new ones).
func TestBinlogsPastSixDigits(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	lk := h.lock(t)
	const store = "maria"
	logs := NewLogs(h.repo, store)
	archive := func(nums ...string) {
		for _, n := range nums {
			if err := logs.Put(ctx, "mysql-bin."+n, strings.NewReader(n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := func(n string, off uint64) Position {
		return Position{Engine: "mysql", File: "mysql-bin." + n, Offset: off}
	}
	base := func(start Position) *Base {
		b, err := createBase(ctx, h.repo, lk, store, "mysql", func(w io.Writer) (BaseInfo, error) {
			_, err := io.WriteString(w, "base at "+start.String())
			return BaseInfo{Start: start, End: start, Format: "test"}, err
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cut := func(name string, p Position) *Cut {
		c := &Cut{Name: name, Taken: time.Now().UTC(), Coordinator: store, Positions: map[string]Position{store: p}}
		c.ID = newID(c.Taken)
		if err := save(ctx, h.repo, nil, repo.KindCut, c.ID, c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	archive("999998")
	b1 := base(at("999999", 4))
	archive("999999", "1000000")
	c1 := cut("c1", at("1000000", 100))
	archive("1000001")
	b2 := base(at("1000002", 4))
	if b2.LogsBefore != "mysql-bin.1000001" {
		t.Errorf("the second base records %s as the newest binlog archived before it, want mysql-bin.1000001", b2.LogsBefore)
	}
	archive("1000002")
	cut("c2", at("1000002", 200))
	bases, _, err := Bases(ctx, h.repo)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := BaseFor(bases, store, c1.Positions[store]); err != nil || b == nil || b.ID != b1.ID {
		t.Errorf("the base for a cut in mysql-bin.1000000 is %v (%v), want %s, which starts in mysql-bin.999999", b, err, b1.ID)
	}
	plan, err := PlanForget(ctx, h.repo, Policy{Last: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range plan.Objects {
		if v.Kind != "log" {
			continue
		}
		if want := v.ID == "mysql-bin.1000002"; v.Keep != want {
			t.Errorf("forget keeps %s: %v, want %v (only the files from the kept base %s on)", v.ID, v.Keep, want, b2.ID)
		}
	}
}
