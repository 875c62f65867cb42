package pitr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/stillpoint/stillpoint/internal/repo"
)

// Policy is restic's forget policy, applied to logical backups and to
// cuts, each on its own.
type Policy struct {
	Last, Daily, Weekly int
	Within              time.Duration
}

// Empty reports a policy that names nothing to keep.
func (p Policy) Empty() bool { return p.Last == 0 && p.Daily == 0 && p.Weekly == 0 && p.Within == 0 }

// Keep says, for times (any order), which to keep and why, as restic's
// forget does: --keep-last N the N newest; --keep-daily N the newest of
// each of the last N days that have one (likewise weeks, ISO weeks);
// --keep-within D everything taken within D of the newest. Days and
// weeks are UTC's.
func (p Policy) Keep(times []time.Time) [][]string {
	order := make([]int, len(times))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return times[b].Compare(times[a]) }) // newest first
	reasons := make([][]string, len(times))
	buckets := []struct {
		reason string
		n      int
		of     func(time.Time) string
	}{
		{"last", p.Last, func(t time.Time) string { return t.Format(time.RFC3339Nano) }},
		{"daily", p.Daily, func(t time.Time) string { return t.UTC().Format(time.DateOnly) }},
		{"weekly", p.Weekly, func(t time.Time) string { y, w := t.UTC().ISOWeek(); return fmt.Sprint(y, "-", w) }},
	}
	for _, b := range buckets {
		left, last := b.n, ""
		for _, i := range order {
			if left == 0 {
				break
			}
			// Same instant twice still counts as two for --keep-last.
			if k := b.of(times[i]); k != last || b.reason == "last" {
				reasons[i] = append(reasons[i], b.reason)
				left, last = left-1, k
			}
		}
	}
	if p.Within > 0 && len(order) > 0 {
		newest := times[order[0]]
		for _, i := range order {
			if !times[i].Before(newest.Add(-p.Within)) {
				reasons[i] = append(reasons[i], "within")
			}
		}
	}
	return reasons
}

// Verdict is one object's fate in a forget.
type Verdict struct {
	Kind    string    `json:"kind"` // backup, cut, base, log
	ID      string    `json:"id"`
	Store   string    `json:"store,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons,omitempty"`
}

// ForgetPlan is what forget keeps and removes.
type ForgetPlan struct {
	Objects []Verdict `json:"objects"`
	// Removed counts the objects removed (or, in a dry run, to remove) by kind.
	Removed map[string]int `json:"removed"`
	Kept    map[string]int `json:"kept"`
}

// Dated is a logical backup as forget sees it.
type Dated struct {
	ID   string
	Time time.Time
}

// PlanForget applies p to the logical backups (read by the caller, which
// refuses damaged ones) and the cuts; then keeps every base a kept cut
// restores from (its newest consistent base) and every base consistent
// only after the newest kept cut (future cuts need it), and every log
// file from the oldest kept base's start on. It refuses while a cut or
// base is damaged: it might need anything.
func PlanForget(ctx context.Context, r *repo.Repository, p Policy, backups []Dated) (*ForgetPlan, error) {
	if p.Empty() {
		return nil, errors.New("no policy given: nothing would be kept, so nothing is removed; give --keep-last, --keep-daily, --keep-weekly or --keep-within")
	}
	cuts, cdamaged, err := Cuts(ctx, r)
	if err != nil {
		return nil, err
	}
	bases, damaged, err := Bases(ctx, r)
	if err != nil {
		return nil, err
	}
	damaged = append(damaged, cdamaged...)
	if len(damaged) > 0 {
		return nil, fmt.Errorf("forget refused: %s %s is damaged and might need any object (%v); delete or repair it first", damaged[0].Kind, damaged[0].ID, damaged[0].Err)
	}
	plan := &ForgetPlan{Removed: map[string]int{}, Kept: map[string]int{}}
	add := func(v Verdict) {
		plan.Objects = append(plan.Objects, v)
		if v.Keep {
			plan.Kept[v.Kind]++
		} else {
			plan.Removed[v.Kind]++
		}
	}
	times := make([]time.Time, len(backups))
	for i, b := range backups {
		times[i] = b.Time
	}
	for i, why := range p.Keep(times) {
		add(Verdict{Kind: "backup", ID: backups[i].ID, Time: backups[i].Time, Keep: len(why) > 0, Reasons: why})
	}
	times = make([]time.Time, len(cuts))
	for i, c := range cuts {
		times[i] = c.Taken
	}
	needed := map[string][]string{}     // base id: the kept cuts restoring from it
	newestKept := map[string]Position{} // per store, the newest kept cut's position
	for i, why := range p.Keep(times) {
		c := cuts[i]
		add(Verdict{Kind: "cut", ID: c.ID, Time: c.Taken, Keep: len(why) > 0, Reasons: why})
		if len(why) == 0 {
			continue
		}
		for store, to := range c.Positions {
			b, err := BaseFor(bases, store, to)
			if err != nil {
				return nil, err
			}
			if b != nil {
				needed[b.ID] = append(needed[b.ID], "cut "+c.ID)
			}
			if n, ok := newestKept[store]; !ok {
				newestKept[store] = to
			} else if later, err := Compare(to, n); err != nil {
				return nil, err
			} else if later > 0 {
				newestKept[store] = to
			}
		}
	}
	oldest := map[string]*Base{} // per store, the oldest kept base
	for _, b := range bases {
		why := needed[b.ID]
		// A base consistent only after the newest kept cut serves the
		// cuts to come.
		if n, ok := newestKept[b.Store]; !ok {
			why = append(why, "no kept cut of its store")
		} else if after, err := Compare(b.Info.End, n); err != nil {
			return nil, err
		} else if after > 0 {
			why = append(why, "newer than every kept cut")
		}
		add(Verdict{Kind: "base", ID: b.ID, Store: b.Store, Time: b.Taken, Keep: len(why) > 0, Reasons: why})
		if len(why) > 0 && oldest[b.Store] == nil {
			oldest[b.Store] = b
		}
	}
	stores, err := logStores(ctx, r, bases)
	if err != nil {
		return nil, err
	}
	for _, store := range stores {
		names, err := r.ListLogs(ctx, store)
		if err != nil {
			return nil, err
		}
		b := oldest[store]
		for _, n := range names {
			// Kept: timeline history files (tiny, and every later
			// timeline's replay reads them), and all from the oldest kept
			// base on; with no kept base, everything.
			keep := b == nil || b.LogsBefore == "" || CompareLogNames(n, b.LogsBefore) > 0 || strings.HasSuffix(n, ".history")
			v := Verdict{Kind: "log", ID: n, Store: store, Keep: keep}
			if keep && b != nil {
				v.Reasons = []string{"base " + b.ID}
			}
			add(v)
		}
	}
	return plan, nil
}

// logStores are the stores with a log archive or a base.
func logStores(ctx context.Context, r *repo.Repository, bases []*Base) ([]string, error) {
	var stores []string
	for _, b := range bases {
		stores = append(stores, b.Store)
	}
	more, err := r.LogStores(ctx)
	stores = append(stores, more...)
	slices.Sort(stores)
	return slices.Compact(stores), err
}

// Forget carries out a plan holding lk: cuts, logical backups, bases and
// log files. The caller then prunes the chunks nothing references.
func Forget(ctx context.Context, r *repo.Repository, lk *repo.Lock, plan *ForgetPlan) error {
	for _, v := range plan.Objects {
		if v.Keep {
			continue
		}
		var err error
		switch v.Kind {
		case "cut":
			err = r.DeleteRecord(ctx, lk, repo.KindCut, v.ID)
		case "backup":
			err = r.DeleteManifest(ctx, lk, v.ID)
		case "base":
			err = r.DeleteRecord(ctx, lk, repo.KindBase, v.ID)
		case "log":
			err = r.DeleteLog(ctx, lk, v.Store, v.ID)
		}
		if err != nil {
			return fmt.Errorf("forget: removing %s %s: %w (what was removed before stays removed; run forget again to finish)", v.Kind, v.ID, err)
		}
		slog.Debug("forget: removed", "kind", v.Kind, "id", v.ID, "store", v.Store)
	}
	return nil
}
