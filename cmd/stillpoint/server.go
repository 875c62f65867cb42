package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/server"
	"github.com/stillpoint/stillpoint/internal/txn"
)

func newServerCmd(g *globals) *cobra.Command {
	var (
		opts      server.Options
		lifetime  time.Duration
		isolation string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve transactions over gRPC, with scalar-admin's pause protocol on the same port (and optionally an admin port)",
		Long: `Serves Stillpoint's transaction service (stillpoint.v1.Transaction) over the
stores of --config/--data-dir, and scalar-admin's rpc.Admin service (Pause,
Unpause, CheckPaused, Stats) on the same port, with gRPC health and reflection.
Several servers may serve the same stores.

A paused server refuses new transactions (UNAVAILABLE) and, when asked to
drain, waits for those in flight. A pause that outlives --pause-lease ends by
itself, so a crashed orchestrator never leaves the server paused.

Listening beyond loopback requires a token (--token or STILLPOINT_TOKEN), sent
by clients as "authorization: Bearer <token>"; use --tls-cert/--tls-key there.

--admin-listen opts in to a second port serving rpc.Admin (and health) alone,
without a token, for scalar-admin and scalar-admin-for-kubernetes, which send no
credentials. Only sources in --admin-allow may connect (required beyond
loopback); whoever can may pause the server: a denial of service, never data
access. Pauses made there have no lease (those tools never renew): they hold
until Unpause, or --admin-max-pause if set.

A Pause's max_pause_wait_time is taken as ScalarDB Server takes it: unset or 0
is --max-pause-wait (30s), negative is no wait (the pause fails with
FAILED_PRECONDITION if a transaction is in flight).
SIGTERM or SIGINT drains in-flight transactions (up to --drain-timeout) and stops.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			iso, err := parseIsolation(isolation)
			if err != nil {
				return err
			}
			if opts.Token == "" {
				opts.Token = os.Getenv("STILLPOINT_TOKEN")
			}
			st, err := g.storage()
			if err != nil {
				return err
			}
			defer st.Close()
			m := txn.NewManager(st, txn.Options{Lifetime: lifetime, Isolation: iso})
			srv, err := server.New(m, opts)
			if err != nil {
				return err
			}
			return srv.Serve(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:50051", "host:port to serve on")
	f.StringVar(&opts.TLSCert, "tls-cert", "", "TLS certificate (PEM)")
	f.StringVar(&opts.TLSKey, "tls-key", "", "TLS private key (PEM)")
	f.StringVar(&opts.Token, "token", "", "token clients must send (default $STILLPOINT_TOKEN); required beyond loopback")
	durationAtLeast(f, &opts.PauseLease, "pause-lease", time.Minute, 0, "unpause by itself when a pause lasts longer than this (0: never)")
	f.DurationVar(&opts.MaxPauseWait, "max-pause-wait", admin.DefaultMaxWait, "drain limit when a Pause request sets none (ScalarDB Server's default)")
	f.StringVar(&opts.AdminListen, "admin-listen", "", "also serve rpc.Admin alone on HOST:PORT, without a token, for scalar-admin's tools (opt-in; see --admin-allow)")
	f.StringSliceVar(&opts.AdminAllow, "admin-allow", nil, "networks (CIDR) or addresses allowed to connect to --admin-listen; required beyond loopback")
	f.StringVar(&opts.AdminTLSCert, "admin-tls-cert", "", "TLS certificate (PEM) for --admin-listen (default: --tls-cert)")
	f.StringVar(&opts.AdminTLSKey, "admin-tls-key", "", "TLS private key (PEM) for --admin-listen (default: --tls-key)")
	durationAtLeast(f, &opts.AdminMaxPause, "admin-max-pause", 0, 0, "end a pause made through --admin-listen after this long (0: it holds until Unpause)")
	durationPositive(f, &opts.IdleTimeout, "idle-timeout", time.Minute, "abort transactions idle longer than this")
	durationAtLeast(f, &opts.DrainTimeout, "drain-timeout", 30*time.Second, 0, "how long shutdown waits for in-flight transactions")
	f.StringVar(&opts.MetricsListen, "metrics-listen", "", "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9090)")
	durationPositive(f, &lifetime, "lifetime", txn.DefaultLifetime, "transaction lifetime before a reader may abort an undecided write")
	f.StringVar(&isolation, "isolation", "snapshot", "default isolation: snapshot or serializable")
	return cmd
}
