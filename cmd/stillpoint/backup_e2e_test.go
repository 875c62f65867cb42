package main

import (
	"encoding/json"
	"os"
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

func TestBackupVerifyNamesDamagedObjects(t *testing.T) {
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", t.TempDir()}}
	if out, code := c.run("workload", "bank", "--count", "100"); code != 0 {
		t.Fatalf("workload: %s", out)
	}
	for _, dir := range []string{"data", "backups"} {
		t.Run(dir, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			out, code := c.run("--json", "backup", "create", "--repo", repo)
			if code != 0 {
				t.Fatalf("backup: %s", out)
			}
			var m struct{ ID string }
			json.Unmarshal([]byte(out), &m)
			if out, code := c.run("backup", "verify", m.ID, "--repo", repo, "--read-data"); code != 0 {
				t.Fatalf("verify of an intact backup: %d %s", code, out)
			}
			victim := flipByte(t, filepath.Join(repo, dir))
			out, code = c.run("--json", "backup", "verify", m.ID, "--repo", repo, "--read-data")
			errOut := out
			if code != exitViolation {
				t.Fatalf("backup verify after a flipped byte in %s: exit %d, want %d", victim, code, exitViolation)
			}
			if dir == "data" && !strings.Contains(errOut, filepath.Base(victim)) {
				t.Fatalf("backup verify does not name %s: %s", victim, errOut)
			}
		})
	}
}

// flipByte flips one byte in the middle of the first file under dir.
func flipByte(t *testing.T, dir string) string {
	t.Helper()
	var victim string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && victim == "" {
			victim = p
		}
		return nil
	})
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(victim, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return victim
}
