package pitr

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/txn"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// logEngine stands in for a database engine's PITR, for the core's
// orchestration tests only (the real engines are tested against real
// servers by their packages). Each store's "server" appends lines to a
// numbered log file (log.000001, ...); rotate archives the current file,
// as an archiver would. A base is every line so far; a restore is the
// base plus the log replayed to the position, written to DataDir/state.
type logEngine struct {
	mu     sync.Mutex
	repo   *repo.Repository
	logs   map[string]*storeLog
	probe  func() error // called by Mark: fails unless the fence holds
	marked int
}

type storeLog struct {
	all  []string // every line ever written
	file int      // the current log file's number
	cur  []byte   // its content so far
}

func (e *logEngine) log(store string) *storeLog {
	if e.logs[store] == nil {
		e.logs[store] = &storeLog{file: 1}
	}
	return e.logs[store]
}

func fileName(n int) string { return fmt.Sprintf("log.%06d", n) }

func (e *logEngine) write(store, line string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.log(store)
	l.all = append(l.all, line)
	l.cur = append(l.cur, line+"\n"...)
}

// rotate archives the current file and starts the next.
func (e *logEngine) rotate(t *testing.T, store string) {
	e.mu.Lock()
	l := e.log(store)
	name, data := fileName(l.file), l.cur
	l.file, l.cur = l.file+1, nil
	e.mu.Unlock()
	if err := NewLogs(e.repo, store).Put(context.Background(), name, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func (e *logEngine) pos(store string) Position {
	l := e.log(store)
	return Position{Engine: "test", File: fileName(l.file), Offset: uint64(len(l.cur))}
}

func (e *logEngine) Mark(ctx context.Context, st storage.Store, name string) (Position, error) {
	if err := e.probe(); err != nil {
		return Position{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.marked++
	return e.pos(st.(interface{ Name() string }).Name()), nil
}

func (e *logEngine) Base(ctx context.Context, sc config.Store, w io.Writer) (BaseInfo, error) {
	store := strings.TrimSuffix(filepath.Base(sc.Path), ".db")
	e.mu.Lock()
	p, lines := e.pos(store), strings.Join(e.log(store).all, "\n")
	e.mu.Unlock()
	_, err := io.WriteString(w, lines)
	return BaseInfo{Start: p, End: p, Version: "test", Format: "lines"}, err
}

func (e *logEngine) Gaps(ctx context.Context, store string, logs Logs, from Position) error {
	names, err := logs.Names(ctx)
	if err != nil {
		return err
	}
	want, after := from.File, ""
	for _, n := range names {
		if n < want {
			continue
		}
		if n != want {
			return &GapError{Store: store, After: after, Missing: want, Before: n}
		}
		var k int
		fmt.Sscanf(n, "log.%d", &k)
		after, want = n, fileName(k+1)
	}
	if after == "" {
		return &GapError{Store: store, Missing: want}
	}
	return nil
}

func (e *logEngine) Restore(ctx context.Context, base io.Reader, info BaseInfo, logs Logs, to Position, t Target) error {
	var out bytes.Buffer
	if _, err := io.Copy(&out, base); err != nil {
		return err
	}
	if out.Len() > 0 {
		out.WriteByte('\n')
	}
	var k int
	fmt.Sscanf(info.Start.File, "log.%d", &k)
	for n := fileName(k); n <= to.File; k, n = k+1, fileName(k+1) {
		var f bytes.Buffer
		if err := logs.Get(ctx, n, &f); err != nil {
			return err
		}
		b := f.Bytes()
		if n == to.File {
			b = b[:to.Offset]
		}
		if n == info.Start.File {
			b = b[info.Start.Offset:]
		}
		out.Write(b)
	}
	if err := os.MkdirAll(t.DataDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(t.DataDir, "state"), out.Bytes(), 0o644)
}

// harness is an embedded bank (SQLite stores, so the fence is real) with
// the stand-in engine registered for SQLite, and a repository.
type harness struct {
	st   *multistorage.Storage
	repo *repo.Repository
	be   backend.Backend
	eng  *logEngine
	cfg  *config.Config
	// stores are the embedded bank's: bank_0, bank_1, coordinator.
	stores []string
}

func newHarness(t *testing.T, key []byte) *harness {
	ctx := context.Background()
	// Not testenv.Embedded: testenv imports the engines, which import this
	// package.
	cfg, err := config.Load("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := multistorage.New(cfg)
	t.Cleanup(func() { st.Close() })
	m := txn.NewManager(st, txn.Options{})
	if err := bank.Create(ctx, st, m, bank.Setup{Namespaces: bank.DefaultNamespaces, Accounts: 4, InitialBalance: 10}, nil); err != nil {
		t.Fatal(err)
	}
	be, err := backend.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, key)
	if err != nil {
		t.Fatal(err)
	}
	coordPath := cfg.EmbeddedPath("coordinator")
	e := &logEngine{repo: r, logs: map[string]*storeLog{}, probe: func() error { return probeWriteLocked(coordPath) }}
	enginesMu.Lock()
	engines["sqlite"] = e
	enginesMu.Unlock()
	t.Cleanup(func() {
		enginesMu.Lock()
		delete(engines, "sqlite")
		enginesMu.Unlock()
	})
	names, err := st.StoreNames()
	if err != nil {
		t.Fatal(err)
	}
	return &harness{st: st, repo: r, be: be, eng: e, cfg: cfg, stores: names}
}

// probeWriteLocked fails unless the SQLite database's write lock is held
// by someone else (the fence): a write attempt that does not wait must be
// refused as busy.
func probeWriteLocked(path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec("BEGIN IMMEDIATE")
	if err == nil {
		db.Exec("ROLLBACK")
		return errors.New("the coordinator's write lock was free while marking: the fence did not hold")
	}
	if !strings.Contains(err.Error(), "locked") && !strings.Contains(err.Error(), "busy") {
		return err
	}
	return nil
}

func (h *harness) writeAll(prefix string) {
	for _, s := range h.stores {
		h.eng.write(s, prefix+"-"+s)
	}
}

func (h *harness) rotateAll(t *testing.T) {
	for _, s := range h.stores {
		h.eng.rotate(t, s)
	}
}

func (h *harness) lock(t *testing.T) *repo.Lock {
	lk, err := h.repo.Lock(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lk.Unlock() })
	return lk
}

// base takes a base of every store and returns their ids by store.
func (h *harness) base(t *testing.T) map[string]string {
	lk := h.lock(t)
	defer lk.Unlock()
	bases, err := CreateBases(context.Background(), h.repo, lk, h.st)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, b := range bases {
		ids[b.Store] = b.ID
	}
	return ids
}

func (h *harness) cut(t *testing.T, name string) (*Cut, map[string]string) {
	c, err := CreateCut(context.Background(), h.repo, h.st, MarkOptions{Name: name, AllowLogicalOnly: true, FenceTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, s := range h.stores {
		want[s] = strings.Join(h.eng.log(s).all, "\n")
	}
	return c, want
}

// restoreTo restores cut c into fresh directories and checks every store
// holds exactly the lines written before the mark.
func (h *harness) restoreTo(t *testing.T, c *Cut, want, wantBase map[string]string) {
	t.Helper()
	ctx := context.Background()
	p, err := PlanRestore(ctx, h.repo, c)
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]Target{}
	dir := t.TempDir()
	for _, s := range h.stores {
		targets[s] = Target{DataDir: filepath.Join(dir, s)}
	}
	res, err := Restore(ctx, h.repo, p, targets, func(context.Context) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stores) != len(h.stores) {
		t.Fatalf("restored %d stores, want %d", len(res.Stores), len(h.stores))
	}
	for _, sp := range res.Stores {
		if sp.Base.ID != wantBase[sp.Store] {
			t.Errorf("store %s: restored from base %s, want %s", sp.Store, sp.Base.ID, wantBase[sp.Store])
		}
		got, err := os.ReadFile(filepath.Join(dir, sp.Store, "state"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSuffix(string(got), "\n") != want[sp.Store] {
			t.Errorf("store %s restored to cut %s holds %q, want %q", sp.Store, c.ID, got, want[sp.Store])
		}
	}
}

func TestCutMarksUnderTheFence(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.writeAll("a")
	if err := h.eng.probe(); err == nil {
		t.Fatal("the fence probe passes with no fence held: it proves nothing")
	}
	// Cuts and archiving never wait for the repository lock a backup holds.
	lk := h.lock(t)
	c, _ := h.cut(t, "before-upgrade")
	h.rotateAll(t)
	lk.Unlock()
	if h.eng.marked != len(h.stores) || len(c.Positions) != len(h.stores) {
		t.Fatalf("marked %d stores, recorded %d positions; want %d of each", h.eng.marked, len(c.Positions), len(h.stores))
	}
	if c.FenceHold <= 0 || c.Coordinator != "coordinator" {
		t.Errorf("cut %+v: want a fence hold and the coordinator store", c)
	}
	cuts, damaged, err := Cuts(ctx, h.repo)
	if err != nil || len(damaged) > 0 || len(cuts) != 1 {
		t.Fatalf("Cuts = %v, %v, %v; want the one cut", cuts, damaged, err)
	}
	if got, err := FindCut(cuts, "before-upgrade"); err != nil || got.ID != c.ID {
		t.Errorf("FindCut(name) = %v, %v", got, err)
	}
	for _, tc := range []struct{ name, want string }{
		{"before-upgrade", "exists already"},
		{"no spaces", "invalid cut name"},
	} {
		if _, err := CreateCut(ctx, h.repo, h.st, MarkOptions{Name: tc.name}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CreateCut(%q) = %v, want %q", tc.name, err, tc.want)
		}
	}
	// A store with no PITR: refused without --allow-logical-only, and the
	// coordinator's cannot be left out at all.
	enginesMu.Lock()
	delete(engines, "sqlite")
	enginesMu.Unlock()
	if _, err := CreateCut(ctx, h.repo, h.st, MarkOptions{AllowLogicalOnly: true}); err == nil || !strings.Contains(err.Error(), "coordinator store coordinator has no point-in-time recovery") {
		t.Errorf("a cut with an SQLite coordinator = %v, want it refused", err)
	}
}

func TestRestoreToCutPicksTheBaseAndReplaysExactly(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"plain", nil}, {"encrypted", []byte("secret")}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.key)
			h.writeAll("a")
			b1 := h.base(t)
			h.writeAll("b")
			c1, want1 := h.cut(t, "")
			h.writeAll("c")
			h.rotateAll(t)
			h.writeAll("d")
			b2 := h.base(t)
			h.writeAll("e")
			c2, want2 := h.cut(t, "")
			h.writeAll("f")
			h.rotateAll(t)
			h.restoreTo(t, c1, want1, b1)
			h.restoreTo(t, c2, want2, b2)
		})
	}
}

func TestRestoreRefusesBeforeTouchingAnything(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.writeAll("a")
	h.rotateAll(t)
	c0, _ := h.cut(t, "before-any-base")
	h.writeAll("between")
	h.base(t)
	h.writeAll("b")
	h.rotateAll(t)
	h.writeAll("c")
	c, _ := h.cut(t, "")
	if _, err := PlanRestore(ctx, h.repo, c); err == nil || !strings.Contains(err.Error(), "not archived yet") {
		t.Errorf("restore to a cut whose log file is still being written = %v, want it refused", err)
	}
	h.rotateAll(t)
	if _, err := PlanRestore(ctx, h.repo, c0); err == nil || !strings.Contains(err.Error(), "no base backup is consistent before cut") {
		t.Errorf("restore to a cut before every base = %v, want it refused", err)
	}
	p, err := PlanRestore(ctx, h.repo, c)
	if err != nil {
		t.Fatal(err)
	}
	// A target that holds files is refused before any store is touched.
	dir := t.TempDir()
	targets := map[string]Target{}
	for _, s := range h.stores {
		targets[s] = Target{DataDir: filepath.Join(dir, s)}
	}
	os.MkdirAll(targets["bank_1"].DataDir, 0o755)
	os.WriteFile(filepath.Join(targets["bank_1"].DataDir, "PG_VERSION"), []byte("15"), 0o644)
	finished := false
	_, err = Restore(ctx, h.repo, p, targets, func(context.Context) error { finished = true; return nil })
	if err == nil || !strings.Contains(err.Error(), "is not empty") || finished {
		t.Errorf("restore over a non-empty directory = %v (finished %v), want it refused", err, finished)
	}
	for _, s := range []string{"bank_0", "coordinator"} {
		if _, err := os.Stat(targets[s].DataDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("store %s's target was touched (%v)", s, err)
		}
	}
	// A cut that cannot be finished: the restore fails, saying how to.
	for _, s := range h.stores {
		targets[s] = Target{DataDir: filepath.Join(t.TempDir(), s)}
	}
	res, err := Restore(ctx, h.repo, p, targets, func(context.Context) error { return errors.New("store unreachable") })
	if err == nil || res != nil || !strings.Contains(err.Error(), "cut is not finished") || !strings.Contains(err.Error(), "verify --repair --lifetime 0") {
		t.Errorf("restore whose cut cannot be finished = %v, %v; want an error saying how to finish it", res, err)
	}
	// A gap in one store's archive: the plan fails naming it.
	lk := h.lock(t)
	if err := h.repo.DeleteLog(ctx, lk, "bank_0", fileName(2)); err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	var gap *GapError
	if _, err := PlanRestore(ctx, h.repo, c); !errors.As(err, &gap) || gap.Store != "bank_0" || gap.Missing != fileName(2) {
		t.Errorf("restore across a gap = %v, want a *GapError naming bank_0's %s", err, fileName(2))
	}
	// ... and the check of the repository reports it.
	cuts, _, _ := Cuts(ctx, h.repo)
	bases, _, _ := Bases(ctx, h.repo)
	reach, err := Reaches(ctx, h.repo, cuts, bases)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reach {
		if hasGap := r.Gap != ""; hasGap != (r.Store == "bank_0") || r.Store != "bank_0" && r.To != c.ID {
			t.Errorf("reach of store %s = %+v; want a gap for bank_0 alone, the others restorable to the last cut", r.Store, r)
		}
	}
}
