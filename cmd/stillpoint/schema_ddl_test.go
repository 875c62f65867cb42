package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSchemaLoadFlagChoosesDDL: --scalardb-version decides the DDL of the
// tables a load creates, not only how the file is read: here the name of
// an index longer than 63 characters, which 3.15.8 shortens to a hash and
// 3.15.7 does not (the hash is SHA-256 of the full name, as JdbcUtils.shortenIndexNameIfNeeded).
func TestSchemaLoadFlagChoosesDDL(t *testing.T) {
	col := "c" + strings.Repeat("x", 60)
	file := filepath.Join(t.TempDir(), "schema.json")
	os.WriteFile(file, []byte(`{"shop.items": {"transaction": false, "partition-key": ["id"], "secondary-index": ["`+col+`"], "columns": {"id": "INT", "`+col+`": "INT"}}}`), 0o644)
	for _, tt := range []struct{ env, flag, index string }{
		{"3.15.8", "3.15.7", "index_shop_items_" + col},
		{"3.15.7", "3.15.8", "index_80cc5c74076b4477d2333b8b14ac3cbf"},
	} {
		t.Run(tt.flag, func(t *testing.T) {
			t.Setenv("STILLPOINT_SCALARDB_VERSION", tt.env)
			dir := t.TempDir()
			if _, err := runAdmin(t, "--data-dir", dir, "schema", "load", file, "--scalardb-version", tt.flag); err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", filepath.Join(dir, "shop.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var name string
			if err := db.QueryRow("SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL").Scan(&name); err != nil || name != tt.index {
				t.Errorf("index %q, %v; want %q", name, err, tt.index)
			}
		})
	}
}
