package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// adminServers serves rpc.Admin over n fresh gates on 127.0.0.1.
func adminServers(t *testing.T, n int) ([]*admin.Gate, []string) {
	t.Helper()
	return adminServersWith(t, make([]admin.GateOptions, n))
}

// adminServersWith serves rpc.Admin over a gate per element of opts.
func adminServersWith(t *testing.T, opts []admin.GateOptions, sopts ...grpc.ServerOption) ([]*admin.Gate, []string) {
	t.Helper()
	var gates []*admin.Gate
	var addrs []string
	for _, o := range opts {
		addr, g := testenv.AdminServer(t, o, sopts...)
		gates = append(gates, g)
		addrs = append(addrs, addr)
	}
	return gates, addrs
}

// runAdmin runs the stillpoint command in-process.
func runAdmin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runAdminCtx(t, context.Background(), args...)
}

func runAdminCtx(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.ExecuteContext(ctx)
	if errb.Len() > 0 {
		t.Logf("stderr: %s", errb.String())
	}
	return out.String(), err
}

func wantUnpaused(t *testing.T, gates []*admin.Gate, addrs []string) {
	t.Helper()
	for i, g := range gates {
		if s := g.Stats(); s.Paused || s.Pauses != 1 {
			t.Errorf("%s: paused=%v after %d pauses; want unpaused after 1", addrs[i], s.Paused, s.Pauses)
		}
	}
}

func TestAdminPauseDuration(t *testing.T) {
	gates, addrs := adminServers(t, 3)
	out, err := runAdmin(t, "admin", "pause", "--duration", "300ms", "--renew-every", "100ms", "--timezone", "UTC", "-a", strings.Join(addrs, ","))
	if err != nil {
		t.Fatalf("admin pause --duration: %v", err)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want one JSON line, got %q", out)
	}
	keys := regexp.MustCompile(`"([a-z_]+)":`).FindAllStringSubmatch(out, -1)
	var order []string
	for _, k := range keys {
		order = append(order, k[1])
	}
	if got, want := strings.Join(order, ","), "pause_start_timestamp_ms,pause_end_timestamp_ms,pause_start_date_time,pause_end_date_time,timezone,targets"; got != want {
		t.Errorf("fields %s, want %s", got, want)
	}
	var w struct {
		StartMs  int64    `json:"pause_start_timestamp_ms"`
		EndMs    int64    `json:"pause_end_timestamp_ms"`
		Start    string   `json:"pause_start_date_time"`
		End      string   `json:"pause_end_date_time"`
		Timezone string   `json:"timezone"`
		Targets  []string `json:"targets"`
	}
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if w.EndMs-w.StartMs < 300 || w.Timezone != "UTC" || strings.Join(w.Targets, ",") != strings.Join(addrs, ",") {
		t.Errorf("window = %+v", w)
	}
	if w.Start != time.UnixMilli(w.StartMs).UTC().Format("2006-01-02T15:04:05.000") ||
		w.End != time.UnixMilli(w.EndMs).UTC().Format("2006-01-02T15:04:05.000") {
		t.Errorf("date-times %s..%s do not match %d..%d", w.Start, w.End, w.StartMs, w.EndMs)
	}
	wantUnpaused(t, gates, addrs)
}

func TestAdminPauseTargetDown(t *testing.T) {
	gates, addrs := adminServers(t, 2)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := lis.Addr().String()
	lis.Close()
	out, err := runAdmin(t, "admin", "pause", "--duration", "5s", "--timeout", "3s", "-a", addrs[0]+","+down+","+addrs[1])
	if err == nil || exitCode(io.Discard, err) != exitError || out != "" {
		t.Fatalf("pause with a target down: out %q, err %v; want exit 1 and no window", out, err)
	}
	for _, want := range []string{down + ": Unavailable", "every reachable target was unpaused", "unreachable, so never paused: " + down, "this window must not be used for a backup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	wantUnpaused(t, gates, addrs)
}

// SIGINT cancels cmd.Context() (main's signal.NotifyContext): the servers
// are still unpaused, and no window is printed.
func TestAdminPauseInterrupted(t *testing.T) {
	gates, addrs := adminServers(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for !gates[0].Paused() || !gates[1].Paused() {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	out, err := runAdminCtx(t, ctx, "admin", "pause", "--duration", "1m", "-a", strings.Join(addrs, ","))
	if err == nil || out != "" || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "must not be used for a backup") {
		t.Fatalf("interrupted pause: out %q, err %v", out, err)
	}
	wantUnpaused(t, gates, addrs)
}

func TestAdminPauseCheckUnpause(t *testing.T) {
	gates, addrs := adminServers(t, 2)
	list := strings.Join(addrs, ",")
	out, err := runAdmin(t, "--json", "admin", "pause", "--no-wait", "-a", list)
	if err != nil {
		t.Fatal(err)
	}
	var started pauseStarted
	if err := json.Unmarshal([]byte(out), &started); err != nil || started.PauseStartTimestampMs == 0 || len(started.Targets) != 2 {
		t.Fatalf("pause without --duration printed %q (%v)", out, err)
	}
	for _, g := range gates {
		if !g.Paused() {
			t.Fatal("pause without --duration did not leave the servers paused")
		}
	}
	check := func(want bool) {
		t.Helper()
		out, err := runAdmin(t, "--json", "admin", "check-paused", "-a", list)
		var states []targetState
		if err != nil || json.Unmarshal([]byte(out), &states) != nil || len(states) != 2 {
			t.Fatalf("check-paused: %v %q", err, out)
		}
		for _, s := range states {
			if s.Paused == nil || *s.Paused != want {
				t.Errorf("check-paused %s: %+v, want paused=%v", s.Target, s, want)
			}
		}
	}
	check(true)
	out, err = runAdmin(t, "admin", "unpause", "-a", list)
	if err != nil || strings.Count(out, "unpaused") != 2 {
		t.Fatalf("unpause: %v %q", err, out)
	}
	check(false)
	wantUnpaused(t, gates, addrs)
}

func TestAdminUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"admin", "pause"}, "-a host:port"},
		{[]string{"admin", "check-paused", "-a", "127.0.0.1:1", "-s", "_admin._tcp.example"}, "not both"},
		{[]string{"admin", "unpause", "-a", "::1:50051"}, "brackets"},
		{[]string{"admin", "pause", "-a", "127.0.0.1:1", "--duration", "-1s"}, "--duration"},
		{[]string{"admin", "pause", "-a", "127.0.0.1:1", "--timezone", "Mars/Olympus"}, "--timezone"},
		{[]string{"admin", "pause", "-a", "127.0.0.1:1", "--bogus"}, "unknown flag"},
	}
	for _, tt := range tests {
		_, err := runAdmin(t, tt.args...)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v; want a usage error with %q", tt.args, err, tt.want)
		}
	}
}

// A negative --max-pause-wait-time is sent as ScalarDB's servers take it:
// no wait, so the pause holds only if nothing is in flight at that moment.
func TestAdminPauseNegativeMaxWait(t *testing.T) {
	tests := []struct {
		name     string
		inFlight bool
		wantErr  string // "" = the pause holds
	}{
		{"nothing in flight", false, ""},
		{"a transaction in flight", true, "max_pause_wait_time is negative (no wait)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gates, addrs := adminServers(t, 1)
			if tt.inFlight {
				release, err := gates[0].Enter()
				if err != nil {
					t.Fatal(err)
				}
				defer release()
			}
			_, err := runAdmin(t, "admin", "pause", "--max-pause-wait-time", "-1ms", "-a", addrs[0])
			switch {
			case tt.wantErr == "" && (err != nil || !gates[0].Paused()):
				t.Fatalf("pause --max-pause-wait-time -1ms with nothing in flight: %v, paused=%v; want it held", err, gates[0].Paused())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || gates[0].Paused()):
				t.Fatalf("pause --max-pause-wait-time -1ms with a transaction in flight: %v, paused=%v; want a failure saying %q and the server open", err, gates[0].Paused(), tt.wantErr)
			}
		})
	}
}

// admin pause --duration against ScalarDB Server (3.9 to 3.13: no Stats, no
// pause_id) makes a window only with --allow-check-paused-proof, and
// unpauses it either way.
func TestAdminPauseScalarDBServer(t *testing.T) {
	tests := []struct {
		name    string
		flags   []string
		wantErr string // "" = a window is printed
	}{
		{"without the flag", nil, "--allow-check-paused-proof"},
		{"with the flag", []string{"--allow-check-paused-proof"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, sdb := testenv.ScalarDBAdminServer(t, testenv.ScalarDB39)
			args := append([]string{"admin", "pause", "--duration", "200ms", "--renew-every", "50ms", "-a", addr}, tt.flags...)
			out, err := runAdmin(t, args...)
			switch {
			case tt.wantErr == "" && (err != nil || !strings.Contains(out, `"targets":["`+addr+`"]`)):
				t.Fatalf("%v: %q, %v; want a window", args, out, err)
			case tt.wantErr != "" && (err == nil || out != "" || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("%v: %q, %v; want no window and an error saying %q", args, out, err, tt.wantErr)
			}
			if sdb.Paused() || sdb.Pauses() != 1 {
				t.Errorf("the ScalarDB server: paused=%v after %d Pause calls; want unpaused after 1", sdb.Paused(), sdb.Pauses())
			}
		})
	}
}
