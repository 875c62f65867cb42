package main

import (
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/pitr"
)

// TestRestoreTargetsMustBeConfigured: finishing a cut runs lazy recovery
// through --config's stores, so they must be the servers the restore
// starts, never the live ones.
func TestRestoreTargetsMustBeConfigured(t *testing.T) {
	cfg := &config.Config{Stores: map[string]config.Store{
		"pg":    {Engine: "postgres", DSN: "postgres://app@127.0.0.1:5433/bank"},
		"kv":    {Engine: "postgres", DSN: "host=127.0.0.1 port=5434 dbname=bank"},
		"maria": {Engine: "mysql", DSN: "app:pw@tcp(db.prod:3306)/"},
	}}
	for _, tc := range []struct {
		name    string
		targets map[string]pitr.Target
		want    string // "" for accepted
	}{
		{"URL DSN on the target port", map[string]pitr.Target{"pg": {DataDir: "/r/pg", Port: 5433}}, ""},
		{"keyword DSN on the target port", map[string]pitr.Target{"kv": {DataDir: "/r/kv", Port: 5434}}, ""},
		{"the live server", map[string]pitr.Target{"maria": {DataDir: "/r/m", Port: 3307}}, "does not point at port 3307"},
		{"a store the config lacks", map[string]pitr.Target{"nosuch": {DataDir: "/r/x", Port: 1}}, "names no such store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := targetsConfigured(cfg, tc.targets)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("targetsConfigured = %v, want %q", err, tc.want)
			}
		})
	}
	var pf pitrFlags
	pf.targets = []string{"pg=/srv/restore/pg:5433", "bad", "m=/x:99999"}
	for _, bad := range pf.targets[1:] {
		pf := pitrFlags{targets: []string{bad}}
		if _, err := pf.parseTargets(); err == nil || !strings.Contains(err.Error(), "want STORE=DIR:PORT") {
			t.Errorf("--target %q = %v, want a usage error", bad, err)
		}
	}
	pf.targets = pf.targets[:1]
	if got, err := pf.parseTargets(); err != nil || got["pg"].DataDir != "/srv/restore/pg" || got["pg"].Port != 5433 {
		t.Errorf("--target pg=/srv/restore/pg:5433 = %+v, %v", got, err)
	}
}
