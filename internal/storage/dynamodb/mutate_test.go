package dynamodb_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/dynamodb"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestMutateFallback: on a server without TransactWriteItems (dynalite), a
// Mutate of several records whose record changes between its read and its
// write puts back what it wrote and starts over, and the outcome is the
// one the change leads to: all or none.
func TestMutateFallback(t *testing.T) {
	cases := []struct {
		name string
		// change is the other writer's put to record 2 before the write.
		change storage.Record
		// the Mutate's outcome: applied, or refused by record 2's PutIf.
		applied bool
	}{
		{"change breaks the condition", storage.Record{"p": "a", "c": 2, "ver": 1, "v": "other"}, false},
		{"change keeps the condition", storage.Record{"p": "a", "c": 2, "ver": 0, "v": "other"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := testenv.DynamoDSN(t)
			s, err := dynamodb.Open(ctx, "mutate", dsn)
			if err != nil {
				t.Fatal(err)
			}
			other, err := dynamodb.Open(ctx, "other", dsn)
			if err != nil {
				t.Fatal(err)
			}
			m := &storage.TableMetadata{Namespace: "ns", Table: "t",
				Columns:      []storage.Column{{Name: "p", Type: storage.Text}, {Name: "c", Type: storage.Int}, {Name: "ver", Type: storage.Int}, {Name: "v", Type: storage.Text}},
				PartitionKey: []string{"p"}, ClusteringKey: []storage.ClusteringKey{{Name: "c"}}}
			if err := s.CreateTable(ctx, m); err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 2; i++ {
				if err := s.Put(ctx, storage.Put{Namespace: "ns", Table: "t", Values: storage.Record{"p": "a", "c": i, "ver": 0, "v": "orig"}}); err != nil {
					t.Fatal(err)
				}
			}
			attempts := 0
			dynamodb.SetBeforeWrite(s, func() {
				attempts++
				if attempts == 1 {
					if err := other.Put(ctx, storage.Put{Namespace: "ns", Table: "t", Values: c.change}); err != nil {
						t.Error(err)
					}
				}
			})
			err = s.Mutate(ctx, []storage.Mutation{
				storage.Put{Namespace: "ns", Table: "t", Values: storage.Record{"p": "a", "c": 1, "v": "mutated"}},
				storage.Put{Namespace: "ns", Table: "t", Values: storage.Record{"p": "a", "c": 2, "ver": 1, "v": "mutated"},
					Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{{Column: "ver", Op: storage.EQ, Value: 0}}}},
			})
			if !dynamodb.NoTransactions(s) {
				t.Error("dynalite took TransactWriteItems: the fallback was not exercised")
			}
			// Once more after the change, unless the change fails the check.
			if want := map[bool]int{true: 2, false: 1}[c.applied]; attempts != want {
				t.Errorf("the Mutate came to write %d times, want %d", attempts, want)
			}
			want1, want2 := "orig", "other"
			if c.applied {
				if err != nil {
					t.Fatalf("Mutate: %v", err)
				}
				want1, want2 = "mutated", "mutated"
			} else if !errors.Is(err, storage.ErrNoMutation) {
				t.Fatalf("Mutate: %v, want ErrNoMutation", err)
			}
			for i, want := range map[int]string{1: want1, 2: want2} {
				r, err := s.Get(ctx, storage.Get{Namespace: "ns", Table: "t", Key: storage.Key{"p": "a", "c": i}})
				if err != nil || r["v"] != want {
					t.Errorf("record %d: %v, %v; want v=%s", i, r, err, want)
				}
			}
		})
	}
}
