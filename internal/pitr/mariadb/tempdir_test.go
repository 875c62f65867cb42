package mariadb

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestTempDirRemovesTheDeads: a process killed with SIGKILL leaves its
// temporary directory (credentials, a binlog half copied); the next one
// removes it, and never a living process's.
func TestTempDirRemovesTheDeads(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		kept bool
	}{
		{fmt.Sprintf("stillpoint-binlog-p%d-1", dead.Process.Pid), false},
		{fmt.Sprintf("stillpoint-binlog-p%d-2", os.Getppid()), true},       // alive
		{fmt.Sprintf("stillpoint-binlog-p%d-3", os.Getpid()), true},        // this process's
		{fmt.Sprintf("stillpoint-mariadb-p%d-4", dead.Process.Pid), false}, // every kind
		{"stillpoint-binlog-pnot-a-pid", true},
		{fmt.Sprintf("stillpoint-replay-%d", dead.Process.Pid), true}, // not one of these names
	} {
		if err := os.MkdirAll(filepath.Join(tmp, tc.name, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := tempDir("binlog")
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(tmp)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{
		fmt.Sprintf("stillpoint-binlog-p%d-2", os.Getppid()),
		fmt.Sprintf("stillpoint-binlog-p%d-3", os.Getpid()),
		filepath.Base(dir),
		"stillpoint-binlog-pnot-a-pid",
		fmt.Sprintf("stillpoint-replay-%d", dead.Process.Pid),
	}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}
