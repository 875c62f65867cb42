package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEmbeddedDefault(t *testing.T) {
	t.Setenv("STILLPOINT_CONFIG", "")
	cfg, err := Load("", "")
	if err != nil || !cfg.Embedded || cfg.DataDir != DefaultDataDir {
		t.Fatalf("Load() = %+v, %v", cfg, err)
	}
	if s, _ := cfg.StoreFor("anything"); s != "anything" {
		t.Errorf("embedded: namespace anything maps to store %q", s)
	}
	if s, _ := cfg.StoreFor(StillpointNamespace); s != "coordinator" {
		t.Errorf("embedded: the restore journal goes to store %q, want the coordinator's", s)
	}
	if cfg, _ := Load("", "/tmp/x"); cfg.DataDir != "/tmp/x" {
		t.Errorf("--data-dir ignored: %q", cfg.DataDir)
	}
}

func TestFileAndEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stillpoint.yaml")
	os.WriteFile(path, []byte(`
stores:
  pg: {engine: postgres, dsn: "postgres://app@db1/app"}
  maria: {engine: mariadb, dsn: "app:pw@tcp(db2:3306)/"}
  local: {engine: sqlite}
namespaces:
  orders: pg
  stock: maria
coordinator: pg
`), 0o600)
	t.Setenv("STILLPOINT_STORE_PG_DSN", "postgres://app:s3cret@db9/app")
	t.Setenv("STILLPOINT_NAMESPACE_AUDIT", "local")
	t.Setenv("STILLPOINT_DATA_DIR", "/var/lib/sp")
	cfg, err := Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ got, want string }{
		{cfg.Stores["pg"].DSN, "postgres://app:s3cret@db9/app"},
		{cfg.Stores["maria"].Engine, "mysql"},
		{cfg.Stores["local"].Path, "/var/lib/sp/local.db"},
		{cfg.Namespaces["audit"], "local"},
		{cfg.Coordinator, "pg"},
		{must(cfg.StoreFor(StillpointNamespace)), "pg"}, // the restore journal lives with the coordinator
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if _, err := cfg.StoreFor("unmapped"); err == nil || !strings.Contains(err.Error(), "STILLPOINT_NAMESPACE_UNMAPPED") {
		t.Errorf("unmapped namespace error = %v; it must say how to fix it", err)
	}
	r := cfg.Redacted()
	for _, s := range r.Stores {
		if strings.Contains(s.DSN, "s3cret") || strings.Contains(s.DSN, ":pw@") {
			t.Errorf("redacted config still shows a password: %s", s.DSN)
		}
	}
	if cfg.Stores["pg"].DSN != "postgres://app:s3cret@db9/app" {
		t.Error("Redacted changed the original")
	}
}

func TestInvalidConfig(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"stores:\n  x: {engine: oracle, dsn: d}\ncoordinator: x\n", `unknown engine "oracle"`},
		{"stores:\n  x: {engine: postgres}\ncoordinator: x\n", "store x: engine postgres needs a dsn"},
		{"stores:\n  x: {engine: sqlite}\n", "no coordinator store"},
		{"stores:\n  x: {engine: sqlite}\ncoordinator: y\n", `no store named "y"`},
		{"stores:\n  x: {engine: sqlite}\nnamespaces: {a: z}\ncoordinator: x\n", `namespace a: no store named "z"`},
		{"storez: {}\n", "field storez not found"},
		{"namespaces: {a: x}\n", "no stores are defined"},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(path, []byte(tt.yaml), 0o600)
		_, err := Load(path, "")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("config %q: error %v, want it to mention %q", tt.yaml, err, tt.want)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	tests := map[string]string{
		"postgres://u:pw@h:5432/db":        "postgres://u:*****@h:5432/db",
		"host=h user=u password=pw dbname": "host=h user=u password=***** dbname",
		"u:p@ss@tcp(h:3306)/":              "u:*****@tcp(h:3306)/",
		"postgres://u@h/db":                "postgres://u@h/db",
	}
	for in, want := range tests {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func must(s string, err error) string {
	if err != nil {
		return err.Error()
	}
	return s
}
