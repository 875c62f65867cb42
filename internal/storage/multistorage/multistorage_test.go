package multistorage_test

import (
	"cmp"
	"context"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
)

func TestOpenErrorsHidePasswords(t *testing.T) {
	const secret = "s3cr3tPW"
	tests := []struct{ name, engine, dsn string }{
		{"postgres URL userinfo, bad port", "postgres", "postgres://u:" + secret + "@127.0.0.1:notaport/db"},
		{"postgres URL query, bad port", "postgres", "postgres://u@127.0.0.1:notaport/db?password=" + secret},
		{"postgres URL query, unknown parameter", "postgres", "postgres://u@127.0.0.1:1/db?password=" + secret + "&sslmode=sometimes"},
		{"postgres key=value, bad port", "postgres", "host=127.0.0.1 port=notaport password=" + secret},
		{"postgres key=value quoted, unterminated", "postgres", "host=127.0.0.1 password='" + secret},
		{"postgres, nobody listening", "postgres", "postgres://u:" + secret + "@127.0.0.1:1/db?connect_timeout=5"},
		{"mysql, bad parameter", "mysql", "u:" + secret + "@tcp(127.0.0.1:1)/db?timeout=notaduration"},
		{"mysql, no slash", "mysql", "u:" + secret + "@tcp(127.0.0.1:1)"},
		{"mysql, nobody listening", "mysql", "u:" + secret + "@tcp(127.0.0.1:1)/db?timeout=5s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := multistorage.OpenStore(context.Background(), "s", config.Store{Engine: tt.engine, DSN: tt.dsn}, storage.Layout{}, false)
			if err == nil {
				st.Close()
				t.Fatal("opened a store that cannot be opened")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// Every engine a configuration may name is registered, and no other.
func TestEnginesRegistered(t *testing.T) {
	for _, name := range config.Engines {
		if _, err := storage.LookupEngine(name); err != nil {
			t.Errorf("engine %s: %v", name, err)
		}
	}
	if _, err := storage.LookupEngine("oracle"); err == nil || !strings.Contains(err.Error(), "known: dynamodb, mysql, postgres, sqlite") {
		t.Errorf("unknown engine: %v; the error must list the known ones", err)
	}
}

// A store's limits are those of the tables it creates: MySQL key columns
// are VARCHAR(64) up to ScalarDB 3.13 and VARCHAR(128) from 3.14, so a
// restore measures key values against the width they will get.
func TestLimitsFollowScalarDBVersion(t *testing.T) {
	for _, tt := range []struct {
		engine, version string
		maxKey          int
	}{
		{"mysql", "3.13.6", 64},
		{"mysql", "3.14", 128},
		{"mysql", "", 128},
		{"postgres", "3.4", 0},
	} {
		t.Run(tt.engine+" "+tt.version, func(t *testing.T) {
			cfg := &config.Config{Coordinator: "db", ScalarDBVersion: tt.version,
				Stores: map[string]config.Store{"db": {Engine: tt.engine}}, Namespaces: map[string]string{"ns": "db"}}
			l, err := multistorage.New(cfg).Limits("ns")
			if err != nil || l.MaxKeyLength != tt.maxKey || l.ScalarDB.String() != cmp.Or(tt.version, storage.LatestScalarDB.String()) {
				t.Errorf("limits = %+v, %v; want key length %d and ScalarDB %s", l, err, tt.maxKey, tt.version)
			}
		})
	}
}
