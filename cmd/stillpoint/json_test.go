package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// snakeKeys reports every object key in v (decoded JSON) that is not
// snake_case, with its path.
func snakeKeys(path string, v any) []string {
	var bad []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !snakeKey.MatchString(k) {
				bad = append(bad, path+"."+k)
			}
			bad = append(bad, snakeKeys(path+"."+k, e)...)
		}
	case []any:
		for _, e := range v {
			bad = append(bad, snakeKeys(path+"[]", e)...)
		}
	}
	return bad
}

// TestJSONOutput: every command that prints something prints, with --json,
// one JSON document whose keys are all snake_case.
func TestJSONOutput(t *testing.T) {
	dir := t.TempDir()
	repoDir, data, restored := filepath.Join(dir, "repo"), filepath.Join(dir, "data"), filepath.Join(dir, "restored")
	schemaFile := filepath.Join(dir, "shop.json")
	os.WriteFile(schemaFile, []byte(`{"shop.items": {"transaction": true, "partition-key": ["id"], "clustering-key": ["at DESC"], "columns": {"id": "INT", "at": "BIGINT", "name": "TEXT"}, "secondary-index": ["name"]}}`), 0o644)
	_, addrs := adminServers(t, 2)
	servers := strings.Join(addrs, ",")
	segment := filepath.Join(dir, "000000010000000000000001")
	os.WriteFile(segment, []byte("wal"), 0o644)
	c := cli{t: t, bin: build(t), args: []string{"--json", "--data-dir", data}}
	commands := [][]string{
		{"version"},
		{"config"},
		{"init", "--repo", repoDir},
		{"workload", "bank", "--count", "20", "--accounts", "10"},
		{"schema", "load", schemaFile},
		{"schema", "show"},
		{"backup", "create", "--repo", repoDir},
		{"backup", "create", "--repo", repoDir, "--mode", "independent"},
		{"backup", "list", "--repo", repoDir},
		{"backup", "show", "latest", "--repo", repoDir},
		{"backup", "verify", "latest", "--repo", repoDir, "--read-data"},
		{"verify"},
		{"verify", "--repair"},
		{"check", "--repo", repoDir},
		{"stats", "--repo", repoDir},
		{"diff", "latest", "latest", "--rows", "--repo", repoDir},
		{"restore", "latest", "--repo", repoDir, "--data-dir", restored},
		{"wal-push", "--store", "coordinator", filepath.Base(segment), segment, "--repo", repoDir},
		{"wal-fetch", "--store", "coordinator", filepath.Base(segment), filepath.Join(dir, "fetched"), "--repo", repoDir},
		{"cut", "list", "--repo", repoDir},
		{"forget", "--keep-last", "2", "--dry-run", "--repo", repoDir},
		{"forget", "--keep-last", "2", "--repo", repoDir},
		{"backup", "delete", "latest", "--dry-run", "--repo", repoDir},
		{"backup", "delete", "latest", "--repo", repoDir},
		{"backup", "prune", "--repo", repoDir},
		{"backup", "unlock", "--repo", repoDir},
		{"schema", "drop", schemaFile, "--yes"},
		{"admin", "pause", "-a", servers},
		{"admin", "check-paused", "-a", servers},
		{"admin", "unpause", "-a", servers},
		{"admin", "pause", "-a", servers, "--duration", "100ms", "--renew-every", "0"},
		{"demo", "--dir", filepath.Join(dir, "demo"), "--duration", "500ms", "--accounts", "10"},
	}
	covered := map[string]bool{}
	for _, args := range commands {
		run := c
		if args[0] == "demo" { // everything under its --dir; it refuses --data-dir
			run.args = []string{"--json"}
		}
		out, code := run.run(args...)
		if code != 0 {
			t.Errorf("stillpoint --json %s: exit %d", strings.Join(args, " "), code)
			continue
		}
		var v any
		dec := json.NewDecoder(strings.NewReader(out))
		if err := dec.Decode(&v); err != nil || dec.More() {
			t.Errorf("stillpoint --json %s: not one JSON document (%v): %q", strings.Join(args, " "), err, out)
			continue
		}
		if bad := snakeKeys("", v); len(bad) > 0 {
			t.Errorf("stillpoint --json %s: keys not in snake_case: %v", strings.Join(args, " "), bad)
		}
		covered[args[0]] = true
		if len(args) > 1 {
			covered[args[0]+" "+args[1]] = true
		}
	}
	// Every command that runs and ends is in the list (server runs until
	// stopped; help and completion print no data; cut create, base create
	// and archive refuse the embedded SQLite stores, which have no
	// point-in-time recovery).
	needServer := map[string]bool{"cut create": true, "base create": true, "archive": true}
	var missing []string
	var visit func(*cobra.Command)
	visit = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			visit(sub)
		}
		path := strings.TrimPrefix(cmd.CommandPath(), "stillpoint ")
		if !cmd.Runnable() || cmd.HasSubCommands() || path == "server" || needServer[path] || cmd.Name() == "help" || strings.HasPrefix(path, "completion") {
			return
		}
		if !covered[path] {
			missing = append(missing, path)
		}
	}
	visit(newRootCmd())
	if len(missing) > 0 {
		t.Errorf("commands with no --json check: %v", missing)
	}
}
