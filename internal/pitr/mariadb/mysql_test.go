package mariadb

import (
	"strings"
	"testing"
)

// A MySQL server behind a mysql store gets, at a cut mark or a base
// backup, an error saying what is supported, not MySQL's "Unknown system
// variable 'gtid_binlog_pos'".
func TestNotMariaDB(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    []string // nil: supported
	}{
		{"10.11.19-MariaDB-0+deb12u1", nil},
		{"11.4.2-MariaDB", nil},
		{"8.0.36", []string{"MySQL 8.0.36", "MariaDB (10.5 or later) only", "logical backups"}},
		{"8.4.0-commercial", []string{"MySQL 8.4.0-commercial", "MariaDB (10.5 or later) only"}},
	} {
		t.Run(tc.version, func(t *testing.T) {
			err := notMariaDB(tc.version)
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
