package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// serverLog is a server's JSON log, in a file (slog's handler serializes
// the writes of the lease timer's goroutine and the RPCs').
type serverLog struct{ path string }

func newServerLog(t *testing.T) (*serverLog, *slog.Logger) {
	t.Helper()
	l := &serverLog{path: filepath.Join(t.TempDir(), "server.log")}
	f, err := os.Create(l.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return l, slog.New(slog.NewJSONHandler(f, nil))
}

// interval is one pause of a server, from its own log.
type interval struct {
	id       string
	from, to time.Time // to is zero while it lasts
	reason   string    // why it ended
}

// pauses reads the server's pauses from its log lines "admin: paused" and
// "admin: unpaused".
func (l *serverLog) pauses(t *testing.T) []interval {
	t.Helper()
	b, err := os.ReadFile(l.path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var out []interval
	open := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var e struct {
			Msg    string    `json:"msg"`
			ID     string    `json:"pause_id"`
			At     time.Time `json:"at"`
			Reason string    `json:"reason"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("server log line %q: %v", sc.Text(), err)
		}
		switch e.Msg {
		case "admin: paused":
			open[e.ID] = len(out)
			out = append(out, interval{id: e.ID, from: e.At})
		case "admin: unpaused":
			i, ok := open[e.ID]
			if !ok {
				t.Fatalf("server log: unpause of %s, never paused: %s", e.ID, text)
			}
			out[i].to, out[i].reason = e.At, e.Reason
		}
	}
	return out
}

// coveredBy says whether one pause in ps lasted from start to end.
func coveredBy(ps []interval, start, end time.Time) bool {
	for _, p := range ps {
		if !p.from.After(start) && (p.to.IsZero() || !p.to.Before(end)) {
			return true
		}
	}
	return false
}

// printedWindow parses the JSON line of admin pause --duration.
func printedWindow(t *testing.T, out string) (start, end time.Time) {
	t.Helper()
	var w admin.WindowJSON
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("printed window %q: %v", out, err)
	}
	return time.UnixMilli(w.PauseStartTimestampMs), time.UnixMilli(w.PauseEndTimestampMs)
}

// A server whose lease runs out just before each renewal reaches it is
// re-paused by that renewal: the window must be refused, not printed. (The
// first renewal ends it: the long --duration only makes sure one comes.)
func TestAdminPauseRefusesALapsedRenewal(t *testing.T) {
	const lease = time.Minute
	clock := admin.NewManualClock(time.Now())
	// Before every Pause after the first (the renewals), the lease runs
	// out on the server that receives it.
	lapse := testenv.BeforeCall("/rpc.Admin/Pause", func(n int32) {
		if n > 1 {
			clock.Advance(lease)
		}
	})
	logs, logger := newServerLog(t)
	gates, addrs := adminServersWith(t, []admin.GateOptions{{Lease: lease, Clock: clock, Logger: logger}}, lapse)
	out, err := runAdmin(t, "admin", "pause", "--duration", "1m", "--renew-every", "50ms", "-a", addrs[0])
	if err == nil || out != "" {
		t.Fatalf("a window across a lapsed pause was printed: %q (err %v); the server's pauses: %+v", out, err, logs.pauses(t))
	}
	if !strings.Contains(err.Error(), "must not be used for a backup") {
		t.Errorf("the error does not say the window is unusable: %v", err)
	}
	if s := gates[0].Stats(); s.Paused || s.LeaseExpiries == 0 {
		t.Errorf("server after the refused window: %+v; want unpaused, its lease expired", s)
	}
}

// TestCampaignPauseLease runs admin pause --duration against servers whose
// lease is 1 to 1.1 times --renew-every, so that leases run out around the
// renewals: every window printed must lie inside one uninterrupted pause of
// every server, by the servers' own logs; runs that refuse the window are
// counted.
func TestCampaignPauseLease(t *testing.T) {
	const renew = 300 * time.Millisecond
	trials := testenv.Trials(t, 3, 20)
	printed, refused, expiries := 0, 0, 0
	for i := range trials {
		var opts []admin.GateOptions
		var logs []*serverLog
		for j := range 3 {
			l, logger := newServerLog(t)
			logs = append(logs, l)
			// 300 to 329 ms: runs with a 300 ms lease lapse at every
			// renewal, the others only when a renewal is slow.
			lease := renew + time.Duration((i%4)*9+j)*time.Millisecond
			opts = append(opts, admin.GateOptions{Lease: lease, Logger: logger})
		}
		gates, addrs := adminServersWith(t, opts)
		out, err := runAdmin(t, "admin", "pause", "--duration", "1s", "--renew-every", renew.String(), "-a", strings.Join(addrs, ","))
		for j, g := range gates {
			expiries += int(g.Stats().LeaseExpiries)
			if g.Paused() {
				t.Errorf("run %d: %s still paused after the command", i, addrs[j])
			}
		}
		if err != nil {
			refused++
			if out != "" || !strings.Contains(err.Error(), "must not be used for a backup") {
				t.Errorf("run %d failed without saying the window is unusable, or printed one: %q, %v", i, out, err)
			}
			continue
		}
		printed++
		start, end := printedWindow(t, out)
		for j, l := range logs {
			if ps := l.pauses(t); !coveredBy(ps, start, end) {
				t.Errorf("run %d: printed window %s..%s, but %s was not paused throughout: %s",
					i, start.Format(time.StampMicro), end.Format(time.StampMicro), addrs[j], describePauses(ps))
			}
		}
	}
	t.Logf("%d runs: %d printed a window (each checked against the servers' logs), %d refused it; %d lease expiries on the servers", trials, printed, refused, expiries)
}

func describePauses(ps []interval) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "[%s %s..%s %s] ", p.id, p.from.Format(time.StampMicro), p.to.Format(time.StampMicro), p.reason)
	}
	return b.String()
}

func TestBackupCreateBoundFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"backup", "create", "--fence-max-hold", "0s"}, `"--fence-max-hold" flag: must be above zero`},
		{[]string{"backup", "create", "--mode", "pause", "--renew-every", "-1s"}, `"--renew-every" flag: must be at least 0s`},
	}
	for _, tt := range tests {
		_, err := runAdmin(t, append(tt.args, "--data-dir", t.TempDir())...)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v; want a usage error with %q", tt.args, err, tt.want)
		}
	}
}
