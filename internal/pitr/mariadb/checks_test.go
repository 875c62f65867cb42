package mariadb

import (
	"strings"
	"testing"
)

// A server mariadb-backup cannot back up from here gets an error that
// says what to fix.
func TestCanBackUp(t *testing.T) {
	local := t.TempDir()
	for _, tc := range []struct {
		name, version string
		logBin        bool
		dir           string
		want          []string // "" for no error
	}{
		{"local MariaDB", "10.11.19-MariaDB-0+deb12u1", true, local, nil},
		{"on another host", "10.11.19-MariaDB", true, "/nonexistent/mysql/", []string{"/nonexistent/mysql/", "on the database host"}},
		{"no binary log", "10.11.19-MariaDB", false, local, []string{"log_bin", "binlog_format=ROW"}},
		{"MySQL", "8.0.36", true, local, []string{"MySQL 8.0.36", "logical backups"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := canBackUp("db1:3306", tc.version, tc.logBin, tc.dir)
			if (err == nil) != (tc.want == nil) {
				t.Fatalf("want an error saying %q, got %v", tc.want, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
