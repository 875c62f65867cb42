package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadOnlyCommandsCreateNothing: every command that only reads, given
// a data directory or repository that does not exist, fails with exit 2
// and leaves nothing behind, not even a directory.
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo", "x")
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", missing}}
	for _, args := range [][]string{
		{"schema", "show"},
		{"verify"},
		{"verify", "--repair"},
		{"schema", "drop", filepath.Join(dir, "none.json"), "--yes"},
		{"backup", "create", "--repo", missing},
		{"backup", "list", "--repo", missing},
		{"backup", "show", "latest", "--repo", missing},
		{"backup", "verify", "latest", "--repo", missing},
		{"backup", "delete", "latest", "--dry-run", "--repo", missing},
		{"backup", "delete", "latest", "--repo", missing},
		{"backup", "prune", "--repo", missing},
		{"backup", "unlock", "--repo", missing},
		{"check", "--repo", missing},
		{"stats", "--repo", missing},
		{"diff", "a", "b", "--repo", missing},
		{"restore", "latest", "--repo", missing},
		{"restore", "--to-latest", "--repo", missing},
		{"cut", "create", "--repo", missing},
		{"cut", "list", "--repo", missing},
		{"base", "create", "--repo", missing},
		{"forget", "--keep-last", "1", "--repo", missing},
		{"forget", "--keep-last", "1", "--dry-run", "--repo", missing},
		{"wal-push", "--store", "pg", "seg", filepath.Join(missing, "seg"), "--repo", missing},
		{"wal-fetch", "--store", "pg", "seg", filepath.Join(missing, "seg"), "--repo", missing},
		{"archive", "--repo", missing},
	} {
		if _, code := c.run(args...); code != exitUsage && !(args[0] == "schema" && args[1] == "drop" && code == exitError) {
			t.Errorf("stillpoint %s on a missing path: exit %d, want %d", strings.Join(args, " "), code, exitUsage)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("stillpoint %s created %s", strings.Join(args, " "), entries[0].Name())
		}
	}
}

// TestBackupReferences: a backup is named by an 8-character prefix of its
// random part; a prefix two backups share exits 2 naming both.
func TestBackupReferences(t *testing.T) {
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", filepath.Join(dir, "data")}}
	if out, code := c.run("workload", "bank", "--count", "5"); code != 0 {
		t.Fatalf("bank: %s", out)
	}
	var ids []string
	for range 2 {
		out, code := c.run("--json", "backup", "create", "--init", "--repo", repoDir)
		var m struct{ ID string }
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
			t.Fatalf("backup: %s", out)
		}
		ids = append(ids, m.ID)
	}
	random := ids[0][len(ids[0])-8:]
	if out, code := c.run("--json", "backup", "show", random, "--repo", repoDir); code != 0 || !strings.Contains(out, ids[0]) {
		t.Errorf("backup show %s: exit %d, want backup %s", random, code, ids[0])
	}
	if out, code := c.run("--json", "backup", "show", "latest", "--repo", repoDir); code != 0 || !strings.Contains(out, ids[1]) {
		t.Errorf("backup show latest: exit %d, want backup %s", code, ids[1])
	}
	shared := "2" // both ids start with the year
	cmd := exec.Command(c.bin, append(c.args, "backup", "show", shared, "--repo", repoDir)...)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != exitUsage || !strings.Contains(string(out), ids[0]) || !strings.Contains(string(out), ids[1]) {
		t.Errorf("backup show %s: exit %d (%v) %s; want 2 naming both backups", shared, cmd.ProcessState.ExitCode(), err, out)
	}
}
