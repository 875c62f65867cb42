package mysql

import "testing"

// TestNamesParam: Stillpoint turns on the driver's interpolateParams only
// where the DSN leaves it, the charset and the collation to the driver.
func TestNamesParam(t *testing.T) {
	for _, tt := range []struct {
		dsn  string
		want bool
	}{
		{"u:p@tcp(localhost:3306)/", false},
		{"u:p@tcp(localhost:3306)/db?parseTime=true", false},
		{"u:p@tcp(localhost:3306)/?interpolateParams=false", true},
		{"u:p@tcp(localhost:3306)/db?timeout=5s&charset=gbk", true},
		{"u:p@tcp(localhost:3306)/?collation=utf8mb4_bin", true},
		{"u:a/b?charset=x@tcp(localhost:3306)/", false}, // in the password, not a parameter
		{"u:p@tcp(localhost:3306)/?xcharset=1", false},
	} {
		if got := namesParam(tt.dsn, "interpolateParams", "charset", "collation"); got != tt.want {
			t.Errorf("namesParam(%q) = %v, want %v", tt.dsn, got, tt.want)
		}
	}
}
