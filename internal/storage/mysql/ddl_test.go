package mysql_test

import (
	"slices"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/mysql"
)

// TestCreateNamespaceByRelease: ScalarDB's CREATE SCHEMA of each release
// (§2 of docs/research/scalardb-layouts.md), and the binary collation
// stated only where the release leaves the choice to a server whose
// default would merge keys (docs/layout.md).
func TestCreateNamespaceByRelease(t *testing.T) {
	type namespaceCase struct {
		version      string
		serverBinary bool // the server's default is utf8mb4 and the binary collation
		want         string
	}
	for _, tt := range []namespaceCase{
		{"3.12.0", false, "CREATE SCHEMA IF NOT EXISTS `ns` character set utf8 COLLATE utf8_bin"},
		{"3.12.0", true, "CREATE SCHEMA IF NOT EXISTS `ns` character set utf8 COLLATE utf8_bin"},
		{"3.12.1", true, "CREATE SCHEMA IF NOT EXISTS `ns`"},
		{"3.12.1", false, "CREATE SCHEMA IF NOT EXISTS `ns` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"},
		{"3.19", false, "CREATE SCHEMA IF NOT EXISTS `ns` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"},
	} {
		v, err := storage.ParseScalarDBVersion(tt.version)
		if err != nil {
			t.Fatal(err)
		}
		d := mysql.Dialect{Collation: "utf8mb4_nopad_bin", ServerBinary: tt.serverBinary}
		if got := d.CreateNamespace("ns", v); !slices.Equal(got, []string{tt.want}) {
			t.Errorf("%s, server default binary %v: %q, want %q", tt.version, tt.serverBinary, got, tt.want)
		}
	}
}
