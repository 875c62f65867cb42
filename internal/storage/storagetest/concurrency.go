package storagetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// racers is how many goroutines race for one record.
const racers = 16

// race runs op(i) for every racer at once and returns the racers that
// succeeded. A failed condition or an engine-level retriable conflict is a
// lost race; any other error fails the test.
func race(t *testing.T, what string, op func(i int) error) []int {
	t.Helper()
	start := make(chan struct{})
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			errs[i] = op(i)
		})
	}
	close(start)
	wg.Wait()
	var winners []int
	retriable := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners = append(winners, i)
		case errors.Is(err, storage.ErrNoMutation):
		case errors.Is(err, storage.ErrRetriable):
			retriable++
		default:
			t.Errorf("%s: racer %d: unexpected error %v", what, i, err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%s: %d racers succeeded (%v), want exactly one", what, len(winners), winners)
	}
	if retriable > 0 {
		t.Logf("%s: %d racers lost with a retriable conflict", what, retriable)
	}
	return winners
}

func testConcurrency(t *testing.T, h Harness) {
	f := newFixture(t, h)
	m := f.createTable(&storage.TableMetadata{
		Table:         "race",
		Columns:       []storage.Column{col("p", storage.Text), col("c", storage.Int), col("version", storage.Int), col("owner", storage.Int)},
		PartitionKey:  []string{"p"},
		ClusteringKey: []storage.ClusteringKey{asc("c")},
	})
	// Half the racers use a second store: separate connections, as separate
	// processes would have.
	other := f.open()
	storeOf := func(i int) storage.Store {
		if i%2 == 1 {
			return other
		}
		return f.s
	}
	const rounds = 3
	for round := range rounds {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			key := storage.Key{"p": "r", "c": round}
			rec := func(version, owner int) storage.Record {
				return storage.Record{"p": "r", "c": int32(round), "version": int32(version), "owner": int32(owner)}
			}

			// Everybody inserts the absent record.
			w := race(t, "PutIfNotExists", func(i int) error {
				return storeOf(i).Put(f.ctx, storage.Put{Namespace: m.Namespace, Table: m.Table,
					Values: storage.Record{"p": "r", "c": round, "version": 0, "owner": i}, Condition: storage.Condition{Kind: storage.PutIfNotExists}})
			})
			checkGet(t, f.ctx, f.s, m, key, rec(0, w[0]))

			// Everybody updates version 0 to 1: compare-and-set.
			for version := 1; version <= 2; version++ {
				w = race(t, fmt.Sprintf("PutIf version = %d", version-1), func(i int) error {
					return storeOf(i).Put(f.ctx, storage.Put{Namespace: m.Namespace, Table: m.Table,
						Values: storage.Record{"p": "r", "c": round, "version": version, "owner": i},
						Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{
							{Column: "version", Op: storage.EQ, Value: version - 1}}}})
				})
				checkGet(t, f.ctx, f.s, m, key, rec(version, w[0]))
			}

			// The same in a Mutate that also writes a record of its own.
			w = race(t, "Mutate with PutIf version = 2", func(i int) error {
				return storeOf(i).Mutate(f.ctx, []storage.Mutation{
					storage.Put{Namespace: m.Namespace, Table: m.Table,
						Values: storage.Record{"p": "r", "c": 1000 + 100*round + i, "owner": i}},
					storage.Put{Namespace: m.Namespace, Table: m.Table,
						Values: storage.Record{"p": "r", "c": round, "version": 3, "owner": i},
						Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{
							{Column: "version", Op: storage.EQ, Value: 2}}}},
				})
			})
			checkGet(t, f.ctx, f.s, m, key, rec(3, w[0]))
			for i := range racers {
				want := storage.Record(nil)
				if i == w[0] {
					want = storage.Record{"p": "r", "c": int32(1000 + 100*round + i), "version": nil, "owner": int32(i)}
				}
				checkGet(t, f.ctx, f.s, m, storage.Key{"p": "r", "c": 1000 + 100*round + i}, want)
			}

			// Everybody deletes it.
			race(t, "DeleteIfExists", func(i int) error {
				return storeOf(i).Delete(f.ctx, storage.Delete{Namespace: m.Namespace, Table: m.Table, Key: key,
					Condition: storage.Condition{Kind: storage.DeleteIfExists}})
			})
			checkGet(t, f.ctx, f.s, m, key, nil)
		})
	}
}
