package mariadb

import (
	"strings"
	"testing"
)

// A server whose data directory this host cannot read (a remote server)
// gets an error that names the directory and where the backup must run.
func TestReadableDataDir(t *testing.T) {
	for _, tc := range []struct {
		name, dir string
		ok        bool
	}{
		{"local", t.TempDir(), true},
		{"on another host", "/nonexistent/mysql/", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := readableDataDir("db1:3306", tc.dir)
			if tc.ok != (err == nil) || err != nil && !(strings.Contains(err.Error(), tc.dir) && strings.Contains(err.Error(), "on the database host")) {
				t.Fatalf("data directory %s: %v", tc.dir, err)
			}
		})
	}
}
