package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerboseBackupLog: -v --log-format json on a backup logs, one JSON
// object per line, the cut (fence wait and hold), each store's snapshot and
// each table's stream.
func TestVerboseBackupLog(t *testing.T) {
	dir := t.TempDir()
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", filepath.Join(dir, "data")}}
	if out, code := c.run("workload", "bank", "--count", "20"); code != 0 {
		t.Fatalf("bank: %s", out)
	}
	cmd := exec.Command(c.bin, append(c.args, "-v", "--log-format", "json", "backup", "create", "--init", "--repo", filepath.Join(dir, "repo"))...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("backup: %v\n%s", err, stderr.String())
	}
	count := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		msg, _ := l["msg"].(string)
		count[msg]++
		if msg == "cut: taken; the fence is released" {
			if _, ok := l["fence_hold"].(float64); !ok {
				t.Errorf("the cut's line has no fence_hold: %s", line)
			}
		}
		if l["level"] == "DEBUG" {
			t.Errorf("-v logged a debug line: %s", line)
		}
	}
	// 3 stores: bank_0, bank_1, coordinator; 4 tables.
	for msg, want := range map[string]int{"cut: taken; the fence is released": 1, "cut: snapshot": 3, "backup: streaming table": 4, "backup: table streamed": 4, "backup: recorded": 1} {
		if count[msg] != want {
			t.Errorf("%q logged %d times, want %d:\n%s", msg, count[msg], want, stderr.String())
		}
	}
}
