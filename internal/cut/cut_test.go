package cut

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// fake records what the cut did, in order.
type fake struct {
	name      string
	log       *events
	fenceErr  error
	snapErr   error
	fenceHeld *bool
	// stall, if set, holds OpenSnapshot until it is closed; a store that
	// heeds cancellation gives up when its context ends.
	stall chan struct{}
	heeds bool
}

type events struct {
	mu      sync.Mutex
	l       []string
	waiters map[string]chan struct{}
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.l = append(e.l, s)
	if ch, ok := e.waiters[s]; ok {
		close(ch)
		delete(e.waiters, s)
	}
}

// when returns a channel closed once s has happened.
func (e *events) when(s string) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := make(chan struct{})
	if slices.Contains(e.l, s) {
		close(ch)
	} else {
		if e.waiters == nil {
			e.waiters = map[string]chan struct{}{}
		}
		e.waiters[s] = ch
	}
	return ch
}

type fakeFence struct{ f *fake }

func (f fakeFence) Release() error {
	*f.f.fenceHeld = false
	f.f.log.add("release " + f.f.name)
	return nil
}

type fakeSnap struct{ f *fake }

func (s fakeSnap) Point() string { return s.f.name }
func (s fakeSnap) ReadTable(context.Context, *storage.TableMetadata, func(storage.Record) error) error {
	return nil
}
func (s fakeSnap) Close() error { s.f.log.add("close " + s.f.name); return nil }

func (f *fake) AcquireFence(context.Context, time.Duration) (Fence, error) {
	if f.fenceErr != nil {
		return nil, f.fenceErr
	}
	*f.fenceHeld = true
	f.log.add("fence " + f.name)
	return fakeFence{f}, nil
}

func (f *fake) OpenSnapshot(ctx context.Context) (Snapshot, error) {
	if f.stall != nil {
		select {
		case <-f.stall:
		case <-ctx.Done():
			if f.heeds {
				f.log.add("gave up " + f.name)
				return nil, ctx.Err()
			}
			<-f.stall
		}
	}
	if f.snapErr != nil {
		return nil, f.snapErr
	}
	if !*f.fenceHeld {
		f.log.add("snapshot outside the fence " + f.name)
	}
	f.log.add("snapshot " + f.name)
	return fakeSnap{f}, nil
}

func setup(fenceErr, snapErr error) (map[string]Engine, *events) {
	log := &events{}
	held := false
	return map[string]Engine{
		"coord": &fake{name: "coord", log: log, fenceErr: fenceErr, fenceHeld: &held},
		"a":     &fake{name: "a", log: log, fenceHeld: &held},
		"b":     &fake{name: "b", log: log, snapErr: snapErr, fenceHeld: &held},
	}, log
}

func TestTakeOrdersFenceSnapshotsRelease(t *testing.T) {
	stores, log := setup(nil, nil)
	c, err := Take(context.Background(), "coord", stores, time.Second, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	l := log.l
	if l[0] != "fence coord" || l[len(l)-1] != "release coord" || len(l) != 5 {
		t.Fatalf("events = %v: want the fence first, three snapshots inside it, then the release", l)
	}
	for _, e := range l {
		if strings.Contains(e, "outside") {
			t.Fatalf("a snapshot was opened without the fence: %v", l)
		}
	}
	if len(c.Snapshots) != 3 || c.FenceHold < 0 || c.At.IsZero() {
		t.Fatalf("cut = %+v", c)
	}
	c.Close()
}

func TestTakeLeavesNothingBehindOnFailure(t *testing.T) {
	tests := []struct {
		name          string
		fenceErr      error
		snapErr       error
		wantInError   string
		mustNotAppear []string
	}{
		{"fence not granted", errors.New("lock timeout"), nil, "lock timeout", []string{"snapshot"}},
		{"a snapshot fails", nil, errors.New("too many connections"), "store b", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stores, log := setup(tt.fenceErr, tt.snapErr)
			_, err := Take(context.Background(), "coord", stores, time.Second, 0)
			if err == nil || !strings.Contains(err.Error(), tt.wantInError) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantInError)
			}
			opened := 0
			for _, e := range log.l {
				for _, bad := range tt.mustNotAppear {
					if strings.HasPrefix(e, bad) {
						t.Errorf("%q happened: %v", e, log.l)
					}
				}
				if strings.HasPrefix(e, "snapshot ") {
					opened++
				}
				if strings.HasPrefix(e, "close ") {
					opened--
				}
			}
			if opened != 0 {
				t.Errorf("%d snapshots left open: %v", opened, log.l)
			}
			if tt.fenceErr == nil && !slices.Contains(log.l, "release coord") {
				t.Errorf("the fence was not released: %v", log.l)
			}
		})
	}
}

func TestTakeNeedsTheCoordinatorStore(t *testing.T) {
	stores, _ := setup(nil, nil)
	if _, err := Take(context.Background(), "elsewhere", stores, time.Second, 0); err == nil {
		t.Fatal("a cut without the coordinator's store was accepted")
	}
}

func (e *events) has(s string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.l, s)
}

// A store whose snapshot does not open holds the fence (and every commit)
// for at most maxHold: then the fence is released, the slow store named,
// and every snapshot closed, even one that opens later.
func TestTakeBoundsTheFenceHold(t *testing.T) {
	tests := []struct {
		name   string
		fenced bool   // Take, or Open (pause mode)
		heeds  bool   // the stalled store gives up when cancelled
		after  string // what the stalled store does once the cut gave up
	}{
		{"the stalled store heeds cancellation", true, true, "gave up b"},
		{"the stalled store opens late anyway", true, false, "close b"},
		{"no fence (pause mode)", false, false, "close b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stores, log := setup(nil, nil)
			stall := make(chan struct{})
			b := stores["b"].(*fake)
			b.stall, b.heeds = stall, tt.heeds
			type result struct {
				c   *Cut
				err error
			}
			done := make(chan result, 1)
			go func() {
				if tt.fenced {
					c, err := Take(context.Background(), "coord", stores, time.Second, 50*time.Millisecond)
					done <- result{c, err}
				} else {
					c, err := Open(context.Background(), stores, 50*time.Millisecond)
					done <- result{c, err}
				}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				close(stall)
				<-done
				t.Fatalf("the cut waited for as long as the store stalled: %v", log.l)
			}
			var slow *SlowSnapshotError
			if r.c != nil || !errors.As(r.err, &slow) || !slices.Equal(slow.Stores, []string{"b"}) || !strings.Contains(r.err.Error(), "store b did not open within the max hold of 50ms") {
				t.Fatalf("Take with a stalled store: %v, %v; want a *SlowSnapshotError naming store b", r.c, r.err)
			}
			if tt.fenced != strings.Contains(r.err.Error(), "the fence was released") || tt.fenced != log.has("release coord") {
				t.Errorf("fenced %v: error %q, events %v", tt.fenced, r.err, log.l)
			}
			for _, e := range []string{"close coord", "close a"} {
				if !log.has(e) {
					t.Errorf("no %q when the cut gave up: %v", e, log.l)
				}
			}
			if !tt.heeds {
				close(stall)
			}
			select {
			case <-log.when(tt.after):
			case <-time.After(time.Minute):
				t.Fatalf("no %q: %v", tt.after, log.l)
			}
		})
	}
}
