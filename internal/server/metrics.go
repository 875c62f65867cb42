package server

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stillpoint/stillpoint/internal/admin"
	"github.com/stillpoint/stillpoint/internal/txn"
)

// metrics are what an operator graphs and alerts on: outcomes, latency,
// and whether the server is paused.
type metrics struct {
	outcomes *prometheus.CounterVec
	commit   prometheus.Histogram
	// adminRefused counts connections the admin listener's allow-list closed.
	adminRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, gate *admin.Gate) *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stillpoint", Name: "transactions_total",
			Help: "Transactions by outcome: committed, conflict, unknown, error, aborted (by the client), expired (idle), refused (paused).",
		}, []string{"outcome"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "stillpoint", Name: "commit_seconds",
			Help:    "Time to commit (prepare, validate, decide, commit records).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		adminRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stillpoint", Name: "admin_connections_refused_total",
			Help: "Connections to the admin listener from outside --admin-allow, closed before any RPC.",
		}),
	}
	gauge := func(name, help string, f func(admin.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "stillpoint", Name: name, Help: help},
			func() float64 { return f(gate.Stats()) })
	}
	reg.MustRegister(m.outcomes, m.commit, m.adminRefused,
		gauge("paused", "1 while the pause gate is closed.", func(s admin.Stats) float64 {
			if s.Paused {
				return 1
			}
			return 0
		}),
		gauge("transactions_in_flight", "Transactions begun and not yet finished.", func(s admin.Stats) float64 { return float64(s.InFlight) }),
		gauge("pause_lease_expiries", "Pauses ended by their lease (an orchestrator that did not unpause).", func(s admin.Stats) float64 { return float64(s.LeaseExpiries) }),
		gauge("pause_max_hold_expiries", "Pauses without a lease (admin listener) ended by --admin-max-pause.", func(s admin.Stats) float64 { return float64(s.HoldExpiries) }),
		gauge("pause_drain_timeouts", "Pauses abandoned because in-flight transactions did not finish.", func(s admin.Stats) float64 { return float64(s.DrainTimeouts) }),
	)
	return m
}

func (m *metrics) committed(err error, took time.Duration) {
	switch {
	case err == nil:
		m.commit.Observe(took.Seconds())
		m.outcomes.WithLabelValues("committed").Inc()
	case errors.Is(err, txn.ErrUnknownStatus):
		m.outcomes.WithLabelValues("unknown").Inc()
	case errors.Is(err, txn.ErrConflict):
		m.outcomes.WithLabelValues("conflict").Inc()
	default:
		m.outcomes.WithLabelValues("error").Inc()
	}
}

func (m *metrics) count(outcome string) { m.outcomes.WithLabelValues(outcome).Inc() }
