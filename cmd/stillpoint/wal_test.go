package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWALCommandsAreQuiet: PostgreSQL writes what archive_command and
// restore_command print into its log, once per WAL file. So wal-push and
// wal-fetch print nothing when they succeed, and a wal-fetch of a file
// the archive lacks (routine: PostgreSQL asks for timeline history files
// that never existed) exits 1 with one short line.
func TestWALCommandsAreQuiet(t *testing.T) {
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	segment := filepath.Join(dir, "000000010000000000000001")
	if err := os.WriteFile(segment, []byte("wal"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", filepath.Join(dir, "data")}}
	for _, args := range [][]string{{"workload", "bank", "--count", "1", "--accounts", "2"}, {"init", "--repo", repoDir}} {
		if out, code := c.run(args...); code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, out)
		}
	}
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stderrIs func(string) bool
	}{
		{"push", []string{"wal-push", "--store", "coordinator", filepath.Base(segment), segment}, 0, func(s string) bool { return s == "" }},
		{"push again", []string{"wal-push", "--store", "coordinator", filepath.Base(segment), segment}, 0, func(s string) bool { return s == "" }},
		{"fetch", []string{"wal-fetch", "--store", "coordinator", filepath.Base(segment), filepath.Join(dir, "fetched")}, 0, func(s string) bool { return s == "" }},
		{"fetch a history file never archived", []string{"wal-fetch", "--store", "coordinator", "00000002.history", filepath.Join(dir, "RECOVERYHISTORY")}, exitError,
			func(s string) bool {
				return strings.Count(s, "\n") == 1 && len(s) < 100 && strings.Contains(s, "00000002.history") && strings.Contains(s, "not in store coordinator's archive")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(c.bin, append(append(append([]string{}, c.args...), tc.args...), "--repo", repoDir)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tc.code || stdout.Len() != 0 || !tc.stderrIs(stderr.String()) {
				t.Fatalf("exit %d (want %d), stdout %q (want none), stderr %q", code, tc.code, stdout.String(), stderr.String())
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(dir, "fetched")); err != nil || string(b) != "wal" {
		t.Fatalf("fetched %q (%v), want the pushed file", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "RECOVERYHISTORY")); !os.IsNotExist(err) {
		t.Fatalf("a fetch of a missing file left its path behind (%v)", err)
	}
}
