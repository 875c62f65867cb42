package storagetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
)

func testGet(t *testing.T, h Harness) {
	f := newFixture(t, h)
	m := f.createTable(&storage.TableMetadata{
		Table:         "get",
		Columns:       []storage.Column{col("p", storage.Text), col("c", storage.Int), col("v", storage.Text), col("w", storage.Int)},
		PartitionKey:  []string{"p"},
		ClusteringKey: []storage.ClusteringKey{asc("c")},
	})
	mustPut(t, f.ctx, f.s, m, storage.Record{"p": "x", "c": 1, "v": "one"})
	mustPut(t, f.ctx, f.s, m, storage.Record{"p": "x", "c": 2, "v": "two", "w": 2})

	t.Run("FullKey", func(t *testing.T) {
		checkGet(t, f.ctx, f.s, m, storage.Key{"p": "x", "c": 1}, storage.Record{"p": "x", "c": int32(1), "v": "one", "w": nil})
		checkGet(t, f.ctx, f.s, m, storage.Key{"p": "x", "c": 2}, storage.Record{"p": "x", "c": int32(2), "v": "two", "w": int32(2)})
	})
	t.Run("Absent", func(t *testing.T) {
		for _, k := range []storage.Key{{"p": "x", "c": 3}, {"p": "y", "c": 1}, {"p": "X", "c": 1}} {
			rec, err := f.s.Get(f.ctx, storage.Get{Namespace: m.Namespace, Table: m.Table, Key: k})
			if err != nil || rec != nil {
				t.Errorf("Get(%v) of an absent record = %v, %v; want nil, nil", k, rec, err)
			}
		}
	})
	t.Run("Projection", func(t *testing.T) {
		got := mustGet(t, f.ctx, f.s, m, storage.Key{"p": "x", "c": 1}, "v")
		checkRecord(t, "projection v", got, storage.Record{"v": "one"})
		got = mustGet(t, f.ctx, f.s, m, storage.Key{"p": "x", "c": 1}, "w", "p")
		checkRecord(t, "projection w, p", got, storage.Record{"w": nil, "p": "x"})
		if got := mustGet(t, f.ctx, f.s, m, storage.Key{"p": "x", "c": 9}, "v"); got != nil {
			t.Errorf("projected get of an absent record = %v, want nil", got)
		}
	})
	t.Run("BadKey", func(t *testing.T) {
		cases := []struct {
			name       string
			key        storage.Key
			projection []string
			mention    string
		}{
			{"missing clustering column", storage.Key{"p": "x"}, nil, `"c"`},
			{"missing partition column", storage.Key{"c": 1}, nil, `"p"`},
			{"unknown column", storage.Key{"p": "x", "c": 1, "nope": 1}, nil, "nope"},
			{"non-key column", storage.Key{"p": "x", "c": 1, "v": "one"}, nil, `"v"`},
			{"null key", storage.Key{"p": "x", "c": nil}, nil, `"c"`},
			{"wrong key type", storage.Key{"p": "x", "c": "one"}, nil, `"c"`},
			{"empty key", storage.Key{}, nil, `"p"`},
			{"unknown projection", storage.Key{"p": "x", "c": 1}, []string{"v", "nope"}, "nope"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				rec, err := f.s.Get(f.ctx, storage.Get{Namespace: m.Namespace, Table: m.Table, Key: c.key, Projection: c.projection})
				wantError(t, "get", err, m.FullName(), c.mention)
				if rec != nil {
					t.Errorf("get returned a record %v with its error", rec)
				}
			})
		}
	})
}

// scanRow is a record of a scan table: partition p, clustering (c1, c2).
type scanRow struct {
	p      string
	c1, c2 int32
}

func (r scanRow) record() storage.Record {
	return storage.Record{"p": r.p, "c1": r.c1, "c2": r.c2, "v": fmt.Sprintf("%s/%d/%d", r.p, r.c1, r.c2)}
}

func (r scanRow) get(column string) any {
	switch column {
	case "c1":
		return r.c1
	case "c2":
		return r.c2
	}
	panic(column)
}

// scanCase is one Scan, run against every clustering order.
type scanCase struct {
	name       string
	partition  string
	start, end *storage.Bound
	ordering   func(m *storage.TableMetadata) []storage.ClusteringKey
	limit      int
}

func bound(inclusive bool, kv ...any) *storage.Bound {
	k := storage.Key{}
	for i := 0; i < len(kv); i += 2 {
		k[kv[i].(string)] = kv[i+1]
	}
	return &storage.Bound{Key: k, Inclusive: inclusive}
}

func flip(o storage.Order) storage.Order {
	if o == storage.Asc {
		return storage.Desc
	}
	return storage.Asc
}

func reversed(m *storage.TableMetadata) []storage.ClusteringKey {
	var out []storage.ClusteringKey
	for _, c := range m.ClusteringKey {
		out = append(out, storage.ClusteringKey{Name: c.Name, Order: flip(c.Order)})
	}
	return out
}

func tableOrder(m *storage.TableMetadata) []storage.ClusteringKey {
	return slices.Clone(m.ClusteringKey)
}

func firstReversed(m *storage.TableMetadata) []storage.ClusteringKey { return reversed(m)[:1] }

func firstSame(m *storage.TableMetadata) []storage.ClusteringKey { return tableOrder(m)[:1] }

// effectiveOrdering follows ScalarDB: a partial ordering is completed with
// the remaining clustering columns, all reversed when the first given
// ordering reverses the table's.
func effectiveOrdering(m *storage.TableMetadata, ord []storage.ClusteringKey) []storage.ClusteringKey {
	if len(ord) == 0 {
		return m.ClusteringKey
	}
	out := slices.Clone(ord)
	first, _ := m.ClusteringOrder(ord[0].Name)
	rev := ord[0].Order != first
	for _, c := range m.ClusteringKey[len(ord):] {
		if rev {
			c.Order = flip(c.Order)
		}
		out = append(out, c)
	}
	return out
}

// expectScan is what a scan must return, computed from the rows written.
func expectScan(m *storage.TableMetadata, rows []scanRow, sc storage.Scan) []scanRow {
	inBound := func(r scanRow, b *storage.Bound, dir int) bool {
		if b == nil {
			return true
		}
		cols := storage.BoundColumns(m, b)
		for _, c := range cols[:len(cols)-1] {
			if storage.Compare(r.get(c), b.Key[c]) != 0 {
				return false
			}
		}
		last := cols[len(cols)-1]
		d := storage.Compare(r.get(last), b.Key[last]) * dir
		return d > 0 || (d == 0 && b.Inclusive)
	}
	start, err := storage.NormalizeBound(m, sc.Start, "start")
	if err != nil {
		panic(err)
	}
	end, err := storage.NormalizeBound(m, sc.End, "end")
	if err != nil {
		panic(err)
	}
	var out []scanRow
	for _, r := range rows {
		if r.p == sc.Partition["p"] && inBound(r, start, 1) && inBound(r, end, -1) {
			out = append(out, r)
		}
	}
	ord := effectiveOrdering(m, sc.Ordering)
	slices.SortFunc(out, func(a, b scanRow) int {
		for _, o := range ord {
			c := storage.Compare(a.get(o.Name), b.get(o.Name))
			if o.Order == storage.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	if sc.Limit > 0 && len(out) > sc.Limit {
		out = out[:sc.Limit]
	}
	return out
}

func testScan(t *testing.T, h Harness) {
	f := newFixture(t, h)
	ns := f.namespace("scan")
	var rows []scanRow
	for c1 := range int32(4) {
		for c2 := range int32(4) {
			rows = append(rows, scanRow{"p1", c1, c2})
		}
	}
	rows = append(rows, scanRow{"p2", 0, 0}, scanRow{"p2", 1, 5}, scanRow{"p2", 2, 1}, scanRow{"P1", 1, 1})
	cases := []scanCase{
		{name: "whole partition", partition: "p1"},
		{name: "other partition", partition: "p2"},
		{name: "partition differing in case", partition: "P1"},
		{name: "empty partition", partition: "p3"},
		{name: "start inclusive", partition: "p1", start: bound(true, "c1", 1)},
		{name: "start exclusive", partition: "p1", start: bound(false, "c1", 1)},
		{name: "end inclusive", partition: "p1", end: bound(true, "c1", 2)},
		{name: "end exclusive", partition: "p1", end: bound(false, "c1", 2)},
		{name: "start inclusive end exclusive", partition: "p1", start: bound(true, "c1", 1), end: bound(false, "c1", 3)},
		{name: "start exclusive end inclusive", partition: "p1", start: bound(false, "c1", 1), end: bound(true, "c1", 3)},
		{name: "single value", partition: "p1", start: bound(true, "c1", 2), end: bound(true, "c1", 2)},
		{name: "empty range", partition: "p1", start: bound(false, "c1", 2), end: bound(false, "c1", 3)},
		{name: "beyond the data", partition: "p1", start: bound(true, "c1", 10)},
		{name: "prefix range inclusive", partition: "p1", start: bound(true, "c1", 1, "c2", 1), end: bound(true, "c1", 1, "c2", 2)},
		{name: "prefix range exclusive", partition: "p1", start: bound(false, "c1", 1, "c2", 0), end: bound(false, "c1", 1, "c2", 3)},
		{name: "prefix start only", partition: "p1", start: bound(true, "c1", 2, "c2", 2)},
		{name: "prefix end only", partition: "p1", end: bound(false, "c1", 0, "c2", 2)},
		{name: "prefix start with first-column end", partition: "p1", start: bound(false, "c1", 3, "c2", 1), end: bound(true, "c1", 3)},
		{name: "ordering as table", partition: "p1", ordering: tableOrder},
		{name: "ordering reversed", partition: "p1", ordering: reversed},
		{name: "ordering first column reversed", partition: "p1", ordering: firstReversed},
		{name: "ordering first column as table", partition: "p1", ordering: firstSame},
		{name: "ordering reversed with range", partition: "p1", start: bound(true, "c1", 1), end: bound(false, "c1", 3), ordering: reversed},
		{name: "ordering reversed with prefix range", partition: "p1", start: bound(true, "c1", 2, "c2", 1), end: bound(true, "c1", 2, "c2", 3), ordering: reversed},
		{name: "limit", partition: "p1", limit: 3},
		{name: "limit reversed", partition: "p1", limit: 5, ordering: reversed},
		{name: "limit with range", partition: "p1", start: bound(false, "c1", 0), limit: 2},
		{name: "limit beyond", partition: "p2", limit: 100},
		{name: "limit one", partition: "p1", end: bound(true, "c1", 1, "c2", 1), limit: 1, ordering: reversed},
	}
	orders := [][]storage.ClusteringKey{
		{asc("c1"), asc("c2")},
		{desc("c1"), desc("c2")},
		{asc("c1"), desc("c2")},
		{desc("c1"), asc("c2")},
	}
	for _, ord := range orders {
		name := fmt.Sprintf("c1_%v_c2_%v", ord[0].Order, ord[1].Order)
		t.Run(name, func(t *testing.T) {
			m := f.createTable(&storage.TableMetadata{
				Namespace: ns, Table: strings.ToLower(name),
				Columns:       []storage.Column{col("p", storage.Text), col("c1", storage.Int), col("c2", storage.Int), col("v", storage.Text)},
				PartitionKey:  []string{"p"},
				ClusteringKey: ord,
			})
			for i := range rows { // not in key order
				mustPut(t, f.ctx, f.s, m, rows[(i*7)%len(rows)].record())
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					sc := storage.Scan{Namespace: ns, Table: m.Table, Partition: storage.Key{"p": c.partition},
						Start: c.start, End: c.end, Limit: c.limit}
					if c.ordering != nil {
						sc.Ordering = c.ordering(m)
					}
					want := expectScan(m, rows, sc)
					got := mustScan(t, f.ctx, f.s, sc)
					checkScan(t, got, want)
				})
			}
			t.Run("projection", func(t *testing.T) {
				got := mustScan(t, f.ctx, f.s, storage.Scan{Namespace: ns, Table: m.Table, Partition: storage.Key{"p": "p2"},
					Projection: []string{"v", "c2"}, Ordering: []storage.ClusteringKey{asc("c1"), asc("c2")}})
				want := expectScan(m, rows, storage.Scan{Partition: storage.Key{"p": "p2"}, Ordering: []storage.ClusteringKey{asc("c1"), asc("c2")}})
				if len(got) != len(want) {
					t.Fatalf("got %d records, want %d", len(got), len(want))
				}
				for i, w := range want {
					r := w.record()
					checkRecord(t, fmt.Sprintf("record %d", i), got[i], storage.Record{"v": r["v"], "c2": r["c2"]})
				}
			})
		})
	}

	t.Run("Invalid", func(t *testing.T) {
		m, err := f.s.TableMetadata(f.ctx, ns, "c1_asc_c2_asc")
		if err != nil || m == nil {
			t.Fatalf("TableMetadata: %v, %v", m, err)
		}
		p := storage.Key{"p": "p1"}
		cases := []struct {
			name    string
			scan    storage.Scan
			mention string
		}{
			{"missing partition", storage.Scan{}, `"p"`},
			{"partition with a clustering column", storage.Scan{Partition: storage.Key{"p": "p1", "c1": 1}}, `"c1"`},
			{"partition of the wrong type", storage.Scan{Partition: storage.Key{"p": 1}}, `"p"`},
			{"bound not a prefix", storage.Scan{Partition: p, Start: bound(true, "c2", 1)}, `"c1"`},
			{"bound with a non-key column", storage.Scan{Partition: p, End: bound(true, "c1", 1, "v", "x")}, ""},
			{"bound too long", storage.Scan{Partition: p, End: bound(true, "c1", 1, "c2", 1, "p", "x")}, ""},
			{"empty bound", storage.Scan{Partition: p, Start: &storage.Bound{Key: storage.Key{}}}, ""},
			{"bound of the wrong type", storage.Scan{Partition: p, Start: bound(true, "c1", "one")}, `"c1"`},
			{"ordering by a non-clustering column", storage.Scan{Partition: p, Ordering: []storage.ClusteringKey{asc("v")}}, `"v"`},
			{"negative limit", storage.Scan{Partition: p, Limit: -1}, "-1"},
			{"unknown projection", storage.Scan{Partition: p, Projection: []string{"nope"}}, "nope"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				c.scan.Namespace, c.scan.Table = ns, m.Table
				recs, err := f.s.Scan(f.ctx, c.scan)
				wantError(t, "scan", err, m.FullName(), c.mention)
				if recs != nil {
					t.Errorf("scan returned records %v with its error", recs)
				}
			})
		}
	})
}

func checkScan(t *testing.T, got []storage.Record, want []scanRow) {
	t.Helper()
	keys := func(recs []storage.Record) []string {
		var out []string
		for _, r := range recs {
			out = append(out, fmt.Sprintf("%v/%v/%v", r["p"], r["c1"], r["c2"]))
		}
		return out
	}
	var wantRecs []storage.Record
	for _, r := range want {
		wantRecs = append(wantRecs, r.record())
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records %v, want %d %v", len(got), keys(got), len(want), keys(wantRecs))
	}
	for i := range got {
		if diffValue(wantRecs[i]["c1"], got[i]["c1"]) != "" || diffValue(wantRecs[i]["c2"], got[i]["c2"]) != "" {
			t.Fatalf("records out of order or wrong:\n got %v\nwant %v", keys(got), keys(wantRecs))
		}
		checkRecord(t, fmt.Sprintf("record %d", i), got[i], wantRecs[i])
	}
}

func testTextKeys(t *testing.T, h Harness) {
	f := newFixture(t, h)
	ns := f.namespace("text")
	keys := []string{"b", "A", "a", "", "a ", "Z", "B", "ab", "~", "é", "😀", "aB", "a\t"}
	sorted := slices.Clone(keys)
	slices.Sort(sorted) // Go compares strings bytewise
	for _, order := range []storage.Order{storage.Asc, storage.Desc} {
		t.Run(order.String(), func(t *testing.T) {
			m := f.createTable(&storage.TableMetadata{
				Namespace: ns, Table: "text_" + strings.ToLower(order.String()),
				Columns:       []storage.Column{col("p", storage.Text), col("c", storage.Text), col("v", storage.Int)},
				PartitionKey:  []string{"p"},
				ClusteringKey: []storage.ClusteringKey{{Name: "c", Order: order}},
			})
			for i, k := range keys {
				mustPut(t, f.ctx, f.s, m, storage.Record{"p": "k", "c": k, "v": i})
				// Partitions differing only in case are distinct too.
				mustPut(t, f.ctx, f.s, m, storage.Record{"p": "K", "c": k, "v": -i})
			}
			for i, k := range keys {
				checkGet(t, f.ctx, f.s, m, storage.Key{"p": "k", "c": k}, storage.Record{"p": "k", "c": k, "v": int32(i)})
				checkGet(t, f.ctx, f.s, m, storage.Key{"p": "K", "c": k}, storage.Record{"p": "K", "c": k, "v": int32(-i)})
			}
			want := slices.Clone(sorted)
			if order == storage.Desc {
				slices.Reverse(want)
			}
			checkTextScan(t, mustScan(t, f.ctx, f.s, storage.Scan{Namespace: ns, Table: m.Table, Partition: storage.Key{"p": "k"}}), want)

			// A range, bytewise: "B" <= c < "a " holds B, Z, a, a\t, aB.
			var inRange []string
			for _, k := range sorted {
				if k >= "B" && k < "a " {
					inRange = append(inRange, k)
				}
			}
			got := mustScan(t, f.ctx, f.s, storage.Scan{Namespace: ns, Table: m.Table, Partition: storage.Key{"p": "k"},
				Start: bound(true, "c", "B"), End: bound(false, "c", "a "),
				Ordering: []storage.ClusteringKey{asc("c")}})
			checkTextScan(t, got, inRange)

			// Conditions compare text bytewise too.
			err := f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: m.Table, Values: storage.Record{"p": "k", "c": "a", "v": 100},
				Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{{Column: "c", Op: storage.EQ, Value: "A"}}}})
			wantNoMutation(t, `PutIf c = "A" on the record "a"`, err, storage.PutIf)
			err = f.s.Put(f.ctx, storage.Put{Namespace: ns, Table: m.Table, Values: storage.Record{"p": "k", "c": "a", "v": 100},
				Condition: storage.Condition{Kind: storage.PutIf, Exprs: []storage.Expr{{Column: "c", Op: storage.EQ, Value: "a "}}}})
			wantNoMutation(t, `PutIf c = "a " on the record "a"`, err, storage.PutIf)
			checkGet(t, f.ctx, f.s, m, storage.Key{"p": "k", "c": "a"}, storage.Record{"p": "k", "c": "a", "v": int32(slices.Index(keys, "a"))})
		})
	}
}

func checkTextScan(t *testing.T, got []storage.Record, want []string) {
	t.Helper()
	var keys []string
	for _, r := range got {
		s, _ := r["c"].(string)
		keys = append(keys, s)
	}
	if !slices.Equal(keys, want) {
		t.Errorf("scan order:\n got %q\nwant %q", keys, want)
	}
}

func testScanAll(t *testing.T, h Harness) {
	f := newFixture(t, h)
	m := f.createTable(&storage.TableMetadata{
		Table:         "all",
		Columns:       []storage.Column{col("p", storage.Int), col("c", storage.Int), col("v", storage.Text)},
		PartitionKey:  []string{"p"},
		ClusteringKey: []storage.ClusteringKey{desc("c")},
	})
	empty := f.createTable(&storage.TableMetadata{Namespace: m.Namespace, Table: "empty",
		Columns: []storage.Column{col("p", storage.Int)}, PartitionKey: []string{"p"}})
	want := map[string]storage.Record{}
	for p := range int32(3) {
		for c := range int32(3) {
			r := storage.Record{"p": p, "c": c, "v": fmt.Sprintf("%d-%d", p, c)}
			mustPut(t, f.ctx, f.s, m, r)
			want[r["v"].(string)] = r
		}
	}
	scanAll := func(t *testing.T, sa storage.ScanAll) []storage.Record {
		t.Helper()
		recs, err := f.s.ScanAll(f.ctx, sa)
		if err != nil {
			t.Fatalf("ScanAll: %v", err)
		}
		return recs
	}
	// check that recs are n distinct records of want.
	check := func(t *testing.T, recs []storage.Record, n int, projection ...string) {
		t.Helper()
		if len(recs) != n {
			t.Fatalf("got %d records, want %d: %v", len(recs), n, recs)
		}
		seen := map[string]bool{}
		for _, r := range recs {
			v, _ := r["v"].(string)
			w, ok := want[v]
			if !ok || seen[v] {
				t.Fatalf("unexpected or repeated record %s", showRecord(r))
			}
			seen[v] = true
			if len(projection) > 0 {
				p := storage.Record{}
				for _, c := range projection {
					p[c] = w[c]
				}
				w = p
			}
			checkRecord(t, "record", r, w)
		}
	}
	t.Run("NoLimit", func(t *testing.T) {
		check(t, scanAll(t, storage.ScanAll{Namespace: m.Namespace, Table: m.Table}), 9)
	})
	t.Run("Limit", func(t *testing.T) {
		check(t, scanAll(t, storage.ScanAll{Namespace: m.Namespace, Table: m.Table, Limit: 4}), 4)
		check(t, scanAll(t, storage.ScanAll{Namespace: m.Namespace, Table: m.Table, Limit: 1}), 1)
		check(t, scanAll(t, storage.ScanAll{Namespace: m.Namespace, Table: m.Table, Limit: 100}), 9)
	})
	t.Run("Projection", func(t *testing.T) {
		check(t, scanAll(t, storage.ScanAll{Namespace: m.Namespace, Table: m.Table, Projection: []string{"v"}}), 9, "v")
		check(t, scanAll(t, storage.ScanAll{Namespace: m.Namespace, Table: m.Table, Projection: []string{"v", "c"}, Limit: 2}), 2, "v", "c")
	})
	t.Run("Empty", func(t *testing.T) {
		if recs := scanAll(t, storage.ScanAll{Namespace: empty.Namespace, Table: empty.Table}); len(recs) != 0 {
			t.Errorf("ScanAll of an empty table = %v", recs)
		}
	})
	t.Run("Where", func(t *testing.T) {
		fs, ok := f.s.(storage.FilteredScanner)
		if !ok {
			t.Skipf("%T filters no scan (storage.FilteredScanner is optional)", f.s)
		}
		for _, tc := range []struct {
			where []storage.Expr
			want  int
		}{
			{[]storage.Expr{{Column: "c", Op: storage.NE, Value: int32(1)}, {Column: "v", Op: storage.IsNotNull}}, 6},
			{[]storage.Expr{{Column: "p", Op: storage.EQ, Value: int32(2)}}, 3},
			{[]storage.Expr{{Column: "v", Op: storage.IsNull}}, 0},
		} {
			recs, err := fs.ScanAllWhere(f.ctx, storage.ScanAll{Namespace: m.Namespace, Table: m.Table}, tc.where)
			if err != nil {
				t.Fatal(err)
			}
			check(t, recs, tc.want)
			for _, r := range recs {
				if c := r["c"].(int32); len(tc.where) == 2 && c == 1 || tc.want == 3 && r["p"].(int32) != 2 {
					t.Errorf("ScanAllWhere(%v) returned %s", tc.where, showRecord(r))
				}
			}
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		_, err := f.s.ScanAll(f.ctx, storage.ScanAll{Namespace: m.Namespace, Table: m.Table, Limit: -1})
		wantError(t, "negative limit", err, m.FullName())
		_, err = f.s.ScanAll(f.ctx, storage.ScanAll{Namespace: m.Namespace, Table: m.Table, Projection: []string{"nope"}})
		wantError(t, "unknown projection", err, m.FullName(), "nope")
	})
}
