package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBackupCommands(t *testing.T) {
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", t.TempDir()}}
	repo := filepath.Join(t.TempDir(), "repo")
	if out, code := c.run("workload", "bank", "--count", "200"); code != 0 {
		t.Fatalf("workload: %s", out)
	}
	out, code := c.run("--json", "backup", "create", "--init", "--repo", repo)
	if code != 0 {
		t.Fatalf("backup create: exit %d %s", code, out)
	}
	var m struct {
		ID        string `json:"id"`
		Mode      string `json:"mode"`
		FenceHold int64  `json:"fence_hold_ns"`
		Rows      int64  `json:"rows"`
		Stores    []struct {
			Name, Engine, CutPoint string
		} `json:"stores"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("backup create --json: %v\n%s", err, out)
	}
	if m.Mode != "fence" || m.FenceHold <= 0 || m.Rows < 200 || len(m.Stores) != 3 {
		t.Fatalf("manifest = %+v", m)
	}
	if out, code := c.run("backup", "show", m.ID, "--repo", repo); code != 0 || !strings.Contains(out, "fence held") {
		t.Fatalf("backup show: %d %s", code, out)
	}
	// A backup that cannot run is refused and never listed.
	if _, code := c.run("backup", "create", "--init", "--repo", repo, "--mode", "pause"); code != exitUsage {
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
			out, code := c.run("--json", "backup", "create", "--init", "--repo", repo)
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

// TestDamagedManifest: one damaged manifest does not brick the catalog.
// list shows the others and names it (exit 3); deleting another backup
// deletes it but prunes nothing while the damaged one might reference any
// chunk; the damaged one can be deleted; the others still verify and
// restore.
func TestDamagedManifest(t *testing.T) {
	dir := t.TempDir()
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", dir}}
	repo := filepath.Join(t.TempDir(), "repo")
	var ids []string
	for range 3 {
		if out, code := c.run("workload", "bank", "--count", "100"); code != 0 {
			t.Fatalf("workload: %s", out)
		}
		out, code := c.run("--json", "backup", "create", "--init", "--repo", repo)
		var m struct{ ID string }
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
			t.Fatalf("backup create: exit %d %s", code, out)
		}
		ids = append(ids, m.ID)
	}
	older, damaged, newer := ids[0], ids[1], ids[2]
	flipByte(t, filepath.Join(repo, "backups", damaged))
	chunks := func() int {
		n := 0
		filepath.Walk(filepath.Join(repo, "data"), func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	type entry struct{ ID, Damaged string }
	list := func() []entry {
		t.Helper()
		out, code := c.run("--json", "backup", "list", "--repo", repo)
		var l []entry
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("backup list --json: exit %d: %v\n%s", code, err, out)
		}
		want := 0
		if slices.ContainsFunc(l, func(e entry) bool { return e.Damaged != "" }) {
			want = exitViolation
		}
		if code != want {
			t.Fatalf("backup list with a damaged backup: exit %d, want %d", code, want)
		}
		return l
	}

	l := list()
	if len(l) != 3 || l[0].ID != older || l[1].ID != newer || l[2].ID != damaged || l[2].Damaged == "" || l[0].Damaged != "" {
		t.Fatalf("backup list = %+v; want %s and %s, then %s named damaged", l, older, newer, damaged)
	}

	before := chunks()
	out, code := c.run("--json", "backup", "delete", older, "--repo", repo)
	var del struct {
		Deleted string
		Prune   struct {
			Blocked []string `json:"blocked_by_damaged"`
		}
	}
	if err := json.Unmarshal([]byte(out), &del); err != nil || code != exitViolation || del.Deleted != older || !slices.Equal(del.Prune.Blocked, []string{damaged}) {
		t.Fatalf("delete beside a damaged backup: exit %d %s (%v); want it deleted, prune blocked by %s, exit %d", code, out, err, damaged, exitViolation)
	}
	if n := chunks(); n != before {
		t.Fatalf("prune removed %d chunks while a damaged manifest might reference them", before-n)
	}

	out, code = c.run("backup", "delete", damaged, "--repo", repo)
	if code != 0 || !strings.Contains(out, "deleted backup "+damaged+" (it was damaged)") || !strings.Contains(out, "pruned") {
		t.Fatalf("delete of the damaged backup: exit %d %s", code, out)
	}
	if l := list(); len(l) != 1 || l[0].ID != newer || l[0].Damaged != "" {
		t.Fatalf("backup list after the deletes = %+v; want only %s", l, newer)
	}
	if out, code := c.run("backup", "verify", newer, "--repo", repo, "--read-data"); code != 0 {
		t.Fatalf("verify of the remaining backup: exit %d %s", code, out)
	}
	restored := cli{t: t, bin: c.bin, args: []string{"--data-dir", t.TempDir()}}
	if out, code := restored.run("restore", newer, "--repo", repo); code != 0 {
		t.Fatalf("restore of the remaining backup: exit %d %s", code, out)
	}
}
