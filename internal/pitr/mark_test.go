package pitr

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

// nameChecks counts, on a repository's backend, the ways a cut create
// checks its name: listing the cuts, reserving the name. ready closes once
// two creates have made the same kind of check, or one returned.
type nameChecks struct {
	backend.Backend
	mu            sync.Mutex
	lists, claims int
	once          sync.Once
	ready         chan struct{}
}

func (b *nameChecks) count(n *int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if *n++; *n >= 2 {
		b.done()
	}
}

func (b *nameChecks) done() { b.once.Do(func() { close(b.ready) }) }

func (b *nameChecks) List(ctx context.Context, prefix string) ([]string, error) {
	if prefix == "cuts/" {
		b.count(&b.lists)
	}
	return b.Backend.List(ctx, prefix)
}

func (b *nameChecks) PutIfAbsent(ctx context.Context, name string, data []byte) (bool, error) {
	if strings.HasPrefix(name, "cutnames/") {
		b.count(&b.claims)
	}
	return b.Backend.PutIfAbsent(ctx, name, data)
}

// TestCutNameIsExclusive: two cut creates with one name at once, the
// first held inside its fence until the second has checked the name:
// exactly one cut is recorded, the other is told the name is taken. A
// check by listing the cuts let both through.
func TestCutNameIsExclusive(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	be := &nameChecks{Backend: h.be, ready: make(chan struct{})}
	r, err := repo.Open(ctx, be, nil)
	if err != nil {
		t.Fatal(err)
	}
	fenced := h.eng.probe
	h.eng.probe = func() error {
		select {
		case <-be.ready:
		case <-time.After(time.Minute):
			return errors.New("the second cut create never checked the name")
		}
		return fenced()
	}
	type result struct {
		c   *Cut
		err error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			c, err := CreateCut(ctx, r, h.st, MarkOptions{Name: "release-1", FenceTimeout: time.Minute})
			be.done()
			results <- result{c, err}
		}()
	}
	var made []*Cut
	var failed []error
	for range 2 {
		if res := <-results; res.err != nil {
			failed = append(failed, res.err)
		} else {
			made = append(made, res.c)
		}
	}
	// The loser may be told while the winner still marks, or after.
	if len(made) != 1 || len(failed) != 1 || !strings.Contains(failed[0].Error(), `"release-1"`) || !strings.Contains(failed[0].Error(), made[0].ID) {
		t.Fatalf("two cut creates named release-1: made %d, failed %v; want one made and the other told which cut took the name", len(made), failed)
	}
	if cuts, _, err := Cuts(ctx, r); err != nil || len(cuts) != 1 {
		t.Errorf("%d cuts recorded (%v), want 1", len(cuts), err)
	}
}

// TestCutNameReservation: a name held by a cut recorded before names
// were reserved, or naming its id, is refused and not left reserved; one
// reserved by a cut create that died is refused, saying so; one whose cut
// failed is given back, so the same name can be retried.
func TestCutNameReservation(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name, want string
		before     func() error
		reserved   bool // the name stays reserved after the refusal
	}{
		{"legacy", `a cut named "legacy" exists already (cut 20250101T000000Z-00000001)`, func() error {
			return save(ctx, h.repo, nil, repo.KindCut, "20250101T000000Z-00000001", &Cut{ID: "20250101T000000Z-00000001", Name: "legacy"})
		}, false},
		{"20250101T000000Z-00000001", `the name "20250101T000000Z-00000001" would also name cut 20250101T000000Z-00000001`, nil, false},
		{"died", `taken by cut 20250101T000000Z-00000002, begun at 2025-01-01T00:00:00Z and not recorded`, func() error {
			return save(ctx, h.repo, nil, repo.KindCutName, "died", nameReservation{Cut: "20250101T000000Z-00000002", Reserved: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})
		}, true},
	} {
		if tc.before != nil {
			if err := tc.before(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := CreateCut(ctx, h.repo, h.st, MarkOptions{Name: tc.name, FenceTimeout: time.Minute}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CreateCut(%q) = %v, want %q", tc.name, err, tc.want)
		}
		if _, err := h.repo.LoadRecord(ctx, repo.KindCutName, tc.name); (err == nil) != tc.reserved {
			t.Errorf("after CreateCut(%q) was refused, reading its reservation: %v; want it reserved: %v", tc.name, err, tc.reserved)
		}
	}
	enginesMu.Lock()
	e := engines["sqlite"]
	delete(engines, "sqlite")
	enginesMu.Unlock()
	if _, err := CreateCut(ctx, h.repo, h.st, MarkOptions{Name: "retry", FenceTimeout: time.Minute}); err == nil {
		t.Fatal("a cut with no PITR engine was marked")
	}
	enginesMu.Lock()
	engines["sqlite"] = e
	enginesMu.Unlock()
	if c, err := CreateCut(ctx, h.repo, h.st, MarkOptions{Name: "retry", FenceTimeout: time.Minute}); err != nil || c.Name != "retry" {
		t.Errorf("retrying a failed cut's name: %v, %v; want the cut", c, err)
	}
}
