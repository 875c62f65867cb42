package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlite"
	"github.com/stillpoint/stillpoint/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		Engine: "sqlite",
		// A new database file per test: namespaces need no unique names.
		Database: func(t *testing.T) string { return filepath.Join(t.TempDir(), "store.db") },
		Open: func(ctx context.Context, path string) (storage.Store, error) {
			s, err := sqlite.Open(ctx, "conformance", path)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	})
}
