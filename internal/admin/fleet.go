package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	adminpb "github.com/stillpoint/stillpoint/proto/rpc"
)

// DefaultTimeout is the per-RPC timeout of a Fleet given 0.
const DefaultTimeout = 10 * time.Second

// Unpauses after a failure are retried this many times in all, each try
// with its own timeout of at most unpauseTimeout.
const (
	unpauseAttempts = 3
	unpauseTimeout  = 5 * time.Second
)

// ParseTargets splits a comma-separated list of host:port addresses.
// IPv6 addresses go in brackets: [::1]:50051.
func ParseTargets(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, errors.New("no addresses: give host:port[,host:port...]")
	}
	var out []string
	seen := map[string]bool{}
	for i, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("address %d in %q is empty", i+1, list)
		}
		host, port, err := net.SplitHostPort(entry)
		if err != nil {
			if strings.Count(entry, ":") > 1 && !strings.HasPrefix(entry, "[") {
				return nil, fmt.Errorf("address %q: an IPv6 address goes in brackets, as in [::1]:50051", entry)
			}
			return nil, fmt.Errorf("address %q: want host:port (%v)", entry, err)
		}
		if host == "" {
			return nil, fmt.Errorf("address %q has no host", entry)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("address %q: port %q is not a number from 1 to 65535", entry, port)
		}
		t := net.JoinHostPort(host, port)
		if seen[t] {
			return nil, fmt.Errorf("address %q is listed twice", entry)
		}
		seen[t] = true
		out = append(out, t)
	}
	return out, nil
}

// ResolveSRV looks up the DNS SRV record name (for example
// _admin._tcp.stillpoint.prod.svc.cluster.local) and returns its targets
// as host:port, in the resolver's order (priority, then weight).
func ResolveSRV(ctx context.Context, name string) ([]string, error) {
	_, srvs, err := net.DefaultResolver.LookupSRV(ctx, "", "", name)
	if err != nil {
		return nil, fmt.Errorf("resolve SRV record %q: %w", name, err)
	}
	var out []string
	for _, s := range srvs {
		out = append(out, net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("SRV record %q has no targets", name)
	}
	return out, nil
}

// DialOptions say how to connect to the servers.
type DialOptions struct {
	// TLS connects with TLS, checking the server's certificate against
	// the system roots, or CACert. Setting CACert or ServerName implies TLS.
	TLS bool
	// CACert is a PEM file of the certificate authorities to trust.
	CACert string
	// ServerName overrides the name the server's certificate must have.
	ServerName string
	// Token, if set, is sent with every call as the metadata
	// "authorization: Bearer <token>". It is sent without TLS too (so
	// loopback and in-cluster setups work without certificates): without
	// TLS anyone on the path can read it.
	Token string
}

// GRPCOptions turns o into the options of grpc.NewClient.
func (o DialOptions) GRPCOptions() ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	if o.TLS || o.CACert != "" || o.ServerName != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
		if o.CACert != "" {
			pem, err := os.ReadFile(o.CACert)
			if err != nil {
				return nil, fmt.Errorf("CA certificate: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", o.CACert)
			}
			cfg.RootCAs = pool
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if o.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerToken(o.Token)))
	}
	return opts, nil
}

// bearerToken sends "authorization: Bearer <token>" with every call.
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity is false so that the token also goes over
// plaintext connections (loopback, tests, meshes that encrypt for us).
func (bearerToken) RequireTransportSecurity() bool { return false }

// TargetResult is the outcome of one call on one target.
type TargetResult struct {
	Target string
	Err    error     // nil: it succeeded
	At     time.Time // when the answer came
}

// Fleet is a set of servers paused and unpaused together.
type Fleet struct {
	targets []string
	conns   []*grpc.ClientConn
	clients []adminpb.AdminClient
	timeout time.Duration
	// checkPausedProof: Hold accepts targets without a pause id, checked
	// by CheckPaused alone (AllowCheckPausedProof).
	checkPausedProof bool
}

// AllowCheckPausedProof lets Hold make a window with targets that report no
// pause_id, such as ScalarDB Server 3.6 to 3.13 (whose Stats answers "{}"
// up to 3.8 and is Unimplemented from 3.9). Such a target has no lease, so
// it is sent no renewal (a renewal would also re-close a gate someone
// opened, hiding the gap); its pause is checked with CheckPaused when the
// window starts, after every renewal period and at the window's end. That
// proves it was paused at each check, not in between: an Unpause followed
// by a Pause (another operator's run, a restart and a re-pause) between two
// checks goes unseen. A target without CheckPaused either (ScalarDB Server
// 3.4, 3.5) is still refused: nothing could show that its pause held.
func (f *Fleet) AllowCheckPausedProof() { f.checkPausedProof = true }

// NewFleet prepares connections to targets (host:port); nothing is dialled
// until the first call. timeout bounds each call (0: DefaultTimeout); a
// Pause that waits for transactions gets its max wait on top.
func NewFleet(targets []string, dial DialOptions, timeout time.Duration) (*Fleet, error) {
	if len(targets) == 0 {
		return nil, errors.New("no targets")
	}
	opts, err := dial.GRPCOptions()
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	f := &Fleet{targets: append([]string(nil), targets...), timeout: timeout}
	for _, t := range targets {
		cc, err := grpc.NewClient(t, opts...)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("target %s: %w", t, err)
		}
		f.conns = append(f.conns, cc)
		f.clients = append(f.clients, adminpb.NewAdminClient(cc))
	}
	return f, nil
}

// Targets are the fleet's addresses.
func (f *Fleet) Targets() []string { return append([]string(nil), f.targets...) }

// Close closes the connections.
func (f *Fleet) Close() error {
	var errs []error
	for _, cc := range f.conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

// each runs call on every target in parallel, each with its own timeout.
func (f *Fleet) each(ctx context.Context, timeout time.Duration, call func(ctx context.Context, i int) error) []TargetResult {
	res := make([]TargetResult, len(f.targets))
	var wg sync.WaitGroup
	for i := range f.targets {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			err := call(cctx, i)
			res[i] = TargetResult{Target: f.targets[i], Err: err, At: time.Now()}
		})
	}
	wg.Wait()
	return res
}

// Pause is a pause in force on every target of a fleet.
type Pause struct {
	// Start is when the last target confirmed its pause: from then on,
	// every target was paused.
	Start   time.Time
	Targets []string
	// How the targets were paused: renewals pause the same way, so that a
	// renewal that finds a target unpaused drains it as the pause did.
	waitOutstanding bool
	maxWait         time.Duration
}

// PauseFailedError is PauseAll's error: some target did not pause, and
// every target was then sent an unpause.
type PauseFailedError struct {
	Pause   []TargetResult // each target's Pause
	Unpause []TargetResult // each target's Unpause, after the failure
	// Interrupted is why the pause stopped when it was cancelled (SIGINT):
	// the targets that did not pause were cut short, not at fault.
	Interrupted error
}

func (e *PauseFailedError) Error() string {
	var b strings.Builder
	failed := 0
	for _, r := range e.Pause {
		if r.Err != nil {
			failed++
		}
	}
	if e.Interrupted != nil {
		fmt.Fprintf(&b, "pause interrupted (%v) before %d of %d targets paused (", e.Interrupted, failed, len(e.Pause))
	} else {
		fmt.Fprintf(&b, "pause failed on %d of %d targets (", failed, len(e.Pause))
	}
	earlier := map[string]string{}
	for i, r := range e.Pause {
		if i > 0 {
			b.WriteString("; ")
		}
		if r.Err != nil {
			earlier[r.Target] = rpcError(r.Err)
			fmt.Fprintf(&b, "%s: %s", r.Target, earlier[r.Target])
		} else {
			fmt.Fprintf(&b, "%s: paused", r.Target)
		}
	}
	b.WriteString("); ")
	if e.Interrupted == nil {
		b.WriteString("the pause failed; ")
	}
	b.WriteString(unpauseSummary(e.Unpause, earlier))
	b.WriteString("; this window must not be used for a backup")
	return b.String()
}

// unpauseSummary says whether every target was unpaused. earlier are
// errors already reported per target, not repeated. A target that could
// not be reached for the pause nor for the unpause was never paused.
func unpauseSummary(res []TargetResult, earlier map[string]string) string {
	var unreachable, uncertain []string
	for _, r := range res {
		if r.Err == nil {
			continue
		}
		msg := rpcError(r.Err)
		switch {
		case earlier[r.Target] == msg && status.Code(r.Err) == codes.Unavailable:
			unreachable = append(unreachable, r.Target)
		case earlier[r.Target] == msg:
			uncertain = append(uncertain, r.Target+": the same error")
		default:
			uncertain = append(uncertain, r.Target+": "+msg)
		}
	}
	var parts []string
	switch {
	case len(unreachable) == 0 && len(uncertain) == 0:
		return "every target was unpaused"
	case len(uncertain) == 0:
		parts = append(parts, "every reachable target was unpaused")
	}
	if len(unreachable) > 0 {
		parts = append(parts, fmt.Sprintf("unreachable, so never paused: %s", strings.Join(unreachable, ", ")))
	}
	if len(uncertain) > 0 {
		parts = append(parts, fmt.Sprintf("the unpause failed on %d (%s): they may still be paused until their pause lease runs out (check with admin check-paused, unpause with admin unpause)",
			len(uncertain), strings.Join(uncertain, "; ")))
	}
	return strings.Join(parts, "; ")
}

// rpcError is a gRPC error without the "rpc error: code = ... desc =" frame.
func rpcError(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s", s.Code(), s.Message())
	}
	return err.Error()
}

// PauseAll pauses every target in parallel: each closes to new
// transactions and, with waitOutstanding, waits for those in flight, for
// at most maxWait (0: the server's default, 30s for Stillpoint; negative:
// no wait, as ScalarDB's servers take it, so a target with a transaction
// in flight fails the pause).
//
// If any target fails, every target (those that paused, those that failed,
// which may have paused anyway) is sent an Unpause, even if ctx has been
// cancelled, and the error is a *PauseFailedError.
func (f *Fleet) PauseAll(ctx context.Context, waitOutstanding bool, maxWait time.Duration) (*Pause, error) {
	res := f.pauseEach(ctx, waitOutstanding, maxWait, nil)
	p := &Pause{Targets: f.Targets(), waitOutstanding: waitOutstanding, maxWait: maxWait}
	for _, r := range res {
		if r.Err != nil {
			return nil, &PauseFailedError{Pause: res, Unpause: f.unpauseEvery(context.WithoutCancel(ctx)), Interrupted: context.Cause(ctx)}
		}
		if r.At.After(p.Start) {
			p.Start = r.At
		}
	}
	return p, nil
}

// pauseEach sends Pause to every target in parallel, but those skip
// names (nil: none), which count as done.
func (f *Fleet) pauseEach(ctx context.Context, waitOutstanding bool, maxWait time.Duration, skip []bool) []TargetResult {
	req := &adminpb.PauseRequest{WaitOutstanding: waitOutstanding}
	switch {
	case maxWait > 0:
		ms := (maxWait + time.Millisecond - 1).Milliseconds()
		req.MaxPauseWaitTime = &ms
	case maxWait < 0:
		// Any negative value is "no wait" to ScalarDB's servers and ours;
		// -1ns must not round to 0, which is the server's default.
		ms := min(maxWait.Milliseconds(), -1)
		req.MaxPauseWaitTime = &ms
	}
	timeout := f.timeout
	if waitOutstanding {
		timeout += max(maxWait, DefaultMaxWait)
	}
	return f.each(ctx, timeout, func(ctx context.Context, i int) error {
		if skip != nil && skip[i] {
			return nil
		}
		_, err := f.clients[i].Pause(ctx, req)
		return err
	})
}

// unpauseEvery sends Unpause to every target in parallel, retrying failed
// ones, and returns the last outcome on each.
func (f *Fleet) unpauseEvery(ctx context.Context) []TargetResult {
	res := make([]TargetResult, len(f.targets))
	var wg sync.WaitGroup
	for i := range f.targets {
		wg.Go(func() {
			for attempt := 1; ; attempt++ {
				cctx, cancel := context.WithTimeout(ctx, min(f.timeout, unpauseTimeout))
				_, err := f.clients[i].Unpause(cctx, &emptypb.Empty{})
				cancel()
				res[i] = TargetResult{Target: f.targets[i], Err: err, At: time.Now()}
				if err == nil || attempt == unpauseAttempts || ctx.Err() != nil || !retryable(err) {
					return
				}
				select {
				case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	return res
}

// retryable: errors another try may not get (refused credentials, a
// server without rpc.Admin) are not retried.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented, codes.InvalidArgument:
		return false
	}
	return true
}

// FleetError lists the targets on which a call failed.
type FleetError struct {
	Op      string         // "unpause", "check-paused"
	Results []TargetResult // every target's outcome
}

func (e *FleetError) Error() string {
	var bad []string
	for _, r := range e.Results {
		if r.Err != nil {
			bad = append(bad, fmt.Sprintf("%s: %s", r.Target, rpcError(r.Err)))
		}
	}
	return fmt.Sprintf("%s failed on %d of %d targets: %s", e.Op, len(bad), len(e.Results), strings.Join(bad, "; "))
}

func fleetError(op string, res []TargetResult) error {
	for _, r := range res {
		if r.Err != nil {
			return &FleetError{Op: op, Results: res}
		}
	}
	return nil
}

// UnpauseAll unpauses every target in parallel, retrying failures a
// couple of times; the error is a *FleetError naming those that failed.
func (f *Fleet) UnpauseAll(ctx context.Context) error {
	return fleetError("unpause", f.unpauseEvery(ctx))
}

// CheckAll asks every target whether it is paused. The map holds the
// targets that answered; the error (a *FleetError) names those that did not.
func (f *Fleet) CheckAll(ctx context.Context) (map[string]bool, error) {
	paused := make([]bool, len(f.targets))
	res := f.each(ctx, f.timeout, func(ctx context.Context, i int) error {
		r, err := f.clients[i].CheckPaused(ctx, &emptypb.Empty{})
		paused[i] = r.GetPaused()
		return err
	})
	out := map[string]bool{}
	for i, r := range res {
		if r.Err == nil {
			out[r.Target] = paused[i]
		}
	}
	return out, fleetError("check-paused", res)
}

// Window is a span of time during which every target was paused, without
// interruption.
type Window struct {
	// Start is when the last target answered that it was paused, with the
	// pause id the window is checked against.
	Start time.Time
	// End is taken before the last check that every target still held the
	// same pause, and before any unpause was sent.
	End     time.Time
	Targets []string
}

// InvalidWindowError is Hold's error: the pause was interrupted, or a
// target was found not paused, or paused again since the window began.
// Every target was then unpaused (see Unpause); Window is the span held,
// which must not be used for a backup.
type InvalidWindowError struct {
	Reason  string
	Window  Window
	Unpause []TargetResult
}

func (e *InvalidWindowError) Error() string {
	return fmt.Sprintf("%s; %s; the window is not valid: this window must not be used for a backup", e.Reason, unpauseSummary(e.Unpause, nil))
}

// HoldFor is the work of a window that only waits: Hold's work for d. It
// waits 2 ms more, so that the window, rounded inwards to the millisecond
// when printed, still lasts d.
func HoldFor(d time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTimer(d + 2*time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Hold keeps the pause p while work runs, then checks that every target
// stayed paused throughout, takes the window's end, and unpauses every
// target. It is the one way a paused window is made: admin pause
// --duration holds for a time (HoldFor), a pause-mode backup while its
// snapshots open.
//
// Each target's Stats names its current pause (pause_id). The ids are read
// when the window starts and again at its end (and after every renewal): a
// target whose pause lapsed (lease run out, restart, someone's unpause) is
// either found open or found under another id, even if something paused it
// again in between, and the window is refused. If p drained, no target may
// have a transaction in flight at the start (one would mean its pause lapsed
// and was re-closed without draining). Targets that do not report
// a pause id cannot prove their pause continuous, so no window is made
// with them, unless the fleet allows CheckPaused proof
// (AllowCheckPausedProof), which says what it can and cannot prove.
//
// If renew > 0, the pause is renewed every renew by pausing again, as p
// was paused (so a target found open is drained, not just closed), which
// restarts the servers' leases; targets checked by CheckPaused are only
// checked.
//
// If ctx is cancelled, work fails, a check fails or a renewal fails, Hold
// cancels work's context (otherwise left alone) and waits for work, still unpauses every target (ignoring
// ctx's cancellation), and returns the error: an *InvalidWindowError, or
// work's own error.
func (f *Fleet) Hold(ctx context.Context, p *Pause, renew time.Duration, work func(context.Context) error) (Window, error) {
	if p == nil {
		return Window{}, errors.New("hold: no pause")
	}
	w := Window{Targets: p.Targets}
	// work's context ends only if the hold fails: what work opened (a
	// snapshot's transaction) may live in it after a good window.
	wctx, cancel := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	started := false
	fail := func(reason string) (Window, error) {
		if ctx.Err() != nil {
			// Whatever call failed last, it failed because the hold was
			// interrupted: say so, not what the cancelled call reported.
			reason = fmt.Sprintf("interrupted (%v)", context.Cause(ctx))
			if !w.Start.IsZero() {
				reason = fmt.Sprintf("interrupted after %v (%v)", time.Since(w.Start).Round(time.Millisecond), context.Cause(ctx))
			}
		}
		cancel()
		w.End = time.Now()
		err := &InvalidWindowError{Reason: reason, Window: w, Unpause: f.unpauseEvery(context.WithoutCancel(ctx))}
		if started {
			<-workDone
		}
		return w, err
	}

	ids, at, reason := f.pauseIDs(ctx, nil, p.waitOutstanding, renew)
	if reason != "" {
		return fail(reason)
	}
	w.Start = at
	started = true
	go func() { workDone <- work(wctx) }()
	var tick <-chan time.Time
	if renew > 0 {
		t := time.NewTicker(renew)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return fail("")
		case err := <-workDone:
			started = false
			if ctx.Err() != nil {
				return fail("")
			}
			if err != nil {
				w.End = time.Now()
				if uerr := fleetError("unpause", f.unpauseEvery(context.WithoutCancel(ctx))); uerr != nil {
					return w, fmt.Errorf("%w; then %v", err, uerr)
				}
				return w, err
			}
			end := time.Now()
			if _, _, reason := f.pauseIDs(ctx, ids, false, 0); reason != "" {
				return fail(reason)
			}
			w.End = end
			if err := fleetError("unpause", f.unpauseEvery(context.WithoutCancel(ctx))); err != nil {
				// The window itself was good; the servers are still paused.
				return w, err
			}
			return w, nil
		case <-tick:
			if err := fleetError("renewing the pause", f.pauseEach(ctx, p.waitOutstanding, p.maxWait, unleased(ids))); err != nil {
				return fail(err.Error())
			}
			if _, _, reason := f.pauseIDs(ctx, ids, false, 0); reason != "" {
				return fail(reason)
			}
		}
	}
}

// unleased says which targets are checked by CheckPaused (their id in ids
// is ""): they have no lease, and are sent no renewal.
func unleased(ids []string) []bool {
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = id == ""
	}
	return out
}

// pauseState is what a target tells of its pause.
type pauseState struct {
	Stats
	// byCheck: the target reports no pause state in its Stats (ScalarDB
	// Server's "{}", or no Stats at all), and Paused came from CheckPaused.
	byCheck bool
	// foreign: the target reports no pause state in its Stats, and was not
	// asked with CheckPaused (the fleet does not allow that proof).
	foreign bool
	// noCheck: CheckPaused is Unimplemented on the target too.
	noCheck bool
}

// pauseState reads target i's pause from its Stats, or from CheckPaused
// for a target checked that way: one whose id in want is "", or, when the
// ids are first read (want is nil) and the fleet allows CheckPaused proof,
// one whose Stats has no pause state.
func (f *Fleet) pauseState(ctx context.Context, i int, want []string) (pauseState, error) {
	var st pauseState
	if want == nil || want[i] != "" {
		r, err := f.clients[i].Stats(ctx, &emptypb.Empty{})
		var keys map[string]json.RawMessage
		switch {
		case status.Code(err) == codes.Unimplemented:
		case err != nil:
			return st, err
		case json.Unmarshal([]byte(r.GetStats()), &keys) != nil:
			return st, fmt.Errorf("its Stats is not a JSON object: %q", r.GetStats())
		}
		// A Stillpoint server always reports "paused"; ScalarDB Server
		// answers "{}" up to 3.8 and has no Stats from 3.9.
		if _, ok := keys["paused"]; ok {
			return st, json.Unmarshal([]byte(r.GetStats()), &st.Stats)
		}
		if !f.checkPausedProof {
			st.foreign = true
			return st, nil
		}
	}
	st.byCheck = true
	r, err := f.clients[i].CheckPaused(ctx, &emptypb.Empty{})
	if status.Code(err) == codes.Unimplemented {
		st.noCheck = true
		return st, nil
	}
	st.Paused = r.GetPaused()
	return st, err
}

// pauseIDs reads every target's pause state: each must be paused, under the
// pause id in want (nil: any; "": a target checked by CheckPaused, which
// has no id), and with drained, have no transaction in flight (a paused
// server admits none, so a pause that drained keeps none: one in flight
// means it lapsed and was paused again without draining). It returns the
// ids, when the last answer came, and why the targets are not all paused
// ("" if they are). Given the renewal period, it warns of targets whose
// lease is too short for it.
func (f *Fleet) pauseIDs(ctx context.Context, want []string, drained bool, renew time.Duration) ([]string, time.Time, string) {
	states := make([]pauseState, len(f.targets))
	res := f.each(ctx, f.timeout, func(ctx context.Context, i int) error {
		var err error
		states[i], err = f.pauseState(ctx, i, want)
		return err
	})
	if err := fleetError("checking the pause", res); err != nil {
		return nil, time.Time{}, "could not confirm that every target was still paused: " + err.Error()
	}
	ids := make([]string, len(f.targets))
	var last time.Time
	var open, repaused, unproven, unchecked, busy []string
	for i, s := range states {
		t := f.targets[i]
		ids[i] = s.PauseID
		switch {
		case s.foreign:
			unproven = append(unproven, t)
		case s.noCheck:
			unchecked = append(unchecked, t)
		case !s.Paused:
			open = append(open, t)
		case s.PauseID == "" && !s.byCheck:
			unproven = append(unproven, t)
		case want != nil && s.PauseID != want[i]:
			repaused = append(repaused, fmt.Sprintf("%s (pause %s, now %s)", t, want[i], s.PauseID))
		case drained && s.InFlight > 0:
			busy = append(busy, fmt.Sprintf("%s (%d)", t, s.InFlight))
		}
		if res[i].At.After(last) {
			last = res[i].At
		}
		// Renewed less than twice per lease, a lease may run out before
		// its renewal arrives, and the window is refused.
		if lease := time.Duration(s.LeaseMs) * time.Millisecond; renew > 0 && renew > lease/2 && lease > 0 {
			slog.Warn("admin: the pause is renewed less than twice per lease: a lease may run out before its renewal, and then the window is refused (renew more often, or lengthen the server's --pause-lease)",
				"target", t, "lease", lease, "renew_every", renew)
		}
	}
	var reasons []string
	if len(open) > 0 {
		reasons = append(reasons, fmt.Sprintf("%s no longer paused (its pause lease ran out, it restarted, or someone unpaused it)", strings.Join(open, ", ")))
	}
	if len(repaused) > 0 {
		reasons = append(reasons, fmt.Sprintf("%s unpaused and paused again during the window (its pause lease ran out before a renewal, or it restarted): transactions may have run", strings.Join(repaused, ", ")))
	}
	if len(busy) > 0 {
		reasons = append(reasons, fmt.Sprintf("%s paused with transactions still in flight, though the pause drained them (its lease ran out and something paused it again without draining)", strings.Join(busy, ", ")))
	}
	if len(unproven) > 0 {
		reasons = append(reasons, fmt.Sprintf("%s reports no pause_id in its Stats (not a Stillpoint server: ScalarDB Server?), so its pause cannot be proven uninterrupted; a window checked by CheckPaused alone must be asked for (--allow-check-paused-proof)", strings.Join(unproven, ", ")))
	}
	if len(unchecked) > 0 {
		reasons = append(reasons, fmt.Sprintf("%s reports no pause_id and has no CheckPaused (ScalarDB Server 3.4 or 3.5?), so nothing can show that its pause held to the window's end; pause it without --duration, take the backup, then unpause it (as scalar-admin does), or upgrade it to 3.6 or later", strings.Join(unchecked, ", ")))
	}
	return ids, last, strings.Join(reasons, "; ")
}

// DateTimeLayout is the local date-time of the window's JSON.
const DateTimeLayout = "2006-01-02T15:04:05.000"

// WindowJSON is the window as scalar-admin-for-kubernetes prints it, plus
// the targets.
type WindowJSON struct {
	PauseStartTimestampMs int64    `json:"pause_start_timestamp_ms"`
	PauseEndTimestampMs   int64    `json:"pause_end_timestamp_ms"`
	PauseStartDateTime    string   `json:"pause_start_date_time"`
	PauseEndDateTime      string   `json:"pause_end_date_time"`
	Timezone              string   `json:"timezone"`
	Targets               []string `json:"targets"`
}

// Fields returns the window in milliseconds, rounded inwards (start up,
// end down) so that the printed window lies within the real one, with its
// date-times in loc (nil: UTC).
func (w Window) Fields(loc *time.Location) WindowJSON {
	if loc == nil {
		loc = time.UTC
	}
	start := w.Start.UnixMilli()
	if w.Start.Sub(time.UnixMilli(start)) > 0 {
		start++
	}
	end := w.End.UnixMilli()
	targets := w.Targets
	if targets == nil {
		targets = []string{}
	}
	return WindowJSON{
		PauseStartTimestampMs: start,
		PauseEndTimestampMs:   end,
		PauseStartDateTime:    time.UnixMilli(start).In(loc).Format(DateTimeLayout),
		PauseEndDateTime:      time.UnixMilli(end).In(loc).Format(DateTimeLayout),
		Timezone:              ZoneName(loc),
		Targets:               targets,
	}
}

// JSON is the window as one line of JSON (without the newline).
func (w Window) JSON(loc *time.Location) []byte {
	b, err := json.Marshal(w.Fields(loc))
	if err != nil {
		panic(err) // strings and numbers only
	}
	return b
}

// ZoneName is loc's IANA name. For time.Local it is found from $TZ or the
// /etc/localtime link, else it is the zone's abbreviation.
func ZoneName(loc *time.Location) string {
	if loc == nil {
		return "UTC"
	}
	if name := loc.String(); name != "Local" {
		return name
	}
	if tz, ok := os.LookupEnv("TZ"); ok {
		tz = strings.TrimPrefix(tz, ":")
		if tz == "" {
			return "UTC"
		}
		if _, err := time.LoadLocation(tz); err == nil && !filepath.IsAbs(tz) {
			return tz
		}
	}
	if link, err := os.Readlink("/etc/localtime"); err == nil {
		if _, name, ok := strings.Cut(link, "zoneinfo/"); ok {
			if _, err := time.LoadLocation(name); err == nil {
				return name
			}
		}
	}
	abbr, _ := time.Now().In(loc).Zone()
	return abbr
}
