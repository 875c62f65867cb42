package txn

import (
	"context"
	"errors"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/txn/consensus"
)

// TestPrepareBatchConditionFails: the prepares of a transfer go to the
// store together (one pipeline when both accounts are on one PostgreSQL);
// when another writer changed either account, the transfer aborts and
// leaves no record prepared by it, whichever of the batch lost.
func TestPrepareBatchConditionFails(t *testing.T) {
	for _, e := range engines {
		for _, lost := range []int{0, 1} {
			t.Run(e.name+"/"+[]string{"first", "second"}[lost], func(t *testing.T) {
				f := newAccounts(t, e)
				ctx := context.Background()
				tx := f.m.Begin()
				keys := []struct {
					ns string
					id int
				}{{f.nsA, 1}, {f.nsB, 2}}
				for _, k := range keys {
					r, err := tx.Get(ctx, storage.Get{Namespace: k.ns, Table: "accounts", Key: storage.Key{"id": k.id}})
					if err != nil {
						t.Fatal(err)
					}
					tx.Put(ctx, storage.Put{Namespace: k.ns, Table: "accounts", Values: storage.Record{"id": k.id, "balance": r["balance"].(int64) + 1}})
				}
				f.put(t, keys[lost].ns, keys[lost].id, 500) // a concurrent writer wins one account
				if err := tx.Commit(ctx); !errors.Is(err, ErrConflict) {
					t.Fatalf("commit = %v, want a conflict", err)
				}
				for i, k := range keys {
					r := f.raw(t, k.ns, k.id)
					m := consensus.MetaOf(r)
					want := map[bool]int64{true: 500, false: 100}[i == lost]
					if m.TxID == tx.ID() || m.State != consensus.Committed || r["balance"] != want {
						t.Errorf("%s/%d after the aborted transfer = %v, want committed %d not written by it", k.ns, k.id, r, want)
					}
				}
				if d, err := f.m.decision(ctx, tx.ID()); err != nil || d != consensus.Aborted {
					t.Errorf("coordinator = %v, %v; want ABORTED", d, err)
				}
			})
		}
	}
}

// asyncManager replaces the fixture's manager by one with asynchronous
// commit records and the hooks given. The decision is separate, so that
// every record of the transfer gets an asynchronous commit record (by
// default those in the coordinator's store are committed with it).
func (f *fixture) asyncManager(h hooks) {
	f.manager(Options{AsyncCommit: true, SeparateDecision: true})
	f.m.hooks = h
}

// TestAsyncCommitReadYourWrites: Commit returns before the commit records
// are written, and the next transaction of the same manager waits for them
// instead of meeting its own PREPARED records.
func TestAsyncCommitReadYourWrites(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			f := newAccounts(t, e)
			ctx := context.Background()
			release, waiting := make(chan struct{}), make(chan string, 1)
			f.asyncManager(hooks{
				asyncBatch:  func() bool { <-release; return true },
				awaitCommit: func(id string) { waiting <- id },
			})
			tx, err := f.transfer(t)
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
			if m := consensus.MetaOf(f.raw(t, f.nsA, 1)); m.State != consensus.Prepared || m.TxID != tx.ID() {
				t.Fatalf("commit returned after writing the commit records (%v): it must not wait for them", m)
			}
			type read struct {
				r   storage.Record
				err error
			}
			got := make(chan read, 1)
			go func() {
				r, err := f.read(f.nsA, 1)
				got <- read{r, err}
			}()
			select {
			case id := <-waiting:
				if id != tx.ID() {
					t.Fatalf("the reader waits for %s, want %s", id, tx.ID())
				}
			case r := <-got:
				t.Fatalf("the reader did not wait for the commit records: %v, %v", r.r, r.err)
			}
			close(release)
			if r := <-got; r.err != nil || r.r["balance"] != int64(70) {
				t.Fatalf("the next transaction reads %v, %v; want its client's committed 70", r.r, r.err)
			}
			if err := f.m.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for ns, id := range map[string]int{f.nsA: 1, f.nsB: 2} {
				if m := consensus.MetaOf(f.raw(t, ns, id)); m.State != consensus.Committed || m.TxID != tx.ID() {
					t.Errorf("%s/%d after Flush: %v, want COMMITTED by the transfer", ns, id, m)
				}
			}
		})
	}
}

// TestAsyncCommitCrash: the process dies after the decision, before its
// asynchronous commit records are written; readers, in this process or
// another, roll the transfer forward.
func TestAsyncCommitCrash(t *testing.T) {
	for _, e := range engines {
		for _, reader := range []string{"same manager", "other process"} {
			t.Run(e.name+"/"+reader, func(t *testing.T) {
				f := newAccounts(t, e)
				ctx := context.Background()
				writer := f.m
				f.asyncManager(hooks{asyncBatch: func() bool { return false }})
				tx, err := f.transfer(t)
				if err != nil {
					t.Fatalf("commit: %v", err)
				}
				if err := f.m.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if m := consensus.MetaOf(f.raw(t, f.nsA, 1)); m.State != consensus.Prepared || m.TxID != tx.ID() {
					t.Fatalf("the crash must leave the records PREPARED, got %v", m)
				}
				if reader == "other process" {
					f.m = writer // the fixture's manager, no async commits of its own
				}
				a, b, err := f.settle()
				if err != nil || a != 70 || b != 130 {
					t.Fatalf("after recovery: %d, %d, %v; want 70, 130", a, b, err)
				}
				for ns, id := range map[string]int{f.nsA: 1, f.nsB: 2} {
					if m := consensus.MetaOf(f.raw(t, ns, id)); m.State != consensus.Committed {
						t.Errorf("%s/%d: %v, want rolled forward to COMMITTED", ns, id, m)
					}
				}
			})
		}
	}
}

// TestFlushHonoursContext: Flush gives up when its context ends.
func TestFlushHonoursContext(t *testing.T) {
	f := newAccounts(t, engines[0])
	release := make(chan struct{})
	f.asyncManager(hooks{asyncBatch: func() bool { <-release; return true }})
	if _, err := f.transfer(t); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.m.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Flush with the writer stuck = %v, want the context's end", err)
	}
	close(release)
	if err := f.m.Flush(context.Background()); err != nil {
		t.Errorf("Flush once the writer runs: %v", err)
	}
}

// TestGroupedDecisions: a group of coordinator inserts (one pipeline on
// PostgreSQL) tells each transaction whether its own insert was applied:
// one whose row a reader's abort wrote first fails, and the others land.
func TestGroupedDecisions(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			f := newFixture(t, e)
			ctx := context.Background()
			f.put(t, f.nsA, 1, 100) // creates the coordinator table
			if err := f.st.Put(ctx, consensus.CoordinatorPut("aborted-first", consensus.Aborted, 1)); err != nil {
				t.Fatal(err)
			}
			d := newDecisions(f.m)
			ids := []string{"lands-1", "aborted-first", "lands-2"}
			batch := make([]decision, len(ids))
			for i, id := range ids {
				batch[i] = decision{put: consensus.CoordinatorPut(id, consensus.Committed, 2), done: make(chan error, 1)}
			}
			d.write(batch)
			for i, id := range ids {
				err := <-batch[i].done
				want := consensus.Committed
				if id == "aborted-first" {
					want = consensus.Aborted
					if !errors.Is(err, storage.ErrNoMutation) {
						t.Errorf("%s: insert = %v, want no mutation", id, err)
					}
				} else if err != nil {
					t.Errorf("%s: insert = %v", id, err)
				}
				if got, err := f.m.decision(ctx, id); err != nil || got != want {
					t.Errorf("%s: coordinator says %v, %v; want %v", id, got, err, want)
				}
			}
		})
	}
}
