package storagetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// testEach checks the optional batch interfaces (storage.EachGetter,
// storage.EachMutator, storage.AtomicMutator) of an engine that has them: a batch does what the
// same single calls would, value for value and condition for condition.
func testEach(t *testing.T, h Harness) {
	f := newFixture(t, h)
	types := f.createTable(typesTable())
	other := f.createTable(&storage.TableMetadata{Table: "other", PartitionKey: []string{"id"},
		Columns: []storage.Column{col("id", storage.Int), col("v", storage.Int)}})
	// The values the engine refuses (Harness.Refuses) are tested by
	// DataTypes; a batch of them would fail for the value, not the batch.
	var cases []valueCase
	for _, c := range dataTypeCases() {
		if !h.refuses(c.column, c.in) {
			cases = append(cases, c)
		}
	}
	for i, c := range cases {
		mustPut(t, f.ctx, f.s, types, storage.Record{"id": i, c.column: c.in})
	}
	mustPut(t, f.ctx, f.s, other, storage.Record{"id": 1, "v": 1})

	t.Run("GetEach", func(t *testing.T) {
		eg, ok := f.s.(storage.EachGetter)
		if !ok {
			t.Skip("the engine has no GetEach")
		}
		var gs []storage.Get
		for i := range cases {
			gs = append(gs, storage.Get{Namespace: types.Namespace, Table: types.Table, Key: storage.Key{"id": i}})
		}
		gs = append(gs,
			storage.Get{Namespace: other.Namespace, Table: other.Table, Key: storage.Key{"id": 1}},
			storage.Get{Namespace: other.Namespace, Table: other.Table, Key: storage.Key{"id": 2}}, // absent
			storage.Get{Namespace: types.Namespace, Table: types.Table, Key: storage.Key{"id": 0}, Projection: []string{cases[0].column}})
		got, err := eg.GetEach(f.ctx, gs)
		if err != nil || len(got) != len(gs) {
			t.Fatalf("GetEach of %d records = %d, %v", len(gs), len(got), err)
		}
		for i, g := range gs {
			want, err := f.s.Get(f.ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			checkRecord(t, fmt.Sprintf("GetEach[%d] (%s %v)", i, g.Table, g.Key), got[i], want)
		}
		if _, err := eg.GetEach(f.ctx, []storage.Get{{Namespace: other.Namespace, Table: other.Table, Key: storage.Key{"v": 1}}}); err == nil {
			t.Error("GetEach without the key succeeded")
		}
	})

	t.Run("MutateEach", func(t *testing.T) {
		em, ok := f.s.(storage.EachMutator)
		if !ok {
			t.Skip("the engine has no MutateEach")
		}
		put := func(id, v int, cond storage.Condition) storage.Mutation {
			return storage.Put{Namespace: other.Namespace, Table: other.Table, Values: storage.Record{"id": id, "v": v}, Condition: cond}
		}
		vIs := func(v int) storage.Condition {
			return storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{{Column: "v", Op: storage.EQ, Value: v}}}
		}
		ms := []storage.Mutation{
			put(1, 2, vIs(1)), // holds
			put(3, 3, storage.Condition{Kind: storage.PutIfNotExists}), // holds
			put(1, 9, vIs(7)), // fails
			put(4, 4, storage.Condition{Kind: storage.PutIfExists}), // fails: no record 4
			storage.Delete{Namespace: other.Namespace, Table: other.Table, Key: storage.Key{"id": 2}, Condition: storage.Condition{Kind: storage.DeleteIfExists}}, // fails
			put(5, 5, storage.Condition{}), // unconditional
		}
		errs, err := em.MutateEach(f.ctx, ms)
		if err != nil || len(errs) != len(ms) {
			t.Fatalf("MutateEach = %v, %v", errs, err)
		}
		for i, fails := range []bool{false, false, true, true, true, false} {
			if fails && !errors.Is(errs[i], storage.ErrNoMutation) {
				t.Errorf("mutation %d: %v, want its condition to fail", i, errs[i])
			} else if !fails && errs[i] != nil {
				t.Errorf("mutation %d: %v", i, errs[i])
			}
		}
		for id, v := range map[int]any{1: int32(2), 3: int32(3), 4: nil, 5: int32(5)} {
			var want storage.Record
			if v != nil {
				want = storage.Record{"id": int32(id), "v": v}
			}
			checkGet(t, f.ctx, f.s, other, storage.Key{"id": id}, want)
		}
	})

	t.Run("MutateAtomic", func(t *testing.T) { testMutateAtomic(t, f) })
}

// testMutateAtomic: a batch whose conditions all hold is applied whole;
// one whose condition at any position fails is applied not at all, and
// the error names that position.
func testMutateAtomic(t *testing.T, f *fixture) {
	am, ok := f.s.(storage.AtomicMutator)
	if !ok {
		t.Skip("the engine has no MutateAtomic")
	}
	tbl := f.createTable(&storage.TableMetadata{Table: "atomic", PartitionKey: []string{"id"},
		Columns: []storage.Column{col("id", storage.Int), col("v", storage.Int)}})
	for id := range 4 {
		mustPut(t, f.ctx, f.s, tbl, storage.Record{"id": id, "v": id})
	}
	vIs := func(v int) storage.Condition {
		return storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{{Column: "v", Op: storage.EQ, Value: v}}}
	}
	put := func(id, v int, cond storage.Condition) storage.Mutation {
		return storage.Put{Namespace: tbl.Namespace, Table: tbl.Table, Values: storage.Record{"id": id, "v": v}, Condition: cond}
	}
	del := func(id int, cond storage.Condition) storage.Mutation {
		return storage.Delete{Namespace: tbl.Namespace, Table: tbl.Table, Key: storage.Key{"id": id}, Condition: cond}
	}
	// Each batch: an insert first (as the coordinator insert comes
	// first), then writes in an order unlike the key order.
	tests := []struct {
		name   string
		ms     []storage.Mutation
		failed int // -1: applied
		after  map[int]any
	}{
		{"the first fails", []storage.Mutation{put(0, 9, storage.Condition{Kind: storage.PutIfNotExists}), put(3, 30, vIs(3)), put(1, 10, vIs(1))}, 0,
			map[int]any{0: int32(0), 1: int32(1), 3: int32(3)}},
		{"a middle one fails", []storage.Mutation{put(10, 10, storage.Condition{Kind: storage.PutIfNotExists}), put(3, 30, vIs(3)), put(2, 20, vIs(7)), put(1, 10, vIs(1))}, 2,
			map[int]any{10: nil, 1: int32(1), 2: int32(2), 3: int32(3)}},
		{"the last fails", []storage.Mutation{put(10, 10, storage.Condition{Kind: storage.PutIfNotExists}), put(3, 30, vIs(3)), del(5, storage.Condition{Kind: storage.DeleteIfExists})}, 2,
			map[int]any{10: nil, 3: int32(3)}},
		{"all hold", []storage.Mutation{put(10, 10, storage.Condition{Kind: storage.PutIfNotExists}), put(3, 30, vIs(3)), del(2, storage.Condition{Kind: storage.DeleteIf, Exprs: vIs(2).Exprs}),
			put(1, 10, vIs(1)), put(11, 11, storage.Condition{})}, -1,
			map[int]any{10: int32(10), 3: int32(30), 2: nil, 1: int32(10), 11: int32(11)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := am.MutateAtomic(f.ctx, tt.ms)
			var fe *storage.FailedMutationError
			switch {
			case tt.failed < 0 && err != nil:
				t.Fatalf("MutateAtomic = %v, want it applied", err)
			case tt.failed >= 0 && (!errors.As(err, &fe) || fe.Index != tt.failed || !errors.Is(err, storage.ErrNoMutation)):
				t.Fatalf("MutateAtomic = %v, want mutation %d's condition to fail", err, tt.failed)
			}
			for id, v := range tt.after {
				var want storage.Record
				if v != nil {
					want = storage.Record{"id": int32(id), "v": v}
				}
				checkGet(t, f.ctx, f.s, tbl, storage.Key{"id": id}, want)
			}
		})
	}
}
