package cut

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// Methods are how one SQL engine fences the coordinator table and fixes a
// snapshot. Engine packages register theirs in init.
type Methods struct {
	AcquireFence func(ctx context.Context, st *sqlstore.Store, coordinatorTable string, timeout time.Duration) (Fence, error)
	OpenSnapshot func(ctx context.Context, st *sqlstore.Store) (Snapshot, error)
}

var (
	methodsMu sync.RWMutex
	methods   = map[string]Methods{}
)

// Register makes an engine's cut methods known by its engine name (the
// name its Dialect reports). Registering a name twice is a programming error.
func Register(engine string, m Methods) {
	methodsMu.Lock()
	defer methodsMu.Unlock()
	if _, dup := methods[engine]; dup {
		panic("cut: engine " + engine + " registered twice")
	}
	methods[engine] = m
}

// EngineOf returns the cut engine of a store: a store without snapshots
// that implements ScanStore is read whole under the fence (ScanEngine).
func EngineOf(st storage.Store) (Engine, error) {
	if ss, ok := st.(ScanStore); ok {
		var o ScanOptions
		if t, ok := ss.(ScanTuned); ok {
			o = t.ScanOptions()
		}
		return ScanEngine(ss, o), nil
	}
	s, ok := st.(*sqlstore.Store)
	if !ok {
		return nil, fmt.Errorf("store %T cannot be cut", st)
	}
	methodsMu.RLock()
	m, ok := methods[s.Dialect().Engine()]
	methodsMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("store %s: engine %s has no fence or snapshot", s.Name(), s.Dialect().Engine())
	}
	return sqlEngine{s, m}, nil
}

type sqlEngine struct {
	st *sqlstore.Store
	m  Methods
}

func (e sqlEngine) AcquireFence(ctx context.Context, timeout time.Duration) (Fence, error) {
	return e.m.AcquireFence(ctx, e.st, e.st.Table(schema.CoordinatorNamespace, schema.CoordinatorTable), timeout)
}

func (e sqlEngine) OpenSnapshot(ctx context.Context) (Snapshot, error) {
	return e.m.OpenSnapshot(ctx, e.st)
}
