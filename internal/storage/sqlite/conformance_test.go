package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage/sqlite"
	"github.com/stillpoint/stillpoint/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		Engine: "sqlite",
		// A new database file per test: namespaces need no unique names.
		Database: func(t *testing.T) string { return filepath.Join(t.TempDir(), "store.db") },
		Open:     storagetest.Opener(sqlite.Open),
	})
}
