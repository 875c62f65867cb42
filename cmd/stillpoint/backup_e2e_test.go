package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupCommands(t *testing.T) {
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", t.TempDir()}}
	repo := filepath.Join(t.TempDir(), "repo")
	if out, code := c.run("workload", "bank", "--count", "200"); code != 0 {
		t.Fatalf("workload: %s", out)
	}
	out, code := c.run("--json", "backup", "create", "--repo", repo)
	if code != 0 {
		t.Fatalf("backup create: exit %d %s", code, out)
	}
	var m struct {
		ID        string `json:"id"`
		Mode      string `json:"mode"`
		FenceHold string `json:"fence_hold"`
		Rows      int64  `json:"rows"`
		Stores    []struct {
			Name, Engine, CutPoint string
		} `json:"stores"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("backup create --json: %v\n%s", err, out)
	}
	if m.Mode != "fence" || m.FenceHold == "" || m.Rows < 200 || len(m.Stores) != 3 {
		t.Fatalf("manifest = %+v", m)
	}
	if out, code := c.run("backup", "show", m.ID, "--repo", repo); code != 0 || !strings.Contains(out, "fence held") {
		t.Fatalf("backup show: %d %s", code, out)
	}
	// A backup that cannot run is refused and never listed.
	if _, code := c.run("backup", "create", "--repo", repo, "--mode", "pause"); code != exitUsage {
		t.Fatalf("pause mode without servers: exit %d, want %d", code, exitUsage)
	}
	var list []struct{ ID string }
	out, _ = c.run("--json", "backup", "list", "--repo", repo)
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].ID != m.ID {
		t.Fatalf("backup list = %s (%v)", out, err)
	}
	if out, code := c.run("backup", "delete", m.ID, "--repo", repo); code != 0 || !strings.Contains(out, "pruned") {
		t.Fatalf("backup delete: %d %s", code, out)
	}
	out, _ = c.run("--json", "backup", "list", "--repo", repo)
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after delete = %s", out)
	}
}
