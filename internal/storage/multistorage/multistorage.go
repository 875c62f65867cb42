// Package multistorage routes each namespace to the store that holds it,
// as ScalarDB's multi-storage does, so the layers above see one Store.
package multistorage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage"

	// The engines Stillpoint ships with register themselves.
	_ "github.com/stillpoint/stillpoint/internal/storage/dynamodb"
	_ "github.com/stillpoint/stillpoint/internal/storage/mysql"
	_ "github.com/stillpoint/stillpoint/internal/storage/postgres"
	_ "github.com/stillpoint/stillpoint/internal/storage/sqlite"
)

// Storage opens stores on first use and routes operations by namespace.
type Storage struct {
	cfg       *config.Config
	mustExist bool

	mu     sync.Mutex
	stores map[string]storage.Store
}

var _ storage.Store = (*Storage)(nil)

// New routes by cfg; nothing is opened yet.
func New(cfg *config.Config) *Storage {
	return &Storage{cfg: cfg, stores: map[string]storage.Store{}}
}

// OnlyExisting makes every store refuse to open unless its database exists
// (storage.Connection.MustExist): for commands that must not create one.
func (s *Storage) OnlyExisting() *Storage {
	s.mustExist = true
	return s
}

// Config returns the configuration the storage routes by.
func (s *Storage) Config() *config.Config { return s.cfg }

// OpenStore connects to one configured store through its registered
// engine, with the layout's metadata schema and coordinator namespace.
// Its errors never show a password of the DSN.
func OpenStore(ctx context.Context, name string, sc config.Store, l storage.Layout, mustExist bool) (storage.Store, error) {
	e, err := storage.LookupEngine(sc.Engine)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	st, err := e.Open(ctx, name, storage.Connection{DSN: sc.DSN, Path: sc.Path, Layout: l, MustExist: mustExist})
	if err != nil {
		return nil, redactedError{msg: config.Redact(err.Error(), sc.DSN), err: err}
	}
	return st, nil
}

// redactedError shows a message with the passwords masked and keeps the
// original for errors.Is.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }

// Limits returns the limits of the engine of the store a namespace maps to.
func (s *Storage) Limits(namespace string) (storage.Limits, error) {
	name, err := s.cfg.StoreFor(namespace)
	if err != nil {
		return storage.Limits{}, err
	}
	sc, err := s.storeConfig(name)
	if err != nil {
		return storage.Limits{}, err
	}
	e, err := storage.LookupEngine(sc.Engine)
	if err != nil {
		return storage.Limits{}, fmt.Errorf("store %s: %w", name, err)
	}
	l, err := s.layout()
	if err != nil {
		return storage.Limits{}, err
	}
	return e.Limits(l.ScalarDB), nil
}

// layout is the configuration's: its schemas and its ScalarDB release.
func (s *Storage) layout() (storage.Layout, error) {
	v, err := storage.ParseScalarDBVersion(s.cfg.ScalarDBVersion)
	if err != nil {
		return storage.Layout{}, fmt.Errorf("scalardb_version: %w", err)
	}
	return storage.Layout{MetadataSchema: s.cfg.MetadataSchema, CoordinatorNamespace: s.cfg.CoordinatorNamespace, ScalarDB: v}, nil
}

// Store returns the named store, connecting on first use.
func (s *Storage) Store(ctx context.Context, name string) (storage.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stores[name]; ok {
		return st, nil
	}
	sc, err := s.storeConfig(name)
	if err != nil {
		return nil, err
	}
	l, err := s.layout()
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, name, sc, l, s.mustExist)
	if err != nil {
		return nil, err
	}
	s.stores[name] = st
	return st, nil
}

func (s *Storage) storeConfig(name string) (config.Store, error) {
	if s.cfg.Embedded {
		return config.Store{Engine: "sqlite", Path: s.cfg.EmbeddedPath(name)}, nil
	}
	sc, ok := s.cfg.Stores[name]
	if !ok {
		return config.Store{}, fmt.Errorf("no store named %q in %s", name, s.cfg.Source)
	}
	return sc, nil
}

// StoreName names the store that holds a namespace.
func (s *Storage) StoreName(namespace string) (string, error) { return s.cfg.StoreFor(namespace) }

// ForNamespace returns the store that holds a namespace.
func (s *Storage) ForNamespace(ctx context.Context, namespace string) (storage.Store, error) {
	name, err := s.cfg.StoreFor(namespace)
	if err != nil {
		return nil, err
	}
	return s.Store(ctx, name)
}

// StoreNames lists the stores that exist: the configured ones, or in the
// embedded default the SQLite files already in the data directory.
func (s *Storage) StoreNames() ([]string, error) {
	if !s.cfg.Embedded {
		return s.cfg.StoreNames(), nil
	}
	files, err := filepath.Glob(filepath.Join(s.cfg.DataDir, "*.db"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".db"))
	}
	slices.Sort(names)
	return names, nil
}

// Ping connects to every named store, so that an unreachable one is
// reported before anything is changed.
func (s *Storage) Ping(ctx context.Context, names []string) error {
	var errs []error
	for _, n := range names {
		if _, err := s.Store(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for n, st := range s.stores {
		errs = append(errs, st.Close())
		delete(s.stores, n)
	}
	return errors.Join(errs...)
}

func (s *Storage) Get(ctx context.Context, g storage.Get) (storage.Record, error) {
	st, err := s.ForNamespace(ctx, g.Namespace)
	if err != nil {
		return nil, err
	}
	return st.Get(ctx, g)
}

func (s *Storage) Scan(ctx context.Context, sc storage.Scan) ([]storage.Record, error) {
	st, err := s.ForNamespace(ctx, sc.Namespace)
	if err != nil {
		return nil, err
	}
	return st.Scan(ctx, sc)
}

func (s *Storage) ScanAll(ctx context.Context, sc storage.ScanAll) ([]storage.Record, error) {
	st, err := s.ForNamespace(ctx, sc.Namespace)
	if err != nil {
		return nil, err
	}
	return st.ScanAll(ctx, sc)
}

func (s *Storage) Put(ctx context.Context, p storage.Put) error {
	return s.Mutate(ctx, []storage.Mutation{p})
}

func (s *Storage) Delete(ctx context.Context, d storage.Delete) error {
	return s.Mutate(ctx, []storage.Mutation{d})
}

// Mutate applies mutations that all live in one store.
func (s *Storage) Mutate(ctx context.Context, ms []storage.Mutation) error {
	if len(ms) == 0 {
		return nil
	}
	var store string
	for _, m := range ms {
		ns, _ := storage.Target(m)
		name, err := s.cfg.StoreFor(ns)
		if err != nil {
			return err
		}
		if store != "" && name != store {
			return fmt.Errorf("one Mutate cannot span stores %s and %s: mutations must share a partition", store, name)
		}
		store = name
	}
	st, err := s.Store(ctx, store)
	if err != nil {
		return err
	}
	return st.Mutate(ctx, ms)
}

// Info describes the coordinator's store; per-store information comes from
// the stores themselves.
func (s *Storage) Info(ctx context.Context) (storage.EngineInfo, error) {
	st, err := s.ForNamespace(ctx, "coordinator")
	if err != nil {
		return storage.EngineInfo{}, err
	}
	return st.Info(ctx)
}

func (s *Storage) CreateNamespace(ctx context.Context, namespace string) error {
	st, err := s.ForNamespace(ctx, namespace)
	if err != nil {
		return err
	}
	return st.CreateNamespace(ctx, namespace)
}

func (s *Storage) DropNamespace(ctx context.Context, namespace string) error {
	st, err := s.ForNamespace(ctx, namespace)
	if err != nil {
		return err
	}
	return st.DropNamespace(ctx, namespace)
}

// Namespaces gathers the namespaces of every store that exists.
func (s *Storage) Namespaces(ctx context.Context) ([]string, error) {
	names, err := s.StoreNames()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		st, err := s.Store(ctx, n)
		if err != nil {
			return nil, err
		}
		nss, err := st.Namespaces(ctx)
		if err != nil {
			return nil, err
		}
		for _, ns := range nss {
			// A shared server may hold namespaces of other configurations:
			// list only those this configuration routes to this store.
			if owner, err := s.cfg.StoreFor(ns); err == nil && owner == n && !slices.Contains(out, ns) {
				out = append(out, ns)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *Storage) CreateTable(ctx context.Context, m *storage.TableMetadata) error {
	st, err := s.ForNamespace(ctx, m.Namespace)
	if err != nil {
		return err
	}
	return st.CreateTable(ctx, m)
}

func (s *Storage) DropTable(ctx context.Context, namespace, table string) error {
	st, err := s.ForNamespace(ctx, namespace)
	if err != nil {
		return err
	}
	return st.DropTable(ctx, namespace, table)
}

func (s *Storage) TableMetadata(ctx context.Context, namespace, table string) (*storage.TableMetadata, error) {
	st, err := s.ForNamespace(ctx, namespace)
	if err != nil {
		return nil, err
	}
	return st.TableMetadata(ctx, namespace, table)
}

func (s *Storage) Tables(ctx context.Context, namespace string) ([]string, error) {
	st, err := s.ForNamespace(ctx, namespace)
	if err != nil {
		return nil, err
	}
	return st.Tables(ctx, namespace)
}

// RemoveEmbedded deletes a namespace's SQLite file in the embedded default,
// once the namespace has been dropped.
func (s *Storage) RemoveEmbedded(namespace string) error {
	if !s.cfg.Embedded {
		return nil
	}
	s.mu.Lock()
	if st, ok := s.stores[namespace]; ok {
		st.Close()
		delete(s.stores, namespace)
	}
	s.mu.Unlock()
	p := s.cfg.EmbeddedPath(namespace)
	for _, f := range []string{p, p + "-wal", p + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
