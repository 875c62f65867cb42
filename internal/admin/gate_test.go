package admin

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventually waits up to 5s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log sink safe for the lease timer's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func enter(t *testing.T, g *Gate) func() {
	t.Helper()
	release, err := g.Enter()
	if err != nil {
		t.Fatalf("Enter on an open gate: %v", err)
	}
	return release
}

func TestGatePause(t *testing.T) {
	tests := []struct {
		name       string
		inFlight   int           // transactions entered before the pause
		finishAt   time.Duration // when they finish (<0: never)
		wait       bool
		maxWait    time.Duration
		wantErr    error
		wantPaused bool
	}{
		{name: "no wait, transactions in flight", inFlight: 2, finishAt: -1, wait: false, wantPaused: true},
		{name: "wait, nothing in flight", wait: true, maxWait: time.Second, wantPaused: true},
		{name: "wait, drained in time", inFlight: 3, finishAt: 50 * time.Millisecond, wait: true, maxWait: 5 * time.Second, wantPaused: true},
		{name: "wait, drain timeout reopens", inFlight: 2, finishAt: -1, wait: true, maxWait: 100 * time.Millisecond, wantErr: ErrDrainTimeout, wantPaused: false},
		// A negative wait is no wait, as in ScalarDB Server: the pause holds
		// only if nothing is in flight.
		{name: "negative wait, nothing in flight", wait: true, maxWait: -time.Millisecond, wantPaused: true},
		{name: "negative wait, transactions in flight reopens", inFlight: 2, finishAt: -1, wait: true, maxWait: -time.Millisecond, wantErr: ErrDrainTimeout, wantPaused: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGate(GateOptions{})
			defer g.Close()
			var releases []func()
			for range tt.inFlight {
				releases = append(releases, enter(t, g))
			}
			if tt.finishAt >= 0 {
				time.AfterFunc(tt.finishAt, func() {
					for _, r := range releases {
						r()
					}
				})
			}
			err := g.Pause(context.Background(), tt.wait, tt.maxWait)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Pause: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == ErrDrainTimeout && !strings.Contains(err.Error(), "2 transaction(s)") {
				t.Errorf("drain timeout error does not say how many are in flight: %v", err)
			}
			if g.Paused() != tt.wantPaused {
				t.Errorf("Paused() = %v, want %v", g.Paused(), tt.wantPaused)
			}
			if tt.wait && err == nil && g.InFlight() != 0 {
				t.Errorf("a waiting Pause returned with %d in flight", g.InFlight())
			}
			if !tt.wantPaused {
				enter(t, g)() // reopened: transactions get in again
			}
		})
	}
}

func TestGateEnterWhilePaused(t *testing.T) {
	g := NewGate(GateOptions{})
	defer g.Close()
	release := enter(t, g)
	if err := g.Pause(context.Background(), false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Enter(); !errors.Is(err, ErrPaused) {
		t.Fatalf("Enter while paused: %v, want ErrPaused", err)
	}
	if !strings.Contains(ErrPaused.Error(), "paused for a backup") || !strings.Contains(ErrPaused.Error(), "retry later") {
		t.Errorf("ErrPaused message: %q", ErrPaused)
	}
	// The transaction that got in before the pause still finishes; release
	// is idempotent.
	release()
	release()
	if n := g.InFlight(); n != 0 {
		t.Fatalf("InFlight after a double release = %d, want 0", n)
	}
	// Pausing again (a renewal) succeeds, and is not a new pause.
	if err := g.Pause(context.Background(), true, time.Second); err != nil {
		t.Fatalf("Pause on a paused gate: %v", err)
	}
	s := g.Stats()
	if !s.Paused || s.Pauses != 1 || s.PausedSince == nil {
		t.Errorf("Stats while paused = %+v, want paused, 1 pause, paused_since set", s)
	}
	for range 2 { // idempotent
		g.Unpause()
		if g.Paused() {
			t.Fatal("Unpause left the gate paused")
		}
	}
	enter(t, g)()
	if s := g.Stats(); s.Paused || s.PausedSince != nil || s.Pauses != 1 {
		t.Errorf("Stats after unpause = %+v", s)
	}
}

func TestGateUnpauseDuringWait(t *testing.T) {
	g := NewGate(GateOptions{})
	defer g.Close()
	release := enter(t, g)
	defer release()
	errc := make(chan error, 1)
	go func() { errc <- g.Pause(context.Background(), true, 5*time.Second) }()
	eventually(t, "Pause closed the gate", g.Paused)
	g.Unpause()
	if err := <-errc; !errors.Is(err, ErrPauseInterrupted) {
		t.Fatalf("Pause interrupted by Unpause: %v, want ErrPauseInterrupted", err)
	}
}

func TestGatePauseCallerGone(t *testing.T) {
	g := NewGate(GateOptions{})
	defer g.Close()
	release := enter(t, g)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := g.Pause(ctx, true, 5*time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pause with an expired context: %v", err)
	}
	if g.Paused() {
		t.Fatal("a pause whose caller gave up left the gate closed")
	}
}

func TestGateLease(t *testing.T) {
	const lease = 300 * time.Millisecond
	logs := &syncBuffer{}
	clock := NewManualClock(time.Now())
	g := NewGate(GateOptions{Lease: lease, Clock: clock, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	defer g.Close()
	ctx := context.Background()

	// Renewed by re-pausing within each lease, the pause outlives its
	// lease, under one pause id.
	if err := g.Pause(ctx, true, 0); err != nil {
		t.Fatal(err)
	}
	id := g.Stats().PauseID
	for range 16 {
		clock.Advance(lease - time.Millisecond)
		if err := g.Pause(ctx, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	if s := g.Stats(); !s.Paused || s.LeaseExpiries != 0 || s.PauseID != id || id == "" || s.LeaseMs != 300 {
		t.Fatalf("renewed pause: Stats = %+v, want paused under pause id %q, no lease expiry, lease_ms 300", s, id)
	}

	// Not renewed, it ends by itself, exactly when the lease runs out.
	clock.Advance(lease - time.Millisecond)
	if !g.Paused() {
		t.Fatal("the lease expired early")
	}
	clock.Advance(time.Millisecond)
	if s := g.Stats(); s.Paused || s.LeaseExpiries != 1 || s.Pauses != 1 || s.PauseID != "" {
		t.Errorf("Stats after expiry = %+v, want open, 1 lease expiry, 1 pause, no pause id", s)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "lease expired") || !strings.Contains(l, "reason=\"lease expired\"") {
		t.Errorf("no WARN about the lease, or no unpause logged with its reason: %q", l)
	}
	enter(t, g)()

	// A renewal that comes after the lease ran out is a new pause, under a
	// new id: a client can tell.
	if err := g.Pause(ctx, false, 0); err != nil {
		t.Fatal(err)
	}
	if s := g.Stats(); s.PauseID == id || s.PauseID == "" || s.Pauses != 2 {
		t.Errorf("a pause after a lapse: Stats = %+v, want a new pause id (not %q)", s, id)
	}

	// Unpause ends the pause before the lease, which then never fires.
	g.Unpause()
	clock.Advance(10 * lease)
	if s := g.Stats(); s.LeaseExpiries != 1 || s.Pauses != 2 {
		t.Errorf("Stats after unpause = %+v, want still 1 lease expiry, 2 pauses", s)
	}
}

// A pause from a client that never renews (PauseUntilUnpause) holds past
// the lease until Unpause, or until MaxHold; a leased pause it joins loses
// its lease and keeps its id. Runs on a ManualClock.
func TestGatePauseUntilUnpause(t *testing.T) {
	const lease = time.Minute
	tests := []struct {
		name       string
		maxHold    time.Duration
		leaseFirst bool // a leased Pause made the pause first
		advance    time.Duration
		wantPaused bool
	}{
		{name: "no maximum, 3 minutes", advance: 3 * time.Minute, wantPaused: true},
		{name: "no maximum, a day", advance: 24 * time.Hour, wantPaused: true},
		{name: "joins a leased pause, 3 minutes", leaseFirst: true, advance: 3 * time.Minute, wantPaused: true},
		{name: "maximum 15m, just before", maxHold: 15 * time.Minute, advance: 15*time.Minute - time.Millisecond, wantPaused: true},
		{name: "maximum 15m, reached", maxHold: 15 * time.Minute, advance: 15 * time.Minute, wantPaused: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			clock := NewManualClock(time.Now())
			g := NewGate(GateOptions{Lease: lease, MaxHold: tt.maxHold, Clock: clock, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			defer g.Close()
			ctx := context.Background()
			if tt.leaseFirst {
				if err := g.Pause(ctx, true, 0); err != nil {
					t.Fatal(err)
				}
			}
			if err := g.PauseUntilUnpause(ctx, true, 0); err != nil {
				t.Fatal(err)
			}
			id := g.Stats().PauseID
			// A leased renewal (Stillpoint's own client) gives it no lease back.
			clock.Advance(lease / 2)
			if err := g.Pause(ctx, false, 0); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.advance - lease/2)
			s := g.Stats()
			if s.Paused != tt.wantPaused || s.LeaseExpiries != 0 || s.Pauses != 1 {
				t.Fatalf("after %v: Stats = %+v, want paused=%v, no lease expiry, 1 pause", tt.advance, s, tt.wantPaused)
			}
			if !tt.wantPaused {
				if s.HoldExpiries != 1 || !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "maximum hold reached") {
					t.Fatalf("ended by the maximum hold without counting or logging it: %+v %q", s, logs.String())
				}
				return
			}
			if s.PauseID != id || s.LeaseMs != 0 {
				t.Fatalf("Stats = %+v, want pause id %q kept and lease_ms 0 (no lease)", s, id)
			}
			g.Unpause()
			if g.Paused() {
				t.Fatal("Unpause left the gate paused")
			}
			// The next leased pause has its lease again.
			if err := g.Pause(ctx, false, 0); err != nil {
				t.Fatal(err)
			}
			clock.Advance(lease)
			if s := g.Stats(); s.Paused || s.LeaseExpiries != 1 {
				t.Fatalf("a leased pause after a held one: Stats = %+v, want ended by its lease", s)
			}
		})
	}
}

// Pause ids differ between gates (servers, or one server restarted).
func TestGatePauseIDsAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		g := NewGate(GateOptions{})
		if err := g.Pause(context.Background(), false, 0); err != nil {
			t.Fatal(err)
		}
		id := g.Stats().PauseID
		if id == "" || seen[id] {
			t.Fatalf("pause id %q: empty or seen before (%v)", id, seen)
		}
		seen[id] = true
		g.Close()
	}
}

func TestGateDrain(t *testing.T) {
	t.Run("drained", func(t *testing.T) {
		clock := NewManualClock(time.Now())
		g := NewGate(GateOptions{Lease: 50 * time.Millisecond, Clock: clock})
		defer g.Close()
		release := enter(t, g)
		time.AfterFunc(50*time.Millisecond, release)
		if left := g.Drain(context.Background(), 5*time.Second); left != 0 {
			t.Fatalf("Drain left %d", left)
		}
		g.Unpause() // no effect after Drain
		if err := g.Pause(context.Background(), false, 0); !errors.Is(err, ErrShuttingDown) {
			t.Errorf("Pause after Drain: %v", err)
		}
		clock.Advance(time.Second) // longer than the lease: none runs
		_, err := g.Enter()
		if !errors.Is(err, ErrShuttingDown) || !errors.Is(err, ErrPaused) {
			t.Fatalf("Enter after Drain: %v, want ErrShuttingDown (matching ErrPaused)", err)
		}
		if s := g.Stats(); !s.Paused || !s.ShuttingDown || s.LeaseExpiries != 0 {
			t.Errorf("Stats after Drain = %+v", s)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		g := NewGate(GateOptions{})
		defer g.Close()
		defer enter(t, g)()
		defer enter(t, g)()
		if left := g.Drain(context.Background(), 100*time.Millisecond); left != 2 {
			t.Fatalf("Drain left %d, want 2", left)
		}
	})
	t.Run("drains a paused gate", func(t *testing.T) {
		g := NewGate(GateOptions{})
		defer g.Close()
		release := enter(t, g)
		if err := g.Pause(context.Background(), false, 0); err != nil {
			t.Fatal(err)
		}
		release()
		if left := g.Drain(context.Background(), time.Second); left != 0 {
			t.Fatalf("Drain left %d", left)
		}
		g.Unpause()
		if !g.Paused() {
			t.Fatal("Unpause reopened a drained gate")
		}
	})
}

func TestGateConcurrent(t *testing.T) {
	g := NewGate(GateOptions{Lease: 20 * time.Millisecond})
	defer g.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if release, err := g.Enter(); err == nil {
					release()
				} else if !errors.Is(err, ErrPaused) {
					t.Errorf("Enter: %v", err)
				}
			}
		})
	}
	for i := range 2 {
		wg.Go(func() {
			for j := range 50 {
				_ = g.Pause(ctx, j%2 == 0, 10*time.Millisecond)
				if i == 0 {
					g.Unpause()
				}
				_ = g.Stats()
			}
		})
	}
	wg.Wait()
	if n := g.InFlight(); n != 0 {
		t.Fatalf("InFlight after every transaction finished = %d", n)
	}
}
