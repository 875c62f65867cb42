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
  aws: {engine: DynamoDB}
namespaces:
  orders: pg
  stock: maria
coordinator: pg
scalardb_version: "3.6"
`), 0o600)
	t.Setenv("STILLPOINT_STORE_PG_DSN", "postgres://app:s3cret@db9/app")
	t.Setenv("STILLPOINT_NAMESPACE_AUDIT", "local")
	t.Setenv("STILLPOINT_DATA_DIR", "/var/lib/sp")
	t.Setenv("STILLPOINT_SCALARDB_VERSION", "3.7.1")
	cfg, err := Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ got, want string }{
		{cfg.Stores["pg"].DSN, "postgres://app:s3cret@db9/app"},
		{cfg.Stores["maria"].Engine, "mysql"},
		{cfg.Stores["local"].Path, "/var/lib/sp/local.db"},
		{cfg.Stores["aws"].Engine, "dynamodb"}, // no dsn: the AWS environment's
		{cfg.Namespaces["audit"], "local"},
		{cfg.Coordinator, "pg"},
		{cfg.ScalarDBVersion, "3.7.1"},
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
		{"stores:\n  x: {engine: oracle, dsn: d}\ncoordinator: x\n", `unknown engine "oracle" (use one of sqlite, postgres, mysql, dynamodb)`},
		{"stores:\n  x: {engine: postgres}\ncoordinator: x\n", "store x: engine postgres needs a dsn"},
		{"stores:\n  x: {engine: sqlite}\n", "no coordinator store"},
		{"stores:\n  x: {engine: sqlite}\ncoordinator: y\n", `no store named "y"`},
		{"stores:\n  x: {engine: sqlite}\nnamespaces: {a: z}\ncoordinator: x\n", `namespace a: no store named "z"`},
		{"storez: {}\n", "field storez not found"},
		{"namespaces: {a: x}\n", "no stores are defined"},
		{"scalardb_version: \"3.2\"\n", `scalardb_version: ScalarDB version "3.2": want a release from 3.4 on`},
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
	tests := []struct{ name, in, want string }{
		{"postgres URL userinfo", "postgres://u:pw@h:5432/db", "postgres://u:*****@h:5432/db"},
		{"postgres URL query", "postgres://u@h:5432/db?sslmode=disable&password=pw", "postgres://u@h:5432/db?password=*****&sslmode=disable"},
		{"postgres URL both", "postgresql://u:pw@h/db?password=pw2", "postgresql://u:*****@h/db?password=*****"},
		{"postgres URL sslpassword", "postgres://u@h/db?sslpassword=pw", "postgres://u@h/db?sslpassword=*****"},
		{"postgres URL that does not parse", "postgres://u:p%zz@h/db", "postgres://u:*****@h/db"},
		{"key=value", "host=h user=u password=pw dbname=d", "host=h user=u password=***** dbname=d"},
		{"key=value quoted", `host=h password='p w\'x' dbname=d`, "host=h password=***** dbname=d"},
		{"key=value spaced", "host=h password = pw", "host=h password = *****"},
		{"key=value sslpassword", "host=h sslpassword=pw", "host=h sslpassword=*****"},
		{"mysql", "u:p@ss@tcp(h:3306)/", "u:*****@tcp(h:3306)/"},
		{"mysql with params", "u:pw@tcp(h:3306)/db?tls=true", "u:*****@tcp(h:3306)/db?tls=true"},
		{"mysql URL", "mysql://u:pw@h:3306/db", "mysql://u:*****@h:3306/db"},
		{"no password", "postgres://u@h/db", "postgres://u@h/db"},
		{"mysql without password", "u@tcp(h:3306)/", "u@tcp(h:3306)/"},
		{"dynamodb", "dynamodb://AKID:s3cret@us-east-1?endpoint=http://h:4567", "dynamodb://AKID:*****@us-east-1?endpoint=http://h:4567"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactDSN(tt.in); got != tt.want {
				t.Errorf("RedactDSN(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// A value in the wrong place may be a DSN: a parse error does not quote it.
func TestParseErrorsHideValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("stores:\n  pg: \"u:Q#@tcp(h:3306)/\"\ncoordinator: pg\n"), 0o600)
	_, err := Load(path, "")
	if err == nil || strings.Contains(err.Error(), "Q#") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %v: it must say where, and not quote the value", err)
	}
}

func TestRedactText(t *testing.T) {
	// Errors and logs may quote a DSN whole or in part: every password
	// the DSN holds is masked wherever it appears.
	dsn := "postgres://u:s3cr%2Bt@h/db?password=an0ther"
	text := `cannot parse "postgres://u:s3cr%2Bt@h/db?password=an0ther": password s3cr+t or an0ther`
	got := Redact(text, dsn)
	for _, secret := range []string{"s3cr%2Bt", "s3cr+t", "an0ther"} {
		if strings.Contains(got, secret) {
			t.Errorf("Redact left %q in %q", secret, got)
		}
	}
}

func TestNamesDifferingOnlyInCase(t *testing.T) {
	tests := []struct{ yaml, env, want string }{
		{"stores:\n  pg: {engine: postgres, dsn: d}\nnamespaces: {Bank: pg, bank: pg}\ncoordinator: pg\n", "STILLPOINT_NAMESPACE_BANK=pg",
			"namespaces Bank and bank differ only in case"},
		{"stores:\n  pg: {engine: postgres, dsn: d}\nnamespaces: {Bank: pg, bank: pg}\ncoordinator: pg\n", "",
			"namespaces Bank and bank differ only in case"},
		{"stores:\n  pg: {engine: postgres, dsn: d}\n  PG: {engine: postgres, dsn: d}\ncoordinator: pg\n", "",
			"stores PG and pg differ only in case"},
		{"stores:\n  pg-1: {engine: postgres, dsn: d}\n  pg_1: {engine: postgres, dsn: d}\ncoordinator: pg_1\n", "",
			"stores pg-1 and pg_1 are both PG_1 in environment variable names"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(path, []byte(tt.yaml), 0o600)
			if k, v, ok := strings.Cut(tt.env, "="); ok {
				t.Setenv(k, v)
			}
			// Map order varies from run to run: the answer must not.
			for range 20 {
				_, err := Load(path, "")
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want it to mention %q", err, tt.want)
				}
			}
		})
	}
}

func must(s string, err error) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// TestLayoutNames: metadata_schema and coordinator_namespace default to
// ScalarDB's names, come from the file or the environment, and are refused
// where one schema would serve two roles.
func TestLayoutNames(t *testing.T) {
	const stores = "stores:\n  pg: {engine: postgres, dsn: \"postgres://app@db1/app\"}\ncoordinator: pg\n"
	tests := []struct {
		name, file          string
		env                 map[string]string
		wantMeta, wantCoord string
		wantErr             string // a part of the error; "" for none
	}{
		{name: "defaults", file: stores, wantMeta: "scalardb", wantCoord: "coordinator"},
		{name: "file", file: stores + "metadata_schema: meta\ncoordinator_namespace: coord\n", wantMeta: "meta", wantCoord: "coord"},
		{name: "environment wins", file: stores + "metadata_schema: meta\n",
			env:      map[string]string{"STILLPOINT_METADATA_SCHEMA": "m2", "STILLPOINT_COORDINATOR_NAMESPACE": "c2"},
			wantMeta: "m2", wantCoord: "c2"},
		{name: "embedded", env: map[string]string{"STILLPOINT_COORDINATOR_NAMESPACE": "c3"}, wantMeta: "scalardb", wantCoord: "c3"},
		{name: "one name for both", file: stores + "metadata_schema: x\ncoordinator_namespace: x\n", wantErr: "must differ"},
		{name: "dot", file: stores + "metadata_schema: a.b\n", wantErr: "without one"},
		{name: "namespace is the metadata schema", file: stores + "namespaces: {scalardb: pg}\n", wantErr: "namespace scalardb is the metadata schema"},
		{name: "namespace is the coordinator namespace", file: stores + "coordinator_namespace: coord\nnamespaces: {coord: pg}\n", wantErr: "namespace coord is the coordinator namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("STILLPOINT_CONFIG", "")
			for _, k := range []string{"STILLPOINT_METADATA_SCHEMA", "STILLPOINT_COORDINATOR_NAMESPACE"} {
				t.Setenv(k, tt.env[k])
				if tt.env[k] == "" {
					os.Unsetenv(k)
				}
			}
			path := ""
			if tt.file != "" {
				path = filepath.Join(t.TempDir(), "stillpoint.yaml")
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := Load(path, t.TempDir())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() error = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MetadataSchema != tt.wantMeta || cfg.CoordinatorNamespace != tt.wantCoord {
				t.Errorf("metadata_schema %q, coordinator_namespace %q; want %q, %q", cfg.MetadataSchema, cfg.CoordinatorNamespace, tt.wantMeta, tt.wantCoord)
			}
		})
	}
}
