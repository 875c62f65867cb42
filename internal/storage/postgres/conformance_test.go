package postgres_test

import (
	"context"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/postgres"
	"github.com/stillpoint/stillpoint/internal/storage/storagetest"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		Engine: "postgres",
		// A new, empty database per test.
		Database: func(t *testing.T) string { return testenv.PostgresDSN(t) },
		Open: func(ctx context.Context, dsn string) (storage.Store, error) {
			s, err := postgres.Open(ctx, "conformance", dsn)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		Namespace: testenv.UniqueName,
	})
}
