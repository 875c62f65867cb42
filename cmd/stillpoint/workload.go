package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/client"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

func newWorkloadCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workload",
		Short: "Run workloads that exercise transactions across stores",
	}
	cmd.AddCommand(newBankCmd(g))
	return cmd
}

type bankReport struct {
	Setup       *bank.Setup      `json:"setup"`
	Created     bool             `json:"created"`
	Isolation   string           `json:"isolation"`
	Concurrency int              `json:"concurrency"`
	Stats       bank.Stats       `json:"stats"`
	Invariants  *bank.Invariants `json:"invariants,omitempty"`
}

func newBankCmd(g *globals) *cobra.Command {
	var (
		namespaces  string
		accounts    int
		balance     int64
		concurrency int
		duration    time.Duration
		count       int64
		isolation   string
		lifetime    time.Duration
		servers     string
		dial        admin.DialOptions
	)
	cmd := &cobra.Command{
		Use:   "bank",
		Short: "Transfer money between accounts in different stores, and check nothing was lost",
		Long: `Creates accounts spread over the namespaces (unless they exist), then runs
transfers between accounts in different namespaces with the given concurrency,
for a duration or a count, and reports committed, aborted and unknown
transfers, throughput and latency percentiles. After the run it checks the
bank invariants (total balance; tx_version sum) when no transfer is pending.

On the embedded default the namespaces are SQLite databases of their own and
the coordinator has a third; with --config, map the namespaces to stores.

With --servers the transfers run through those Stillpoint servers (round
robin); the bank is still created and checked through --config/--data-dir.
Transfers refused because the servers are paused are retried, and counted.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			iso, err := parseIsolation(isolation)
			if err != nil {
				return err
			}
			if count < 0 {
				return usageError{fmt.Errorf("--count must not be negative, not %d", count)}
			}
			if duration <= 0 && count <= 0 {
				return usageError{errors.New("give --duration or --count")}
			}
			nss := strings.Split(namespaces, ",")
			if slices.Contains(nss, "") || len(nss) < 2 || len(nss) != len(slices.Compact(slices.Sorted(slices.Values(nss)))) {
				return usageError{fmt.Errorf("--namespaces %q: give at least two different namespaces, comma-separated, so transfers cross stores", namespaces)}
			}
			st, err := g.storageCreating()
			if err != nil {
				return err
			}
			defer st.Close()
			m := txn.NewManager(st, txn.Options{Lifetime: lifetime, Isolation: iso})
			rep := bankReport{Isolation: iso.String(), Concurrency: concurrency}
			setup, err := bank.Load(ctx, st, nss[0])
			if err != nil {
				return err
			}
			if setup == nil {
				setup = &bank.Setup{Namespaces: nss, Accounts: accounts, InitialBalance: balance}
				var created func(int)
				bar := g.newProgress(int64(accounts*len(nss)), "creating accounts", "accounts")
				if bar != nil {
					created = func(n int) { bar.Add(n) }
				}
				slog.Info("bank: creating accounts", "namespaces", nss, "per_namespace", accounts)
				err := bank.Create(ctx, st, m, *setup, created)
				if bar != nil {
					bar.Finish()
				}
				if err != nil {
					return err
				}
				rep.Created = true
			}
			rep.Setup = setup
			load := bank.Workload{Concurrency: concurrency, Duration: duration, Count: count, Isolation: iso}
			if bar := g.newProgress(progressTotal(duration, count), "transfers", "transfers"); bar != nil {
				var mu sync.Mutex
				start := time.Now()
				load.Progress = func(s bank.Stats) {
					mu.Lock()
					defer mu.Unlock()
					if count > 0 {
						bar.Set64(s.Committed + s.Aborted + s.Unknown + s.Failed)
					} else {
						bar.Set64(int64(time.Since(start).Seconds()))
					}
					bar.Describe(fmt.Sprintf("committed %d aborted %d", s.Committed, s.Aborted))
				}
				defer bar.Finish()
			}
			db := bank.Local(m)
			if servers != "" {
				remote, closeAll, err := dialServers(servers, dial)
				if err != nil {
					return err
				}
				defer closeAll()
				db = remote
			}
			stats, err := bank.Run(ctx, db, setup, load)
			if err != nil {
				return err
			}
			rep.Stats = stats
			iv, err := bank.Check(ctx, st, setup)
			if err != nil {
				return err
			}
			rep.Invariants = &iv
			if err := g.print(cmd.OutOrStdout(), rep, func(w io.Writer) { printBank(w, rep, nextCommand(cmd, "verify", "--repair")) }); err != nil {
				return err
			}
			if iv.Pending == 0 && !iv.OK() {
				return violationError{fmt.Errorf("bank invariants broken: %s", strings.Join(iv.Violations, "; "))}
			}
			if stats.Failed > 0 {
				return fmt.Errorf("%d transfers failed with errors; last: %s", stats.Failed, stats.LastError)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&namespaces, "namespaces", strings.Join(bank.DefaultNamespaces, ","), "comma-separated namespaces of the accounts (at least two)")
	intAtLeast(f, &accounts, "accounts", 100, 1, "accounts per namespace, when creating the bank")
	f.Int64Var(&balance, "initial-balance", 1000, "initial balance of each account, when creating the bank")
	intAtLeast(f, &concurrency, "concurrency", 8, 1, "concurrent transfers")
	durationAtLeast(f, &duration, "duration", 0, 0, "how long to run transfers (e.g. 30s)")
	f.Int64Var(&count, "count", 0, "how many transfers to attempt")
	f.StringVar(&isolation, "isolation", "snapshot", "snapshot or serializable")
	durationPositive(f, &lifetime, "lifetime", txn.DefaultLifetime, "transaction lifetime before a reader may abort an undecided write")
	f.StringVar(&servers, "servers", "", "run the transfers through these servers (host:port,...)")
	addDialFlags(f, &dial)
	return cmd
}

// dialServers connects to every server of a comma-separated list.
func dialServers(list string, o admin.DialOptions) (bank.DB, func(), error) {
	targets, err := admin.ParseTargets(list)
	if err != nil {
		return nil, nil, usageError{err}
	}
	if o.Token == "" {
		o.Token = os.Getenv("STILLPOINT_TOKEN")
	}
	opts, err := o.GRPCOptions()
	if err != nil {
		return nil, nil, err
	}
	var clients []*client.Client
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	for _, t := range targets {
		c, err := client.Dial(t, opts...)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients = append(clients, c)
	}
	return bank.Remote(clients), closeAll, nil
}

func progressTotal(d time.Duration, count int64) int64 {
	if count > 0 {
		return count
	}
	return int64(d.Seconds())
}

func parseIsolation(s string) (consensus.Isolation, error) {
	switch strings.ToLower(s) {
	case "snapshot", "si":
		return consensus.Snapshot, nil
	case "serializable":
		return consensus.Serializable, nil
	}
	return 0, usageError{fmt.Errorf("unknown isolation %q: use snapshot or serializable", s)}
}

// printBank reports a workload run; settle is the command that settles
// what the run left pending.
func printBank(w io.Writer, r bankReport, settle string) {
	s := r.Stats
	fmt.Fprintf(w, "bank: %d accounts in each of %s (%s, concurrency %d)\n", r.Setup.Accounts, strings.Join(r.Setup.Namespaces, ", "), r.Isolation, r.Concurrency)
	fmt.Fprintf(w, "transfers: %d committed, %d aborted, %d unknown, %d failed in %.1fs\n", s.Committed, s.Aborted, s.Unknown, s.Failed, s.Elapsed.Seconds())
	fmt.Fprintf(w, "throughput: %.1f committed/s\n", s.Throughput)
	fmt.Fprintf(w, "latency: p50 %v  p95 %v  p99 %v  max %v\n", s.P50.Round(time.Microsecond), s.P95.Round(time.Microsecond), s.P99.Round(time.Microsecond), s.Max.Round(time.Microsecond))
	if iv := r.Invariants; iv != nil {
		switch {
		case iv.Pending > 0:
			fmt.Fprintf(w, "invariants: not checked, %d records still pending (run: %s)\n", iv.Pending, settle)
		case iv.OK():
			fmt.Fprintf(w, "invariants: hold (total %d, tx_version sum %d = %d accounts + 2 × %d transfers)\n", iv.Total, iv.VersionSum, iv.Accounts, iv.CommittedTransfers)
		default:
			fmt.Fprintf(w, "invariants: BROKEN: %s\n", strings.Join(iv.Violations, "; "))
		}
	}
}
