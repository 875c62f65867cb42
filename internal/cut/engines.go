package cut

import (
	"context"
	"fmt"
	"time"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/mysql"
	"github.com/stillpoint/stillpoint/internal/storage/postgres"
	"github.com/stillpoint/stillpoint/internal/storage/sqlite"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// EngineOf returns the cut engine of a store.
func EngineOf(st storage.Store) (Engine, error) {
	s, ok := st.(*sqlstore.Store)
	if !ok {
		return nil, fmt.Errorf("store %T cannot be cut", st)
	}
	return sqlEngine{s}, nil
}

type sqlEngine struct{ st *sqlstore.Store }

func (e sqlEngine) AcquireFence(ctx context.Context, timeout time.Duration) (Fence, error) {
	table := e.st.Dialect().Table(schema.CoordinatorNamespace, schema.CoordinatorTable)
	switch e.st.Dialect().Engine() {
	case "postgres":
		return postgres.AcquireFence(ctx, e.st, table, timeout)
	case "mysql":
		return mysql.AcquireFence(ctx, e.st, table, timeout)
	case "sqlite":
		return sqlite.AcquireFence(ctx, e.st, timeout)
	}
	return nil, fmt.Errorf("no fence for engine %s", e.st.Dialect().Engine())
}

func (e sqlEngine) OpenSnapshot(ctx context.Context) (Snapshot, error) {
	switch e.st.Dialect().Engine() {
	case "postgres":
		return postgres.OpenSnapshot(ctx, e.st)
	case "mysql":
		return mysql.OpenSnapshot(ctx, e.st)
	case "sqlite":
		return sqlite.OpenSnapshot(ctx, e.st)
	}
	return nil, fmt.Errorf("no snapshot for engine %s", e.st.Dialect().Engine())
}
