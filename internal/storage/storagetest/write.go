package storagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
)

func testPutDelete(t *testing.T, h Harness) {
	f := newFixture(t, h)
	m := f.createTable(&storage.TableMetadata{
		Table:         "pd",
		Columns:       []storage.Column{col("p", storage.Int), col("c", storage.Text), col("a", storage.Int), col("b", storage.Text), col("d", storage.Blob)},
		PartitionKey:  []string{"p"},
		ClusteringKey: []storage.ClusteringKey{asc("c")},
	})
	key := storage.Key{"p": 1, "c": "x"}
	rec := func(a, b, d any) storage.Record {
		return storage.Record{"p": int32(1), "c": "x", "a": a, "b": b, "d": d}
	}

	t.Run("Upsert", func(t *testing.T) {
		// A new record gets NULL in the columns not given.
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 1, "c": "x", "a": 1})
		checkGet(t, f.ctx, f.s, m, key, rec(int32(1), nil, nil))
		// Columns not named keep their values.
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 1, "c": "x", "b": "bee"})
		checkGet(t, f.ctx, f.s, m, key, rec(int32(1), "bee", nil))
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 1, "c": "x", "a": 2, "d": []byte{}})
		checkGet(t, f.ctx, f.s, m, key, rec(int32(2), "bee", []byte{}))
		// Only the key: the record exists and nothing changes.
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 1, "c": "x"})
		checkGet(t, f.ctx, f.s, m, key, rec(int32(2), "bee", []byte{}))
		// An explicit nil writes NULL.
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 1, "c": "x", "a": nil, "d": nil})
		checkGet(t, f.ctx, f.s, m, key, rec(nil, "bee", nil))
		// The same values again are fine.
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 1, "c": "x", "a": nil, "b": "bee"})
		checkGet(t, f.ctx, f.s, m, key, rec(nil, "bee", nil))
		// Only the key of a new record.
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 2, "c": "y"})
		checkGet(t, f.ctx, f.s, m, storage.Key{"p": 2, "c": "y"}, storage.Record{"p": int32(2), "c": "y", "a": nil, "b": nil, "d": nil})
		// Neighbours are untouched.
		checkGet(t, f.ctx, f.s, m, key, rec(nil, "bee", nil))
	})

	t.Run("Delete", func(t *testing.T) {
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 3, "c": "x", "a": 1})
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 3, "c": "y", "a": 2})
		if err := f.s.Delete(f.ctx, storage.Delete{Namespace: m.Namespace, Table: m.Table, Key: storage.Key{"p": 3, "c": "x"}}); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		checkGet(t, f.ctx, f.s, m, storage.Key{"p": 3, "c": "x"}, nil)
		checkGet(t, f.ctx, f.s, m, storage.Key{"p": 3, "c": "y"}, storage.Record{"p": int32(3), "c": "y", "a": int32(2), "b": nil, "d": nil})
		// Deleting an absent record is not an error.
		for _, k := range []storage.Key{{"p": 3, "c": "x"}, {"p": 99, "c": "none"}} {
			if err := f.s.Delete(f.ctx, storage.Delete{Namespace: m.Namespace, Table: m.Table, Key: k}); err != nil {
				t.Errorf("Delete(%v) of an absent record: %v", k, err)
			}
		}
		// A deleted record can be written again, starting from NULLs.
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 3, "c": "x", "b": "again"})
		checkGet(t, f.ctx, f.s, m, storage.Key{"p": 3, "c": "x"}, storage.Record{"p": int32(3), "c": "x", "a": nil, "b": "again", "d": nil})
	})

	t.Run("Invalid", func(t *testing.T) {
		cases := []struct {
			name    string
			m       storage.Mutation
			mention string
		}{
			{"put without clustering key", storage.Put{Values: storage.Record{"p": 5, "a": 1}}, `"c"`},
			{"put without partition key", storage.Put{Values: storage.Record{"c": "z", "a": 1}}, `"p"`},
			{"put with a NULL key", storage.Put{Values: storage.Record{"p": 5, "c": nil}}, `"c"`},
			{"put of an unknown column", storage.Put{Values: storage.Record{"p": 5, "c": "z", "nope": 1}}, "nope"},
			{"delete without clustering key", storage.Delete{Key: storage.Key{"p": 5}}, `"c"`},
			{"delete with a non-key column", storage.Delete{Key: storage.Key{"p": 5, "c": "z", "a": 1}}, `"a"`},
			{"delete with a wrongly typed key", storage.Delete{Key: storage.Key{"p": "five", "c": "z"}}, `"p"`},
		}
		mustPut(t, f.ctx, f.s, m, storage.Record{"p": 5, "c": "z", "a": 7})
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var err error
				switch mu := c.m.(type) {
				case storage.Put:
					mu.Namespace, mu.Table = m.Namespace, m.Table
					err = f.s.Put(f.ctx, mu)
				case storage.Delete:
					mu.Namespace, mu.Table = m.Namespace, m.Table
					err = f.s.Delete(f.ctx, mu)
				}
				wantError(t, c.name, err, m.FullName(), c.mention)
				checkGet(t, f.ctx, f.s, m, storage.Key{"p": 5, "c": "z"}, storage.Record{"p": int32(5), "c": "z", "a": int32(7), "b": nil, "d": nil})
			})
		}
	})
}

func testConditions(t *testing.T, h Harness) {
	f := newFixture(t, h)
	m := f.createTable(&storage.TableMetadata{
		Table: "cond",
		Columns: []storage.Column{col("id", storage.Int), col("n", storage.Int), col("s", storage.Text),
			col("x", storage.BigInt), col("ts", storage.TimestampTZ), col("v", storage.Text)},
		PartitionKey: []string{"id"},
	})
	ns, tbl := m.Namespace, m.Table
	when := utc(2024, 6, 1, 12, 0, 0, 500_000_000)
	// Every case starts from this record.
	orig := storage.Record{"id": int32(1), "n": int32(10), "s": "m", "x": nil, "ts": when, "v": "orig"}
	key := storage.Key{"id": 1}
	reset := func(t *testing.T) {
		t.Helper()
		mustPut(t, f.ctx, f.s, m, orig)
	}
	with := func(col string, v any) storage.Record {
		r := storage.Record{}
		for k, w := range orig {
			r[k] = w
		}
		r[col] = v
		return r
	}
	e := func(column string, op storage.Op, v any) storage.Expr {
		return storage.Expr{Column: column, Op: op, Value: v}
	}
	type exprCase struct {
		exprs []storage.Expr
		holds bool
	}
	cases := []exprCase{
		{[]storage.Expr{e("n", storage.EQ, 10)}, true},
		{[]storage.Expr{e("n", storage.EQ, 11)}, false},
		{[]storage.Expr{e("n", storage.NE, 11)}, true},
		{[]storage.Expr{e("n", storage.NE, 10)}, false},
		{[]storage.Expr{e("n", storage.GT, 9)}, true},
		{[]storage.Expr{e("n", storage.GT, 10)}, false},
		{[]storage.Expr{e("n", storage.GTE, 10)}, true},
		{[]storage.Expr{e("n", storage.GTE, 11)}, false},
		{[]storage.Expr{e("n", storage.LT, 11)}, true},
		{[]storage.Expr{e("n", storage.LT, 10)}, false},
		{[]storage.Expr{e("n", storage.LTE, 10)}, true},
		{[]storage.Expr{e("n", storage.LTE, 9)}, false},
		{[]storage.Expr{e("x", storage.IsNull, nil)}, true},
		{[]storage.Expr{e("n", storage.IsNull, nil)}, false},
		{[]storage.Expr{e("n", storage.IsNotNull, nil)}, true},
		{[]storage.Expr{e("x", storage.IsNotNull, nil)}, false},
		// IS_NULL and IS_NOT_NULL ignore a value.
		{[]storage.Expr{e("x", storage.IsNull, 5)}, true},
		// Text compares bytewise: "M" < "m" < "n".
		{[]storage.Expr{e("s", storage.GT, "M")}, true},
		{[]storage.Expr{e("s", storage.LT, "n")}, true},
		{[]storage.Expr{e("s", storage.LT, "M")}, false},
		{[]storage.Expr{e("s", storage.EQ, "M")}, false},
		{[]storage.Expr{e("s", storage.EQ, "m ")}, false},
		{[]storage.Expr{e("s", storage.EQ, "m")}, true},
		// Timestamps compare as instants, at millisecond precision.
		{[]storage.Expr{e("ts", storage.EQ, when)}, true},
		{[]storage.Expr{e("ts", storage.EQ, when.In(time.FixedZone("UTC+9", 9*3600)))}, true},
		{[]storage.Expr{e("ts", storage.GT, when.Add(-time.Millisecond))}, true},
		{[]storage.Expr{e("ts", storage.GT, when)}, false},
		// A key column may be compared too.
		{[]storage.Expr{e("id", storage.EQ, 1)}, true},
		{[]storage.Expr{e("id", storage.NE, 1)}, false},
		// Every expression must hold.
		{[]storage.Expr{e("n", storage.EQ, 10), e("x", storage.IsNull, nil), e("s", storage.EQ, "m")}, true},
		{[]storage.Expr{e("n", storage.EQ, 10), e("x", storage.IsNotNull, nil)}, false},
		{[]storage.Expr{e("n", storage.EQ, 11), e("x", storage.IsNull, nil)}, false},
		// The same column twice: a range.
		{[]storage.Expr{e("n", storage.GT, 5), e("n", storage.LT, 15)}, true},
		{[]storage.Expr{e("n", storage.GT, 5), e("n", storage.LT, 10)}, false},
	}
	name := func(c exprCase) string {
		s := ""
		for i, x := range c.exprs {
			if i > 0 {
				s += " AND "
			}
			s += fmt.Sprintf("%s %v", x.Column, x.Op)
			if x.Op != storage.IsNull && x.Op != storage.IsNotNull {
				s += " " + show(x.Value)
			}
		}
		if c.holds {
			return s + " holds"
		}
		return s + " fails"
	}

	t.Run("PutIf", func(t *testing.T) {
		for _, c := range cases {
			t.Run(name(c), func(t *testing.T) {
				reset(t)
				err := f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: tbl, Values: storage.Record{"id": 1, "v": "new"},
					Condition: storage.Condition{Kind: storage.PutIf, Exprs: c.exprs}})
				if c.holds {
					if err != nil {
						t.Fatalf("PutIf: %v", err)
					}
					checkGet(t, f.ctx, f.s, m, key, with("v", "new"))
				} else {
					wantNoMutation(t, "PutIf", err, storage.PutIf)
					checkGet(t, f.ctx, f.s, m, key, orig)
				}
			})
		}
	})

	t.Run("DeleteIf", func(t *testing.T) {
		for _, c := range cases {
			t.Run(name(c), func(t *testing.T) {
				reset(t)
				err := f.s.Delete(f.ctx, storage.Delete{Namespace: ns, Table: tbl, Key: key,
					Condition: storage.Condition{Kind: storage.DeleteIf, Exprs: c.exprs}})
				if c.holds {
					if err != nil {
						t.Fatalf("DeleteIf: %v", err)
					}
					checkGet(t, f.ctx, f.s, m, key, nil)
				} else {
					wantNoMutation(t, "DeleteIf", err, storage.DeleteIf)
					checkGet(t, f.ctx, f.s, m, key, orig)
				}
			})
		}
	})

	t.Run("PutIfUnchangedValues", func(t *testing.T) {
		// Writing the values a record already has still counts as applied.
		reset(t)
		err := f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: tbl, Values: storage.Record{"id": 1, "n": 10, "v": "orig"},
			Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{e("n", storage.EQ, 10)}}})
		if err != nil {
			t.Fatalf("PutIf rewriting the same values: %v", err)
		}
		err = f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: tbl, Values: storage.Record{"id": 1, "n": 10},
			Condition: storage.Condition{Kind: storage.PutIfExists}})
		if err != nil {
			t.Fatalf("PutIfExists rewriting the same values: %v", err)
		}
		checkGet(t, f.ctx, f.s, m, key, orig)
	})

	t.Run("KeyOnly", func(t *testing.T) {
		// A conditional put naming only the key changes nothing but still
		// checks its condition.
		reset(t)
		for _, c := range []struct {
			cond  storage.Condition
			holds bool
		}{
			{storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{e("n", storage.EQ, 10)}}, true},
			{storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{e("n", storage.EQ, 11)}}, false},
			{storage.Condition{Kind: storage.PutIfExists}, true},
			{storage.Condition{Kind: storage.PutIfNotExists}, false},
		} {
			err := f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: tbl, Values: storage.Record{"id": 1}, Condition: c.cond})
			if c.holds && err != nil {
				t.Errorf("key-only %v %v: %v", c.cond.Kind, c.cond.Exprs, err)
			} else if !c.holds {
				wantNoMutation(t, fmt.Sprintf("key-only %v %v", c.cond.Kind, c.cond.Exprs), err, c.cond.Kind)
			}
			checkGet(t, f.ctx, f.s, m, key, orig)
		}
		err := f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: tbl, Values: storage.Record{"id": 2},
			Condition: storage.Condition{Kind: storage.PutIfExists}})
		wantNoMutation(t, "key-only PutIfExists on an absent record", err, storage.PutIfExists)
		checkGet(t, f.ctx, f.s, m, storage.Key{"id": 2}, nil)
	})

	t.Run("Existence", func(t *testing.T) {
		absent := storage.Key{"id": 2}
		put := func(kind storage.ConditionKind, values storage.Record) error {
			return f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: tbl, Values: values, Condition: storage.Condition{Kind: kind}})
		}
		del := func(k storage.Key, cond storage.Condition) error {
			return f.s.Delete(f.ctx, storage.Delete{Namespace: ns, Table: tbl, Key: k, Condition: cond})
		}
		reset(t)
		_ = del(absent, storage.Condition{})

		// PutIfExists.
		if err := put(storage.PutIfExists, storage.Record{"id": 1, "v": "exists"}); err != nil {
			t.Fatalf("PutIfExists on an existing record: %v", err)
		}
		checkGet(t, f.ctx, f.s, m, key, with("v", "exists"))
		wantNoMutation(t, "PutIfExists on an absent record", put(storage.PutIfExists, storage.Record{"id": 2, "v": "x"}), storage.PutIfExists)
		checkGet(t, f.ctx, f.s, m, absent, nil)

		// PutIf on an absent record fails, whatever its expressions.
		for _, x := range []storage.Expr{e("v", storage.IsNull, nil), e("n", storage.NE, 1)} {
			err := f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: tbl, Values: storage.Record{"id": 2, "v": "x"},
				Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{x}}})
			wantNoMutation(t, fmt.Sprintf("PutIf %s %v on an absent record", x.Column, x.Op), err, storage.PutIf)
			checkGet(t, f.ctx, f.s, m, absent, nil)
		}

		// PutIfNotExists.
		reset(t)
		wantNoMutation(t, "PutIfNotExists on an existing record", put(storage.PutIfNotExists, storage.Record{"id": 1, "v": "x", "n": 99}), storage.PutIfNotExists)
		checkGet(t, f.ctx, f.s, m, key, orig)
		if err := put(storage.PutIfNotExists, storage.Record{"id": 2, "v": "created"}); err != nil {
			t.Fatalf("PutIfNotExists on an absent record: %v", err)
		}
		checkGet(t, f.ctx, f.s, m, absent, storage.Record{"id": int32(2), "n": nil, "s": nil, "x": nil, "ts": nil, "v": "created"})

		// DeleteIfExists.
		if err := del(absent, storage.Condition{Kind: storage.DeleteIfExists}); err != nil {
			t.Fatalf("DeleteIfExists on an existing record: %v", err)
		}
		checkGet(t, f.ctx, f.s, m, absent, nil)
		wantNoMutation(t, "DeleteIfExists on an absent record", del(absent, storage.Condition{Kind: storage.DeleteIfExists}), storage.DeleteIfExists)

		// DeleteIf on an absent record fails.
		wantNoMutation(t, "DeleteIf on an absent record",
			del(absent, storage.Condition{Kind: storage.DeleteIf, Exprs: []storage.Expr{e("v", storage.IsNull, nil)}}), storage.DeleteIf)
		checkGet(t, f.ctx, f.s, m, key, orig)
	})

	t.Run("Invalid", func(t *testing.T) {
		reset(t)
		exprs := []storage.Expr{e("n", storage.EQ, 10)}
		cases := []struct {
			name    string
			m       storage.Mutation
			mention string
		}{
			{"put with DeleteIf", storage.Put{Values: storage.Record{"id": 1, "v": "bad"}, Condition: storage.Condition{Kind: storage.DeleteIf, Exprs: exprs}}, "DeleteIf"},
			{"put with DeleteIfExists", storage.Put{Values: storage.Record{"id": 1, "v": "bad"}, Condition: storage.Condition{Kind: storage.DeleteIfExists}}, "DeleteIfExists"},
			{"delete with PutIf", storage.Delete{Key: key, Condition: storage.Condition{Kind: storage.PutIf, Exprs: exprs}}, "PutIf"},
			{"delete with PutIfExists", storage.Delete{Key: key, Condition: storage.Condition{Kind: storage.PutIfExists}}, "PutIfExists"},
			{"delete with PutIfNotExists", storage.Delete{Key: key, Condition: storage.Condition{Kind: storage.PutIfNotExists}}, "PutIfNotExists"},
			{"PutIf without expressions", storage.Put{Values: storage.Record{"id": 1, "v": "bad"}, Condition: storage.Condition{Kind: storage.PutIf}}, "PutIf"},
			{"DeleteIf without expressions", storage.Delete{Key: key, Condition: storage.Condition{Kind: storage.DeleteIf}}, "DeleteIf"},
			{"unknown condition kind", storage.Put{Values: storage.Record{"id": 1, "v": "bad"}, Condition: storage.Condition{Kind: 99}}, ""},
			{"expression on an unknown column", storage.Put{Values: storage.Record{"id": 1, "v": "bad"},
				Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{e("nope", storage.EQ, 1)}}}, "nope"},
			{"expression without a value", storage.Put{Values: storage.Record{"id": 1, "v": "bad"},
				Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{e("n", storage.EQ, nil)}}}, `"n"`},
			{"expression with a wrongly typed value", storage.Delete{Key: key,
				Condition: storage.Condition{Kind: storage.DeleteIf, Exprs: []storage.Expr{e("n", storage.GT, "ten")}}}, `"n"`},
			{"expression with an unknown operator", storage.Delete{Key: key,
				Condition: storage.Condition{Kind: storage.DeleteIf, Exprs: []storage.Expr{e("n", storage.Op(42), 1)}}}, `"n"`},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var err error
				switch mu := c.m.(type) {
				case storage.Put:
					mu.Namespace, mu.Table = ns, tbl
					err = f.s.Put(f.ctx, mu)
				case storage.Delete:
					mu.Namespace, mu.Table = ns, tbl
					err = f.s.Delete(f.ctx, mu)
				}
				wantError(t, c.name, err, m.FullName(), c.mention)
				checkGet(t, f.ctx, f.s, m, key, orig)
			})
		}
	})
}

func testMutate(t *testing.T, h Harness) {
	f := newFixture(t, h)
	m := f.createTable(&storage.TableMetadata{
		Table:         "mut",
		Columns:       []storage.Column{col("p", storage.Text), col("c", storage.Int), col("v", storage.Text), col("ver", storage.Int)},
		PartitionKey:  []string{"p"},
		ClusteringKey: []storage.ClusteringKey{asc("c")},
	})
	ns, tbl := m.Namespace, m.Table
	put := func(c int, v string, cond storage.Condition) storage.Put {
		return storage.Put{Namespace: ns, Table: tbl, Values: storage.Record{"p": "a", "c": c, "v": v}, Condition: cond}
	}
	del := func(c int, cond storage.Condition) storage.Delete {
		return storage.Delete{Namespace: ns, Table: tbl, Key: storage.Key{"p": "a", "c": c}, Condition: cond}
	}
	none := storage.Condition{}
	exists := storage.Condition{Kind: storage.PutIfExists}
	notExists := storage.Condition{Kind: storage.PutIfNotExists}
	verIs := func(n int) storage.Condition {
		return storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{{Column: "ver", Op: storage.EQ, Value: n}}}
	}
	// state reads the partition as c -> v.
	state := func(t *testing.T) map[int32]string {
		t.Helper()
		out := map[int32]string{}
		for _, r := range mustScan(t, f.ctx, f.s, storage.Scan{Namespace: ns, Table: tbl, Partition: storage.Key{"p": "a"}}) {
			v, _ := r["v"].(string)
			out[r["c"].(int32)] = v
		}
		return out
	}
	checkState := func(t *testing.T, want map[int32]string) {
		t.Helper()
		got := state(t)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("partition holds %v, want %v", got, want)
		}
	}
	setup := func(t *testing.T) {
		t.Helper()
		if err := f.s.Mutate(f.ctx, []storage.Mutation{del(1, none), del(2, none), del(3, none), del(4, none), del(5, none)}); err != nil {
			t.Fatalf("Mutate of deletes: %v", err)
		}
		for c := 1; c <= 3; c++ {
			mustPut(t, f.ctx, f.s, m, storage.Record{"p": "a", "c": c, "v": fmt.Sprint("v", c), "ver": 1})
		}
	}
	initial := map[int32]string{1: "v1", 2: "v2", 3: "v3"}

	t.Run("AllApply", func(t *testing.T) {
		setup(t)
		err := f.s.Mutate(f.ctx, []storage.Mutation{
			put(1, "new1", none),
			put(2, "new2", verIs(1)),
			del(3, storage.Condition{Kind: storage.DeleteIfExists}),
			put(4, "new4", notExists),
			put(5, "new5", none),
			put(5, "new5b", exists), // sees the write before it
		})
		if err != nil {
			t.Fatalf("Mutate: %v", err)
		}
		checkState(t, map[int32]string{1: "new1", 2: "new2", 4: "new4", 5: "new5b"})
	})

	t.Run("Empty", func(t *testing.T) {
		setup(t)
		if err := f.s.Mutate(f.ctx, nil); err != nil {
			t.Errorf("Mutate(nil): %v", err)
		}
		checkState(t, initial)
	})

	failing := []struct {
		name string
		ms   func() []storage.Mutation
		kind storage.ConditionKind
	}{
		{"first fails", func() []storage.Mutation {
			return []storage.Mutation{put(1, "x", notExists), put(2, "x", none), put(4, "x", none), del(3, none)}
		}, storage.PutIfNotExists},
		{"last fails", func() []storage.Mutation {
			return []storage.Mutation{put(1, "x", none), put(4, "x", notExists), del(3, none), put(2, "x", verIs(2))}
		}, storage.PutIf},
		{"middle fails", func() []storage.Mutation {
			return []storage.Mutation{put(1, "x", verIs(1)), del(2, none), put(5, "x", exists), put(4, "x", none)}
		}, storage.PutIfExists},
		{"delete fails", func() []storage.Mutation {
			return []storage.Mutation{put(4, "x", notExists), del(1, none),
				del(5, storage.Condition{Kind: storage.DeleteIfExists})}
		}, storage.DeleteIfExists},
		{"fails on a record written before it", func() []storage.Mutation {
			return []storage.Mutation{put(4, "x", none), put(4, "y", notExists)}
		}, storage.PutIfNotExists},
		{"fails after deleting its record", func() []storage.Mutation {
			return []storage.Mutation{del(1, none), put(1, "y", exists)}
		}, storage.PutIfExists},
	}
	for _, c := range failing {
		t.Run("NoneApply/"+c.name, func(t *testing.T) {
			setup(t)
			err := f.s.Mutate(f.ctx, c.ms())
			wantNoMutation(t, "Mutate", err, c.kind)
			checkState(t, initial)
		})
	}

	t.Run("NoneApply/invalid mutation", func(t *testing.T) {
		setup(t)
		err := f.s.Mutate(f.ctx, []storage.Mutation{
			put(1, "x", none),
			storage.Put{Namespace: ns, Table: tbl, Values: storage.Record{"p": "a", "c": 2, "ver": "one"}},
		})
		wantError(t, "Mutate", err, m.FullName(), "ver")
		checkState(t, initial)
		err = f.s.Mutate(f.ctx, []storage.Mutation{
			put(1, "x", none),
			storage.Delete{Namespace: ns, Table: tbl, Key: storage.Key{"p": "a", "c": 2}, Condition: storage.Condition{Kind: storage.PutIfExists}},
		})
		wantError(t, "Mutate", err, m.FullName())
		checkState(t, initial)
	})
}
