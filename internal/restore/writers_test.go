package restore_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// watched is a Target over real stores that records, per store, how many
// loads ran at once, and when namespaces were created.
type watched struct {
	restore.Target
	mu             sync.Mutex
	active, most   map[string]int
	started        map[string]chan struct{} // closed when a store's second load starts
	overlapped     map[string]bool
	namespaces     map[string]int
	nsAfterLoading bool
}

func (w *watched) Destination(ctx context.Context, ns string) (string, restore.Destination, error) {
	name, d, err := w.Target.Destination(ctx, ns)
	return name, &watchedDest{Destination: d, w: w, store: name}, err
}

type watchedDest struct {
	restore.Destination
	w     *watched
	store string
}

func (d *watchedDest) CreateNamespace(ctx context.Context, ns string) error {
	d.created(ns)
	return d.Destination.CreateNamespace(ctx, ns)
}

// CreateNamespaceFrom is how a namespace is created from the DDL a backup
// captured on the same engine.
func (d *watchedDest) CreateNamespaceFrom(ctx context.Context, ns string, def *storage.NamespaceDefinition) error {
	d.created(ns)
	return d.Destination.CreateNamespaceFrom(ctx, ns, def)
}

func (d *watchedDest) created(ns string) {
	d.w.mu.Lock()
	d.w.namespaces[ns]++
	d.w.nsAfterLoading = d.w.nsAfterLoading || len(d.w.most) > 0
	d.w.mu.Unlock()
}

// Load holds the first load of a store until a second one starts there, or
// a while passes: loads that may overlap are made to.
func (d *watchedDest) Load(ctx context.Context, m *storage.TableMetadata, next func() (storage.Record, error)) (int64, error) {
	w := d.w
	w.mu.Lock()
	w.active[d.store]++
	n := w.active[d.store]
	w.most[d.store] = max(w.most[d.store], n)
	second, ok := w.started[d.store]
	if !ok {
		second = make(chan struct{})
		w.started[d.store] = second
	}
	if n == 2 && !w.overlapped[d.store] {
		w.overlapped[d.store] = true
		close(second)
	}
	w.mu.Unlock()
	if !ok { // the store's first load
		select {
		case <-second:
		case <-time.After(2 * time.Second): // no second load came: it was made to wait
		}
	}
	defer func() { w.mu.Lock(); w.active[d.store]--; w.mu.Unlock() }()
	return d.Destination.Load(ctx, m, next)
}

// TestOneWriterWhereTheEngineHasOne: loads into one SQLite database run
// one at a time (they would otherwise fail busy on a loaded machine),
// loads into PostgreSQL run at once; every namespace is created once,
// before any load.
func TestOneWriterWhereTheEngineHasOne(t *testing.T) {
	nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
	src := newBank(t, testenv.Embedded(t), nss, 20)
	man, err := backup.Create(context.Background(), src.st, src.repo, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	oneFile := func(t *testing.T) *config.Config {
		dir := t.TempDir()
		cfg := &config.Config{DataDir: dir, Stores: map[string]config.Store{"local": {Engine: "sqlite", Path: filepath.Join(dir, "all.db")}},
			Namespaces: map[string]string{}, Coordinator: "local", Source: "test"}
		for _, ns := range nss {
			cfg.Namespaces[ns] = "local"
		}
		return cfg
	}
	tests := []struct {
		name   string
		cfg    func(t *testing.T) *config.Config
		store  string
		serial bool // one load at a time into the store
	}{
		{"sqlite", oneFile, "local", true},
		{"postgres", func(t *testing.T) *config.Config { return postgresOnly(t, nss...) }, "pg", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := multistorage.New(tt.cfg(t))
			defer st.Close()
			w := &watched{Target: restore.Stores(st), active: map[string]int{}, most: map[string]int{},
				started: map[string]chan struct{}{}, overlapped: map[string]bool{}, namespaces: map[string]int{}}
			if _, err := restore.Run(context.Background(), src.repo, man, w, restore.Options{Parallel: 4}); err != nil {
				t.Fatal(err)
			}
			if most := w.most[tt.store]; (most == 1) != tt.serial {
				t.Errorf("at most %d loads at once into store %s; one at a time: %v", most, tt.store, tt.serial)
			}
			for _, ns := range append(nss, "coordinator") {
				if w.namespaces[ns] != 1 {
					t.Errorf("namespace %s created %d times, want once", ns, w.namespaces[ns])
				}
			}
			if w.nsAfterLoading {
				t.Error("a namespace was created while tables were loading")
			}
			checkSettled(t, st, src.setup)
		})
	}
}
