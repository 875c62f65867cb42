package bank

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stillpoint/stillpoint/internal/client"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// Workload is how hard and how long to run transfers.
type Workload struct {
	Concurrency int
	Duration    time.Duration // 0: until Count transfers were attempted
	Count       int64         // 0: until Duration is over
	Isolation   consensus.Isolation
	// Progress, if set, is called after every attempted transfer.
	Progress func(Stats)
}

// Stats count what happened to the transfers.
type Stats struct {
	Committed int64 `json:"committed"`
	Aborted   int64 `json:"aborted"`
	Unknown   int64 `json:"unknown"`
	Failed    int64 `json:"failed"` // errors other than conflicts
	// Paused counts transfers refused because the servers were paused.
	Paused  int64         `json:"paused"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Throughput is committed transfers per second.
	Throughput float64       `json:"throughput"`
	P50        time.Duration `json:"p50_ns"`
	P95        time.Duration `json:"p95_ns"`
	P99        time.Duration `json:"p99_ns"`
	Max        time.Duration `json:"max_ns"`
	LastError  string        `json:"last_error,omitempty"`
}

// Run performs transfers between accounts in different namespaces, one
// attempt per transaction (a conflict counts as an abort, not a retry).
func Run(ctx context.Context, db DB, s *Setup, l Workload) (Stats, error) {
	if l.Concurrency < 1 {
		return Stats{}, errors.New("concurrency must be at least 1")
	}
	if l.Duration <= 0 && l.Count <= 0 {
		return Stats{}, errors.New("give a duration or a count of transfers")
	}
	if l.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.Duration)
		defer cancel()
	}
	var (
		st        Stats
		attempted atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	start := time.Now()
	for w := range l.Concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(w)))
			for ctx.Err() == nil && (l.Count <= 0 || attempted.Add(1) <= l.Count) {
				t0 := time.Now()
				// A transfer that has begun runs to its end: stopping one
				// mid-commit would leave records for lazy recovery.
				err := Transfer(context.WithoutCancel(ctx), db, s, rng, l.Isolation)
				d := time.Since(t0)
				mu.Lock()
				switch {
				case errors.Is(err, client.ErrPaused):
					// Not an attempt: the servers are paused for a backup.
					st.Paused++
					if l.Count > 0 {
						attempted.Add(-1)
					}
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
					continue
				case err == nil:
					st.Committed++
					latencies = append(latencies, d)
				case errors.Is(err, txn.ErrUnknownStatus):
					st.Unknown++
					st.LastError = err.Error()
				case txn.Retriable(err):
					st.Aborted++
				default:
					st.Failed++
					st.LastError = err.Error()
				}
				snapshot := st
				mu.Unlock()
				if l.Progress != nil {
					l.Progress(snapshot)
				}
			}
		})
	}
	wg.Wait()
	st.Elapsed = time.Since(start)
	if st.Elapsed > 0 {
		st.Throughput = float64(st.Committed) / st.Elapsed.Seconds()
	}
	slices.Sort(latencies)
	st.P50, st.P95, st.P99, st.Max = Percentile(latencies, 0.50), Percentile(latencies, 0.95), Percentile(latencies, 0.99), Percentile(latencies, 1)
	return st, nil
}

// Percentile is the p-quantile (0 to 1; 1 is the largest) of sorted
// latencies, 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// Transfer moves a random amount between random accounts of two different
// namespaces, in one transaction.
func Transfer(ctx context.Context, db DB, s *Setup, rng *rand.Rand, iso consensus.Isolation) error {
	i := rng.IntN(len(s.Namespaces))
	j := (i + 1 + rng.IntN(len(s.Namespaces)-1)) % len(s.Namespaces)
	from := storage.Key{"account_id": rng.IntN(s.Accounts)}
	to := storage.Key{"account_id": rng.IntN(s.Accounts)}
	amount := int64(1 + rng.IntN(100))
	tx, err := db.Begin(ctx, iso, TransferPrefix)
	if err != nil {
		return err
	}
	if err := move(ctx, tx, s, i, j, from, to, amount); err != nil {
		_ = tx.Abort(ctx)
		return err
	}
	return tx.Commit(ctx)
}

// eachGetter is a transaction that reads several records together (a
// local one: txn.Transaction.GetEach).
type eachGetter interface {
	GetEach(ctx context.Context, gs []storage.Get) ([]storage.Record, error)
}

// getBoth reads two records, together where the transaction can.
func getBoth(ctx context.Context, tx Tx, ga, gb storage.Get) (a, b storage.Record, err error) {
	if eg, ok := tx.(eachGetter); ok {
		recs, err := eg.GetEach(ctx, []storage.Get{ga, gb})
		if err != nil {
			return nil, nil, err
		}
		return recs[0], recs[1], nil
	}
	if a, err = tx.Get(ctx, ga); err != nil {
		return nil, nil, err
	}
	b, err = tx.Get(ctx, gb)
	return a, b, err
}

func move(ctx context.Context, tx Tx, s *Setup, i, j int, from, to storage.Key, amount int64) error {
	a, b, err := getBoth(ctx, tx, storage.Get{Namespace: s.Namespaces[i], Table: AccountsTable, Key: from},
		storage.Get{Namespace: s.Namespaces[j], Table: AccountsTable, Key: to})
	if err != nil {
		return err
	}
	if a == nil || b == nil {
		return errors.New("an account is missing")
	}
	balA, err := balance(s.Namespaces[i], a)
	if err != nil {
		return err
	}
	balB, err := balance(s.Namespaces[j], b)
	if err != nil {
		return err
	}
	if err := tx.Put(ctx, storage.Put{Namespace: s.Namespaces[i], Table: AccountsTable,
		Values: storage.Record{"account_id": from["account_id"], "balance": balA - amount}}); err != nil {
		return err
	}
	return tx.Put(ctx, storage.Put{Namespace: s.Namespaces[j], Table: AccountsTable,
		Values: storage.Record{"account_id": to["account_id"], "balance": balB + amount}})
}
