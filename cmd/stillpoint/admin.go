package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/hint"
)

func newAdminCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Pause and unpause Stillpoint servers for a backup (scalar-admin's protocol)",
		Long: `Pauses every Stillpoint server together, so the stores can be backed up at a
point where no transaction is half done: a paused server accepts no new
transactions and (unless --no-wait) waits for those in flight to finish.

The servers speak scalar-admin's rpc.Admin protocol, so scalar-admin's own
tools work too. Give the servers with -a host:port,... or with -s, a DNS SRV
record listing them (a Kubernetes headless service, for example).`,
	}
	cmd.AddCommand(newAdminPauseCmd(g), newAdminUnpauseCmd(g), newAdminCheckPausedCmd(g))
	return cmd
}

// adminFlags are the connection flags of the admin commands.
type adminFlags struct {
	addresses string
	srvName   string
	dial      admin.DialOptions
	timeout   time.Duration
}

func (f *adminFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.addresses, "addresses", "a", "", "the servers' admin addresses: host:port,... (IPv6 in brackets: [::1]:50051)")
	fl.StringVarP(&f.srvName, "srv-name", "s", "", "DNS SRV record listing the servers, e.g. _admin._tcp.stillpoint.default.svc.cluster.local")
	addDialFlags(fl, &f.dial)
	fl.DurationVar(&f.timeout, "timeout", admin.DefaultTimeout, "timeout of each call to a server (a pause that waits also gets its max wait)")
}

// fleet connects to the servers the flags name.
func (f *adminFlags) fleet(cmd *cobra.Command) (*admin.Fleet, error) {
	switch {
	case f.addresses == "" && f.srvName == "":
		return nil, usageError{fmt.Errorf("%s: name the servers with -a host:port,... or -s SRV-RECORD", cmd.CommandPath())}
	case f.addresses != "" && f.srvName != "":
		return nil, usageError{fmt.Errorf("%s: give -a or -s, not both", cmd.CommandPath())}
	case f.timeout <= 0:
		return nil, usageError{fmt.Errorf("--timeout must be positive, not %v", f.timeout)}
	}
	var targets []string
	var err error
	if f.addresses != "" {
		if targets, err = admin.ParseTargets(f.addresses); err != nil {
			return nil, usageError{fmt.Errorf("-a: %w", err)}
		}
	} else {
		ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
		targets, err = admin.ResolveSRV(ctx, f.srvName)
		cancel()
		if err != nil {
			return nil, err
		}
		slog.Debug("admin: resolved SRV record", "name", f.srvName, "targets", targets)
	}
	dial := f.dial
	if !cmd.Flags().Changed("token") {
		dial.Token = os.Getenv("STILLPOINT_TOKEN")
	}
	if dial.Token != "" && !dial.TLS && dial.CACert == "" && dial.ServerName == "" {
		for _, t := range targets {
			if host, _, _ := net.SplitHostPort(t); !isLoopback(host) {
				slog.Warn("admin: sending the token without TLS: anyone on the network path can read it (add --tls)", "target", t)
				break
			}
		}
	}
	return admin.NewFleet(targets, dial, f.timeout)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// pauseStarted is what pause prints without --duration.
type pauseStarted struct {
	PauseStartTimestampMs int64    `json:"pause_start_timestamp_ms"`
	PauseStartDateTime    string   `json:"pause_start_date_time"`
	Timezone              string   `json:"timezone"`
	Targets               []string `json:"targets"`
}

func newAdminPauseCmd(g *globals) *cobra.Command {
	var (
		af            adminFlags
		noWait        bool
		maxWait, hold time.Duration
		renew         time.Duration
		timezone      string
		checkProof    bool
	)
	cmd := &cobra.Command{
		Use:   "pause",
		Short: "Pause every server; with --duration, hold the pause, unpause, and print the window",
		Long: `Pauses every server in parallel: each stops accepting new transactions and,
unless --no-wait, waits up to --max-pause-wait-time for those in flight to
finish (a negative value means no wait: the pause holds only on a server with
nothing in flight at that moment, as ScalarDB's servers take it). If any server fails to pause, every server is unpaused and the command
fails: that window must not be used for a backup.

With --duration D, the pause is held for D (renewing the servers' pause
leases every --renew-every), every server is checked to be still paused,
and every server is unpaused. The window during which all of them were
paused is printed as one JSON line, as scalar-admin-for-kubernetes prints it:

  {"pause_start_timestamp_ms":...,"pause_end_timestamp_ms":...,
   "pause_start_date_time":"2026-11-24T21:40:05.123","pause_end_date_time":...,
   "timezone":"UTC","targets":[...]}

A window is printed only if every server stayed paused through it without
interruption: each server's Stats names its current pause (pause_id), read
when the window starts, after every renewal and at its end; a server whose
lease ran out, that restarted or that someone unpaused (even if it was paused
again) is found open or under another id. Renewals pause as the pause did
(draining unless --no-wait), so a renewal never re-pauses a lapsed server
without draining. Keep --renew-every well under the servers' --pause-lease
(half or less; the command warns otherwise).

ScalarDB Server (3.6 to 3.13) reports no pause id and has no lease. With
--allow-check-paused-proof such servers are sent no renewal and are checked
with CheckPaused at the start, every --renew-every and at the end: that
proves each was paused at every check, not that no Unpause and re-Pause
(another operator, a restart and a re-pause) fell between two checks.
Servers without CheckPaused (ScalarDB Server 3.4, 3.5) are refused.

The start is when the last server answered with its pause id, the end is
taken before the last check and before any unpause is sent, both rounded
inwards to the millisecond: restore the stores to a point inside it. If
anything fails, or the command is interrupted, every server is unpaused and
the command exits 1 without printing a window: that window is unusable.

Without --duration the servers stay paused until 'stillpoint admin unpause'
(or until their pause lease runs out, if the servers have one), and the
command prints when the pause began.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case hold < 0:
				return usageError{fmt.Errorf("--duration must not be negative, not %v", hold)}
			case renew < 0:
				return usageError{fmt.Errorf("--renew-every must not be negative (0 disables renewal), not %v", renew)}
			}
			loc, err := loadZone(timezone)
			if err != nil {
				return usageError{fmt.Errorf("--timezone: %w", err)}
			}
			f, err := af.fleet(cmd)
			if err != nil {
				return err
			}
			defer f.Close()
			if checkProof {
				f.AllowCheckPausedProof()
			}
			ctx := cmd.Context()
			// On failure or interruption PauseAll and Hold unpause every
			// server with a context that ignores ctx's cancellation.
			p, err := f.PauseAll(ctx, !noWait, maxWait)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("duration") {
				w := admin.Window{Start: p.Start, Targets: p.Targets}.Fields(loc)
				out := pauseStarted{w.PauseStartTimestampMs, w.PauseStartDateTime, w.Timezone, w.Targets}
				return g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
					fmt.Fprintf(w, "paused %d servers; the pause began at %s (%s); they stay paused until: %s\n",
						len(out.Targets), out.PauseStartDateTime, out.Timezone, nextCommand(cmd, "admin", "unpause"))
				})
			}
			slog.Info("admin: every server paused; holding the pause", "servers", len(p.Targets), "duration", hold)
			w, err := f.Hold(ctx, p, renew, admin.HoldFor(hold))
			if err != nil {
				var iw *admin.InvalidWindowError
				if errors.As(err, &iw) {
					return err
				}
				return hint.Run(fmt.Errorf("the pause was held, but %w; this window must not be used for a backup; the servers may still be paused", err), "admin", "unpause")
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", w.JSON(loc))
			return err
		},
	}
	af.add(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&noWait, "no-wait", false, "do not wait for the transactions in flight (wait_outstanding=false)")
	fl.DurationVar(&maxWait, "max-pause-wait-time", 0, "how long each server waits for its transactions in flight before giving up (0: the server's default, 30s; negative: no wait, as ScalarDB's servers take it, so the pause fails on a server with a transaction in flight)")
	fl.DurationVar(&hold, "duration", 0, "hold the pause this long, then unpause and print the window as JSON")
	fl.DurationVar(&renew, "renew-every", 5*time.Second, "with --duration, renew the servers' pause leases this often (0: never)")
	fl.BoolVar(&checkProof, "allow-check-paused-proof", false, "with --duration, accept servers that report no pause id (ScalarDB Server 3.6 to 3.13), checked by CheckPaused alone (see above)")
	fl.StringVar(&timezone, "timezone", "Local", "IANA time zone of the printed date-times, e.g. UTC or Asia/Tokyo")
	return cmd
}

func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return time.Local, nil
	}
	return time.LoadLocation(name)
}

// targetState is a server's answer in unpause and check-paused.
type targetState struct {
	Target string `json:"target"`
	Paused *bool  `json:"paused,omitempty"`
	Error  string `json:"error,omitempty"`
}

func newAdminUnpauseCmd(g *globals) *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "unpause",
		Short: "Unpause every server (it is harmless on servers that are not paused)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := af.fleet(cmd)
			if err != nil {
				return err
			}
			defer f.Close()
			err = f.UnpauseAll(cmd.Context())
			states := []targetState{}
			for _, t := range f.Targets() {
				s := targetState{Target: t, Paused: new(false)}
				if msg := targetError(err, t); msg != "" {
					s.Paused, s.Error = nil, msg
				}
				states = append(states, s)
			}
			if perr := printStates(g, cmd.OutOrStdout(), states, "unpaused"); err == nil {
				err = perr
			}
			return err
		},
	}
	af.add(cmd)
	return cmd
}

func newAdminCheckPausedCmd(g *globals) *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "check-paused",
		Short: "Ask every server whether it is paused",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := af.fleet(cmd)
			if err != nil {
				return err
			}
			defer f.Close()
			paused, err := f.CheckAll(cmd.Context())
			states := []targetState{}
			for _, t := range f.Targets() {
				s := targetState{Target: t}
				if p, ok := paused[t]; ok {
					s.Paused = &p
				} else {
					s.Error = targetError(err, t)
				}
				states = append(states, s)
			}
			if perr := printStates(g, cmd.OutOrStdout(), states, "paused"); err == nil {
				err = perr
			}
			return err
		},
	}
	af.add(cmd)
	return cmd
}

// targetError is what a fleet call's error says of one target ("" if
// nothing).
func targetError(err error, target string) string {
	var fe *admin.FleetError
	if errors.As(err, &fe) {
		for _, r := range fe.Results {
			if r.Target == target && r.Err != nil {
				return r.Err.Error()
			}
		}
	}
	return ""
}

func printStates(g *globals, out io.Writer, states []targetState, ok string) error {
	return g.print(out, states, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER\tSTATE")
		for _, s := range states {
			state := "error: " + s.Error
			switch {
			case s.Paused != nil && *s.Paused:
				state = "paused"
			case s.Paused != nil:
				state = "not paused"
			}
			if ok == "unpaused" && s.Paused != nil {
				state = "unpaused"
			}
			fmt.Fprintf(tw, "%s\t%s\n", s.Target, state)
		}
		tw.Flush()
	})
}
