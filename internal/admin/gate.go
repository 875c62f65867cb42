// Package admin pauses Stillpoint servers for backups, speaking
// scalar-admin's rpc.Admin protocol.
//
// The server side is a Gate every transaction passes through (Enter when it
// begins, release when it commits or aborts) and Service, the rpc.Admin
// service over a Gate. The client side is Fleet, which pauses many servers
// together and reports the window during which all of them were paused.
package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultMaxWait is how long Pause waits for the transactions in flight
// when neither the call nor GateOptions says (ScalarDB Server 3.6 to 3.13,
// the last open-source one).
const DefaultMaxWait = 30 * time.Second

// ErrPaused is what Enter returns while the gate is closed.
var ErrPaused = errors.New("the server is paused for a backup: no new transactions are accepted; retry later")

// ErrShuttingDown is what Enter returns after Drain. It matches ErrPaused
// under errors.Is, so callers that retry on ErrPaused do so here too (on
// another server, or after a restart).
var ErrShuttingDown error = shuttingDown{}

type shuttingDown struct{}

func (shuttingDown) Error() string {
	return "the server is shutting down: no new transactions are accepted; retry later"
}
func (shuttingDown) Is(target error) bool { return target == ErrPaused }

// ErrDrainTimeout is returned (wrapped, with the number of transactions
// still in flight) by a Pause whose transactions did not finish in time.
// The gate has been reopened when it is returned.
var ErrDrainTimeout = errors.New("the transactions in flight did not finish in time; the pause was abandoned and the server unpaused")

// ErrPauseInterrupted is returned by a Pause that was still waiting for
// transactions when the gate was reopened by Unpause, an expired lease or
// the maximum hold.
var ErrPauseInterrupted = errors.New("the pause was cancelled while waiting for transactions in flight (unpaused, or its lease expired)")

// GateOptions configure a Gate.
type GateOptions struct {
	// DefaultMaxWait bounds Pause's wait for transactions in flight when
	// the call gives 0. Zero means DefaultMaxWait (30s).
	DefaultMaxWait time.Duration
	// Lease, if positive, is how long a pause lasts without being renewed
	// by another Pause: when it runs out, the gate reopens by itself and
	// logs a warning, so an orchestrator that died never leaves the server
	// paused. Zero means pauses last until Unpause. PauseUntilUnpause
	// makes pauses without a lease.
	Lease time.Duration
	// MaxHold, if positive, ends a pause made by PauseUntilUnpause this
	// long after it was made (renewals do not extend it), logging a
	// warning. Zero means such a pause lasts until Unpause.
	MaxHold time.Duration
	// Logger receives a line each time the gate pauses or unpauses (with
	// the pause's id and the instant), and the lease warnings; nil means
	// slog.Default().
	Logger *slog.Logger
	// Clock runs the lease and the maximum hold; nil means the system clock.
	Clock Clock
}

// Gate admits transactions while open, and closes for pauses and shutdown.
// A transaction, begin to commit or abort, is the unit: a pause waits for
// whole transactions, and one that has entered is never refused later.
// All methods are safe for concurrent use.
type Gate struct {
	maxWait  time.Duration
	lease    time.Duration
	maxHold  time.Duration
	log      *slog.Logger
	clock    Clock
	instance string // tells this gate's pause ids from another's (or a restarted server's)

	mu          sync.Mutex
	paused      bool // closed by Pause (or Drain)
	draining    bool // closed by Drain, for good
	epoch       uint64
	inFlight    int
	idle        chan struct{} // closed while inFlight == 0
	reopened    chan struct{} // closed when the current pause ends
	pausedSince time.Time
	pauseID     string
	held        bool        // the current pause has no lease (PauseUntilUnpause)
	stopTimer   func() bool // the lease's or maximum hold's timer, nil when none runs
	leaseGen    uint64
	stats       Stats
}

// Stats are a Gate's counters, as the Stats RPC reports them.
type Stats struct {
	Paused bool `json:"paused"`
	// ShuttingDown: Drain was called; the gate stays closed.
	ShuttingDown bool `json:"shutting_down"`
	InFlight     int  `json:"in_flight"`
	// Pauses counts the times Pause closed an open gate (renewals of a
	// pause already in force are not counted).
	Pauses uint64 `json:"pauses"`
	// DrainTimeouts counts the Pauses abandoned because the transactions
	// in flight did not finish in time.
	DrainTimeouts uint64 `json:"drain_timeouts"`
	// LeaseExpiries counts the pauses ended by their lease running out.
	LeaseExpiries uint64 `json:"lease_expiries"`
	// HoldExpiries counts the pauses without a lease ended by MaxHold.
	HoldExpiries uint64 `json:"hold_expiries"`
	// PausedSince is when the current pause closed the gate; nil when open.
	PausedSince *time.Time `json:"paused_since"`
	// PauseID names the current uninterrupted pause ("" when open): every
	// pause that closes an open gate gets a new one, unique across
	// restarts, and renewals keep it. A client that reads the same id at
	// the start and at the end of a window knows the server stayed paused
	// throughout.
	PauseID string `json:"pause_id,omitempty"`
	// LeaseMs is the pause lease in milliseconds (0: none). It is 0 while
	// the current pause is held without a lease.
	LeaseMs int64 `json:"lease_ms"`
}

// NewGate returns an open gate.
func NewGate(o GateOptions) *Gate {
	g := &Gate{maxWait: o.DefaultMaxWait, lease: o.Lease, maxHold: o.MaxHold, log: o.Logger, clock: o.Clock, idle: make(chan struct{})}
	if g.maxWait <= 0 {
		g.maxWait = DefaultMaxWait
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.clock == nil {
		g.clock = realClock{}
	}
	b := make([]byte, 6)
	rand.Read(b)
	g.instance = hex.EncodeToString(b)
	close(g.idle)
	return g
}

// Enter admits one transaction, or returns ErrPaused (ErrShuttingDown
// after Drain) while the gate is closed. The transaction must call release
// when it commits or aborts; release may be called more than once.
func (g *Gate) Enter() (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return nil, ErrShuttingDown
	}
	if g.paused {
		return nil, ErrPaused
	}
	if g.inFlight == 0 {
		g.idle = make(chan struct{})
	}
	g.inFlight++
	var once sync.Once
	return func() { once.Do(g.leave) }, nil
}

func (g *Gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	if g.inFlight == 0 {
		close(g.idle)
	}
}

// Pause closes the gate to new transactions. With waitOutstanding it then
// waits until none is in flight, for at most maxWait (0: the gate's
// default; negative: not at all, as ScalarDB Server, so the pause holds
// only if none is in flight right now); if they do not finish in time it
// reopens the gate and returns an error wrapping ErrDrainTimeout. If ctx
// ends first, the caller has gone and cannot learn of the pause, so a gate
// this call closed reopens (a pause already in force is left alone) and
// ctx.Err() is returned.
//
// Pausing a paused gate succeeds (waiting again if asked) and renews the
// lease. After Drain, Pause returns ErrShuttingDown.
func (g *Gate) Pause(ctx context.Context, waitOutstanding bool, maxWait time.Duration) error {
	return g.pause(ctx, waitOutstanding, maxWait, false)
}

// PauseUntilUnpause is Pause for clients that never renew (scalar-admin's
// tools): the pause has no lease and holds until Unpause, or until
// GateOptions.MaxHold. A pause in force, leased or not, becomes one
// without a lease and keeps its pause_id; a later Pause does not give it
// a lease back, since whoever made it will not renew it.
func (g *Gate) PauseUntilUnpause(ctx context.Context, waitOutstanding bool, maxWait time.Duration) error {
	return g.pause(ctx, waitOutstanding, maxWait, true)
}

func (g *Gate) pause(ctx context.Context, waitOutstanding bool, maxWait time.Duration, hold bool) error {
	if maxWait == 0 {
		maxWait = g.maxWait
	}
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		return ErrShuttingDown
	}
	closed := !g.paused // this call closes the gate (rather than renewing a pause)
	if closed {
		g.paused = true
		g.pausedSince = g.clock.Now()
		g.reopened = make(chan struct{})
		g.stats.Pauses++
		g.pauseID = fmt.Sprintf("%s-%d", g.instance, g.stats.Pauses)
		g.log.Info("admin: paused", "pause_id", g.pauseID, "at", g.pausedSince, "wait_outstanding", waitOutstanding, "lease", !hold)
	}
	if hold {
		g.hold()
	}
	g.armLease()
	epoch, idle, reopened := g.epoch, g.idle, g.reopened
	g.mu.Unlock()
	if !waitOutstanding {
		return nil
	}

	var expired <-chan time.Time
	if maxWait > 0 {
		timer := time.NewTimer(maxWait)
		defer timer.Stop()
		expired = timer.C
	} else {
		now := make(chan time.Time)
		close(now) // no wait: only what is in flight right now counts
		expired = now
	}
	var cause error
	select {
	case <-idle:
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.epoch != epoch || g.draining {
			return ErrPauseInterrupted
		}
		g.armLease() // the lease runs from the moment the pause is confirmed
		return nil
	case <-reopened:
		return ErrPauseInterrupted
	case <-expired:
	case <-ctx.Done():
		cause = ctx.Err()
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.epoch != epoch || g.draining {
		return ErrPauseInterrupted
	}
	left := g.inFlight
	if left == 0 && cause == nil {
		// They finished just as the timer fired (or none was in flight).
		g.armLease()
		return nil
	}
	if cause != nil {
		if closed {
			g.reopen("the caller of Pause went away")
		}
		return cause
	}
	g.reopen("drain timeout")
	g.stats.DrainTimeouts++
	if maxWait < 0 {
		return fmt.Errorf("%w: %d transaction(s) in flight and max_pause_wait_time is negative (no wait)", ErrDrainTimeout, left)
	}
	return fmt.Errorf("%w: %d transaction(s) still in flight after %v", ErrDrainTimeout, left, maxWait)
}

// Unpause reopens the gate. It is idempotent, and does nothing after Drain.
func (g *Gate) Unpause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused && !g.draining {
		g.reopen("unpause")
	}
}

// reopen opens the gate and ends the current pause, logging why. g.mu is
// held.
func (g *Gate) reopen(why string) {
	g.log.Info("admin: unpaused", "pause_id", g.pauseID, "at", g.clock.Now(), "paused_since", g.pausedSince, "reason", why)
	g.paused = false
	g.pausedSince = time.Time{}
	g.pauseID = ""
	g.held = false
	g.epoch++
	close(g.reopened)
	g.stopLease()
}

// armLease (re)starts the lease of the current pause, unless it is held
// without one. g.mu is held.
func (g *Gate) armLease() {
	if g.lease <= 0 || g.held {
		return
	}
	g.stopLease()
	gen := g.leaseGen
	g.stopTimer = g.clock.AfterFunc(g.lease, func() { g.expire(gen) })
}

// hold takes the current pause off its lease, starting the MaxHold timer
// the first time. g.mu is held.
func (g *Gate) hold() {
	if g.held {
		return
	}
	g.held = true
	g.stopLease()
	if g.maxHold > 0 {
		gen := g.leaseGen
		g.stopTimer = g.clock.AfterFunc(g.maxHold, func() { g.expire(gen) })
	}
}

// stopLease cancels the lease timer; a callback already running sees a
// newer generation and does nothing. g.mu is held.
func (g *Gate) stopLease() {
	g.leaseGen++
	if g.stopTimer != nil {
		g.stopTimer()
		g.stopTimer = nil
	}
}

func (g *Gate) expire(gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gen != g.leaseGen || !g.paused || g.draining {
		return
	}
	since, id := g.pausedSince, g.pauseID
	if g.held {
		g.stats.HoldExpiries++
		g.reopen("maximum hold reached")
		g.log.Warn("admin: a pause without a lease reached --admin-max-pause without an unpause; the server unpaused itself (a backup taken across this pause is not consistent)",
			"pause_id", id, "max_hold", g.maxHold, "paused_since", since, "paused_for", g.clock.Now().Sub(since).Round(time.Millisecond))
		return
	}
	g.stats.LeaseExpiries++
	g.reopen("lease expired")
	g.log.Warn("admin: pause lease expired without renewal or unpause; the server unpaused itself (the orchestrator that paused it may have died; a backup taken across this pause is not consistent)",
		"pause_id", id, "lease", g.lease, "paused_since", since, "paused_for", g.clock.Now().Sub(since).Round(time.Millisecond))
}

// Paused reports whether the gate is closed (by a pause or by Drain).
func (g *Gate) Paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// InFlight is the number of transactions that entered and have not left.
func (g *Gate) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight
}

// Stats returns a snapshot of the gate's state and counters.
func (g *Gate) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Paused, s.ShuttingDown, s.InFlight = g.paused, g.draining, g.inFlight
	if g.paused {
		t := g.pausedSince
		s.PausedSince = &t
	}
	s.PauseID = g.pauseID
	if !g.held {
		s.LeaseMs = g.lease.Milliseconds()
	}
	return s
}

// Drain closes the gate for good, for a graceful shutdown: no lease, and
// Unpause no longer opens it. It waits until no transaction is in flight,
// for at most timeout (0: no limit but ctx), and returns how many were
// still in flight when it stopped waiting.
func (g *Gate) Drain(ctx context.Context, timeout time.Duration) int {
	g.mu.Lock()
	if !g.paused {
		g.pausedSince = g.clock.Now()
	}
	g.paused, g.draining = true, true
	g.stopLease()
	idle := g.idle
	g.mu.Unlock()

	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-idle:
	case <-expired:
	case <-ctx.Done():
	}
	return g.InFlight()
}

// Close stops the gate's timers. The gate stays usable, without a lease
// for the current pause.
func (g *Gate) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopLease()
}
