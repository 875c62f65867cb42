package mysql_test

import (
	"context"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/mysql"
	"github.com/stillpoint/stillpoint/internal/storage/storagetest"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		Engine: "mysql",
		// One shared server: a namespace is a database, so every namespace
		// gets a unique name (the suite drops it at the end of its test).
		Database: func(t *testing.T) string { return testenv.MySQLDSN(t) },
		Open: func(ctx context.Context, dsn string) (storage.Store, error) {
			s, err := mysql.Open(ctx, "conformance", dsn)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		Namespace: testenv.UniqueName,
	})
}
