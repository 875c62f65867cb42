package postgres_test

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stillpoint/stillpoint/internal/storage/postgres"
	"github.com/stillpoint/stillpoint/internal/storage/storagetest"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The contract holds in a database whose collation orders by code point
// (the test server's C.UTF-8, ScalarDB's DDL as is) and in one whose
// collation does not (ICU en-US, where Stillpoint's DDL states the "C"
// collation for text: docs/layout.md).
func TestConformance(t *testing.T) {
	for name, database := range map[string]func(t *testing.T) string{
		"C.UTF-8": func(t *testing.T) string { return testenv.PostgresDSN(t) },
		"icu":     icuDatabase,
	} {
		t.Run(name, func(t *testing.T) {
			storagetest.Run(t, storagetest.Harness{
				Engine: "postgres",
				// A new, empty database per test.
				Database:  database,
				Open:      storagetest.Opener(postgres.Open),
				Namespace: testenv.UniqueName,
			})
		})
	}
}

// icuDatabase is a new database whose default collation is ICU's en-US,
// which sorts "a" before "B".
func icuDatabase(t *testing.T) string {
	testenv.PostgresDSN(t) // skips or fails as every PostgreSQL test does without a server
	admin := os.Getenv(testenv.EnvPostgresDSN)
	name := testenv.UniqueName("icu")
	exec := func(stmt string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	exec("CREATE DATABASE " + name + " TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
	t.Cleanup(func() { exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s must be a postgres:// URL here: %v", testenv.EnvPostgresDSN, err)
	}
	u.Path = "/" + name
	return u.String()
}
