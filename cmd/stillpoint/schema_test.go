package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSchemaLoadVersion: the flag, else the configuration, chooses what an
// absent "transaction" means; a transactional table brings the coordinator.
func TestSchemaLoadVersion(t *testing.T) {
	file := filepath.Join(t.TempDir(), "schema.json")
	os.WriteFile(file, []byte(`{"shop.items": {"partition-key": ["id"], "columns": {"id": "INT", "v": "INT"}}}`), 0o644)
	tests := []struct {
		name    string
		env     string
		flag    []string
		columns int // of shop.items
		tables  int // with coordinator.state when transactional
		err     string
	}{
		{"default is the newest 3.x", "", nil, 2 + 10 + 1, 2, ""},
		{"3.6 from the environment", "3.6", nil, 2, 1, ""},
		{"the flag wins", "3.6", []string{"--scalardb-version", "3.7"}, 2 + 10 + 1, 2, ""},
		{"bad version", "", []string{"--scalardb-version", "3"}, 0, 0, "want a release from 3.4 on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("STILLPOINT_SCALARDB_VERSION", tt.env)
			args := append([]string{"--data-dir", t.TempDir(), "--json", "schema", "load", file}, tt.flag...)
			out, err := runAdmin(t, args...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var actions []struct {
				Table   string
				Columns int
			}
			if err := json.Unmarshal([]byte(out), &actions); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if len(actions) != tt.tables || actions[0].Columns != tt.columns {
				t.Errorf("actions = %+v, want %d tables, shop.items with %d columns", actions, tt.tables, tt.columns)
			}
		})
	}
}
