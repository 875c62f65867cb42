package mysql_test

import (
	"testing"

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
		Database:  func(t *testing.T) string { return testenv.MySQLDSN(t) },
		Open:      storagetest.Opener(mysql.Open),
		Namespace: testenv.UniqueName,
	})
}
