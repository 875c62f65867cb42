package pitr

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/repo"
)

func TestPolicyKeep(t *testing.T) {
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	// Two a day on Mon 16 .. Sun 22 November and Mon 23 (ISO weeks 47, 48).
	var times []time.Time
	for d := 16; d <= 23; d++ {
		times = append(times, day(d, 1), day(d, 13))
	}
	for _, tc := range []struct {
		name string
		p    Policy
		keep []int // indexes of times kept
	}{
		{"last 3", Policy{Last: 3}, []int{13, 14, 15}},
		{"daily 2: the newest of each of the 2 newest days", Policy{Daily: 2}, []int{13, 15}},
		{"weekly 2: the newest of each of the 2 newest weeks", Policy{Weekly: 2}, []int{13, 15}},
		{"within 12h of the newest", Policy{Within: 12 * time.Hour}, []int{14, 15}},
		{"within 11h: the newest only", Policy{Within: 11 * time.Hour}, []int{15}},
		{"combined: union", Policy{Last: 1, Daily: 3, Weekly: 3}, []int{11, 13, 15}},
		{"more than there are", Policy{Last: 100}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var kept []int
			for i, why := range tc.p.Keep(times) {
				if len(why) > 0 {
					kept = append(kept, i)
				}
			}
			if !slices.Equal(kept, tc.keep) {
				t.Errorf("kept %v, want %v", kept, tc.keep)
			}
		})
	}
}

// objects lists every object name in the repository's backend directory.
func (h *harness) objects(t *testing.T) []string {
	var names []string
	for _, prefix := range []string{"backups/", "bases/", "cuts/", "data/", "logs/", "logdata/"} {
		n, err := h.be.List(context.Background(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, n...)
	}
	return names
}

func TestForgetKeepsWhatKeptCutsNeed(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.writeAll("a")
	h.rotateAll(t)
	h.base(t) // b1: only the cuts before b2 need it
	h.writeAll("b")
	old, _ := h.cut(t, "old")
	h.writeAll("c")
	h.rotateAll(t)
	h.writeAll("d")
	h.rotateAll(t)
	b2 := h.base(t)
	h.writeAll("e")
	kept, want := h.cut(t, "kept")
	h.writeAll("f")
	h.rotateAll(t)
	h.writeAll("g")
	b3 := h.base(t) // after every cut: future cuts need it

	before := h.objects(t)
	plan, err := PlanForget(ctx, h.repo, Policy{Last: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after := h.objects(t); !slices.Equal(before, after) {
		t.Fatalf("planning (a dry run) changed the repository")
	}
	verdict := map[string]bool{}
	for _, v := range plan.Objects {
		verdict[v.Kind+" "+v.Store+" "+v.ID] = v.Keep
	}
	for _, s := range h.stores {
		for id, keep := range map[string]bool{b2[s]: true, b3[s]: true} {
			if !verdict["base "+s+" "+id] && keep {
				t.Errorf("base %s of %s removed, but cut kept or future cuts need it", id, s)
			}
		}
		// log.000001 to .000003 were archived before b2 began.
		for name, keep := range map[string]bool{fileName(1): false, fileName(2): false, fileName(3): false, fileName(4): true} {
			if got, ok := verdict["log "+s+" "+name]; !ok || got != keep {
				t.Errorf("store %s log %s: keep = %v (listed %v), want %v", s, name, got, ok, keep)
			}
		}
	}
	if verdict["cut  "+old.ID] || !verdict["cut  "+kept.ID] {
		t.Errorf("cuts kept: old %v, kept %v; want only the newest", verdict["cut  "+old.ID], verdict["cut  "+kept.ID])
	}
	if plan.Removed["base"] != len(h.stores) || plan.Kept["base"] != 2*len(h.stores) {
		t.Errorf("bases removed %d, kept %d; want %d and %d", plan.Removed["base"], plan.Kept["base"], len(h.stores), 2*len(h.stores))
	}
	lk := h.lock(t)
	if err := Forget(ctx, h.repo, lk, plan); err != nil {
		t.Fatal(err)
	}
	pr, err := backup.Prune(ctx, h.repo, lk)
	if err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if pr.Removed == 0 {
		t.Errorf("forget pruned no chunk; b1's are no longer needed")
	}
	h.restoreTo(t, kept, want, b2)
	if _, err := PlanRestore(ctx, h.repo, old); err == nil {
		t.Errorf("the forgotten cut still restores")
	}
}

// TestBackupPruneKeepsBaseChunks: a base's chunks live beside the logical
// backups'; a prune that counted only backups would delete them.
func TestBackupPruneKeepsBaseChunks(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.writeAll("a")
	h.rotateAll(t)
	b := h.base(t)
	h.writeAll("b")
	c, want := h.cut(t, "")
	h.rotateAll(t)
	lk := h.lock(t)
	res, err := backup.Prune(ctx, h.repo, lk)
	if err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if res.Removed != 0 {
		t.Errorf("backup prune removed %d chunks the bases use", res.Removed)
	}
	h.restoreTo(t, c, want, b)
}

func TestLogArchive(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("secret")} {
		ctx := context.Background()
		h := newHarness(t, key)
		logs := NewLogs(h.repo, "pg")
		// Longer than the largest chunk, so it is chunked whatever the
		// repository's random polynomial (4 MiB made one chunk 3 times in 40).
		big := make([]byte, repo.DefaultMaxChunk+1)
		rand.New(rand.NewSource(1)).Read(big)
		for _, tc := range []struct {
			name, file string
			data       []byte
			want       string // error, "" for none
		}{
			{"stored", "000000010000000000000001", big, ""},
			{"the same again is a no-op", "000000010000000000000001", big, ""},
			{"other content is refused", "000000010000000000000001", append(slices.Clone(big), 'x'), "already archived with other content"},
			{"an empty file", "000000010000000000000002", nil, ""},
			{"a path is not a name", "../x", []byte("x"), "invalid log archive name"},
		} {
			err := logs.Put(ctx, tc.file, bytes.NewReader(tc.data))
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("%s: Put = %v, want %q", tc.name, err, tc.want)
			}
		}
		var got bytes.Buffer
		if err := logs.Get(ctx, "000000010000000000000001", &got); err != nil || !bytes.Equal(got.Bytes(), big) {
			t.Errorf("Get = %v (%d bytes), want the first content (%d bytes)", err, got.Len(), len(big))
		}
		if err := logs.Get(ctx, "000000010000000000000009", &got); !errors.Is(err, ErrMissing) {
			t.Errorf("Get of a missing file = %v, want ErrMissing", err)
		}
		if names, err := logs.Names(ctx); err != nil || !reflect.DeepEqual(names, []string{"000000010000000000000001", "000000010000000000000002"}) {
			t.Errorf("Names = %v, %v", names, err)
		}
		if f, err := h.repo.LogInfo(ctx, "pg", "000000010000000000000001"); err != nil || len(f.Chunks) < 2 {
			t.Errorf("LogInfo = %+v, %v; want it chunked", f, err)
		}
	}
}
