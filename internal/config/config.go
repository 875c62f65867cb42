// Package config reads Stillpoint's one YAML file and lets environment
// variables override it. With no file, every namespace is an SQLite
// database under the data directory.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// DefaultDataDir is where the embedded default keeps its SQLite files.
const DefaultDataDir = "./stillpoint-data"

// Engines are the store engines Stillpoint speaks.
var Engines = []string{"sqlite", "postgres", "mysql", "dynamodb"}

// Store names one database.
type Store struct {
	// Engine is sqlite, postgres, mysql (mariadb is an alias) or dynamodb.
	Engine string `yaml:"engine" json:"engine"`
	// DSN is the connection string of postgres and mysql stores, and of
	// dynamodb stores dynamodb://[ID:SECRET@][REGION][?endpoint=URL&
	// namespace_prefix=P], which may be empty: the region and credentials
	// then come from the AWS environment (docs/dynamodb.md).
	DSN string `yaml:"dsn,omitempty" json:"dsn,omitempty"`
	// Path is an sqlite store's file, relative to the data directory.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
}

// Config is the whole file.
type Config struct {
	DataDir string           `yaml:"data_dir,omitempty" json:"data_dir"`
	Stores  map[string]Store `yaml:"stores,omitempty" json:"stores,omitempty"`
	// Namespaces maps each namespace to the store that holds it.
	Namespaces map[string]string `yaml:"namespaces,omitempty" json:"namespaces,omitempty"`
	// Coordinator names the store of coordinator.state.
	Coordinator string `yaml:"coordinator,omitempty" json:"coordinator,omitempty"`
	// Repository is where backups go: a directory or an s3:// URL.
	Repository string `yaml:"repository,omitempty" json:"repository,omitempty"`
	// RepositoryKeyFile holds the repository's encryption key.
	RepositoryKeyFile string `yaml:"repository_key_file,omitempty" json:"repository_key_file,omitempty"`
	// ScalarDBVersion is the ScalarDB release whose schema-loader rules
	// apply and whose DDL new tables get ("3.6", "3.16.5"; "3.N" is the
	// newest patch of 3.N); empty: the newest (schema.Latest).
	ScalarDBVersion string `yaml:"scalardb_version,omitempty" json:"scalardb_version,omitempty"`
	// MetadataSchema is ScalarDB's scalar.db.jdbc.table_metadata.schema,
	// the schema of the metadata table (default scalardb).
	MetadataSchema string `yaml:"metadata_schema,omitempty" json:"metadata_schema"`
	// CoordinatorNamespace is ScalarDB's
	// scalar.db.consensus_commit.coordinator.namespace (default coordinator).
	CoordinatorNamespace string `yaml:"coordinator_namespace,omitempty" json:"coordinator_namespace"`

	// Embedded is true when no stores are configured: each namespace is
	// then its own SQLite file under DataDir.
	Embedded bool `yaml:"-" json:"embedded"`
	// Source says where the configuration came from, for messages.
	Source string `yaml:"-" json:"source"`
}

// Load reads path (empty: no file) then applies environment overrides.
// dataDir, when not empty, is the --data-dir flag and wins over both.
func Load(path, dataDir string) (*Config, error) {
	cfg := &Config{Source: "defaults"}
	if path == "" {
		path = os.Getenv("STILLPOINT_CONFIG")
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil {
			// YAML quotes the start of a misplaced value, which may be a DSN.
			return nil, fmt.Errorf("config %s: %s", path, yamlValue.ReplaceAllString(err.Error(), "(value not shown)"))
		}
		cfg.Source = path
	}
	if err := errors.Join(distinctEnvKeys("stores", slices.Collect(maps.Keys(cfg.Stores))), distinctEnvKeys("namespaces", slices.Collect(maps.Keys(cfg.Namespaces)))); err != nil {
		return nil, fmt.Errorf("config %s: %w", cfg.Source, err)
	}
	if err := cfg.applyEnv(os.Environ()); err != nil {
		return nil, err
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if err := cfg.normalize(); err != nil {
		return nil, fmt.Errorf("config %s: %w", cfg.Source, err)
	}
	return cfg, nil
}

var yamlValue = regexp.MustCompile("`[^`]*`")

var envName = regexp.MustCompile(`[^A-Z0-9]+`)

// EnvKey is how a store or namespace name appears in a variable name.
func EnvKey(name string) string { return envName.ReplaceAllString(strings.ToUpper(name), "_") }

// distinctEnvKeys refuses two names that differ only in case or
// punctuation: they share one environment variable, so which one it set
// would depend on map order, and names differing only in case are one name
// on SQLite and on MariaDB with case-insensitive names. Rather than pick
// one by a rule nobody remembers, the configuration is refused.
func distinctEnvKeys(what string, names []string) error {
	slices.Sort(names)
	seen := map[string]string{}
	var errs []error
	for _, n := range names {
		k := EnvKey(n)
		prev, ok := seen[k]
		switch {
		case !ok:
			seen[k] = n
		case strings.EqualFold(prev, n):
			errs = append(errs, fmt.Errorf("%s %s and %s differ only in case: they are one name on SQLite and case-insensitive MariaDB, and one environment variable (%s); rename one", what, prev, n, k))
		default:
			errs = append(errs, fmt.Errorf("%s %s and %s are both %s in environment variable names; rename one", what, prev, n, k))
		}
	}
	return errors.Join(errs...)
}

// applyEnv applies, in this order of precedence over the file:
//
//	STILLPOINT_DATA_DIR
//	STILLPOINT_STORE_<NAME>_ENGINE, _DSN, _PATH (creates the store if new)
//	STILLPOINT_NAMESPACE_<NAMESPACE>=<store>
//	STILLPOINT_COORDINATOR=<store>
//	STILLPOINT_REPOSITORY, STILLPOINT_REPOSITORY_KEY_FILE
//	STILLPOINT_SCALARDB_VERSION
//	STILLPOINT_METADATA_SCHEMA, STILLPOINT_COORDINATOR_NAMESPACE
//
// so secrets such as passwords in a DSN need not be written in the file.
func (c *Config) applyEnv(environ []string) error {
	storeByKey := map[string]string{}
	for name := range c.Stores {
		storeByKey[EnvKey(name)] = name
	}
	nsByKey := map[string]string{}
	for ns := range c.Namespaces {
		nsByKey[EnvKey(ns)] = ns
	}
	sort.Strings(environ)
	fromEnv := false
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "STILLPOINT_DATA_DIR":
			c.DataDir = v
		case k == "STILLPOINT_COORDINATOR":
			c.Coordinator = v
		case k == "STILLPOINT_REPOSITORY":
			c.Repository = v
		case k == "STILLPOINT_REPOSITORY_KEY_FILE":
			c.RepositoryKeyFile = v
		case k == "STILLPOINT_SCALARDB_VERSION":
			c.ScalarDBVersion = v
		case k == "STILLPOINT_METADATA_SCHEMA":
			c.MetadataSchema = v
		case k == "STILLPOINT_COORDINATOR_NAMESPACE":
			c.CoordinatorNamespace = v
		case strings.HasPrefix(k, "STILLPOINT_STORE_"):
			rest := strings.TrimPrefix(k, "STILLPOINT_STORE_")
			i := strings.LastIndex(rest, "_")
			if i <= 0 {
				return fmt.Errorf("environment variable %s: want STILLPOINT_STORE_<NAME>_ENGINE, _DSN or _PATH", k)
			}
			key, field := rest[:i], rest[i+1:]
			name, ok := storeByKey[key]
			if !ok {
				name = strings.ToLower(key)
				storeByKey[key] = name
			}
			if c.Stores == nil {
				c.Stores = map[string]Store{}
			}
			s := c.Stores[name]
			switch field {
			case "ENGINE":
				s.Engine = v
			case "DSN":
				s.DSN = v
			case "PATH":
				s.Path = v
			default:
				return fmt.Errorf("environment variable %s: want STILLPOINT_STORE_<NAME>_ENGINE, _DSN or _PATH", k)
			}
			c.Stores[name] = s
			fromEnv = true
		case strings.HasPrefix(k, "STILLPOINT_NAMESPACE_"):
			key := strings.TrimPrefix(k, "STILLPOINT_NAMESPACE_")
			ns, ok := nsByKey[key]
			if !ok {
				ns = strings.ToLower(key)
			}
			if c.Namespaces == nil {
				c.Namespaces = map[string]string{}
			}
			c.Namespaces[ns] = v
			fromEnv = true
		}
	}
	if fromEnv {
		c.Source += " + environment"
	}
	return nil
}

func (c *Config) normalize() error {
	if _, err := schema.ParseVersion(c.ScalarDBVersion); err != nil {
		return fmt.Errorf("scalardb_version: %w", err)
	}
	if err := c.normalizeLayout(); err != nil {
		return err
	}
	c.Embedded = len(c.Stores) == 0
	if c.Embedded {
		if len(c.Namespaces) > 0 || c.Coordinator != "" {
			return errors.New("namespaces and coordinator name stores, but no stores are defined: add a \"stores\" section")
		}
		return nil
	}
	var errs []error
	for name, s := range c.Stores {
		s.Engine = strings.ToLower(s.Engine)
		if s.Engine == "mariadb" {
			s.Engine = "mysql"
		}
		switch s.Engine {
		case "sqlite":
			if s.Path == "" {
				s.Path = name + ".db"
			}
			if !filepath.IsAbs(s.Path) {
				s.Path = filepath.Join(c.DataDir, s.Path)
			}
		case "postgres", "mysql":
			if s.DSN == "" {
				errs = append(errs, fmt.Errorf("store %s: engine %s needs a dsn (in the file or STILLPOINT_STORE_%s_DSN)", name, s.Engine, EnvKey(name)))
			}
		case "dynamodb":
			// An empty dsn is the AWS environment's region and
			// credentials; the engine checks the dsn when it opens.
		case "":
			errs = append(errs, fmt.Errorf("store %s: no engine (use one of %s)", name, strings.Join(Engines, ", ")))
		default:
			errs = append(errs, fmt.Errorf("store %s: unknown engine %q (use one of %s)", name, s.Engine, strings.Join(Engines, ", ")))
		}
		c.Stores[name] = s
	}
	for ns, store := range c.Namespaces {
		if _, ok := c.Stores[store]; !ok {
			errs = append(errs, fmt.Errorf("namespace %s: no store named %q (stores: %s)", ns, store, strings.Join(c.StoreNames(), ", ")))
		}
	}
	if c.Coordinator == "" {
		errs = append(errs, errors.New("no coordinator store: set \"coordinator\" to the store that holds coordinator.state"))
	} else if _, ok := c.Stores[c.Coordinator]; !ok {
		errs = append(errs, fmt.Errorf("coordinator: no store named %q (stores: %s)", c.Coordinator, strings.Join(c.StoreNames(), ", ")))
	}
	return errors.Join(errs...)
}

// normalizeLayout applies ScalarDB's defaults to metadata_schema and
// coordinator_namespace and refuses names that would make one schema
// serve two roles: a user table there would be read as metadata or as the
// coordinator.
func (c *Config) normalizeLayout() error {
	if c.MetadataSchema == "" {
		c.MetadataSchema = storage.DefaultMetadataSchema
	}
	if c.CoordinatorNamespace == "" {
		c.CoordinatorNamespace = storage.DefaultCoordinatorNamespace
	}
	var errs []error
	for key, v := range map[string]string{"metadata_schema": c.MetadataSchema, "coordinator_namespace": c.CoordinatorNamespace} {
		if strings.Contains(v, ".") {
			errs = append(errs, fmt.Errorf("%s %q: a dot would split the metadata's full_table_name (namespace.table) in the wrong place; choose a name without one", key, v))
		}
	}
	if c.MetadataSchema == c.CoordinatorNamespace {
		errs = append(errs, fmt.Errorf("metadata_schema and coordinator_namespace are both %q; they must differ, as in ScalarDB", c.MetadataSchema))
	}
	for _, ns := range slices.Sorted(maps.Keys(c.Namespaces)) {
		switch {
		case ns == c.MetadataSchema:
			errs = append(errs, fmt.Errorf("namespace %s is the metadata schema (metadata_schema); rename the namespace or set metadata_schema", ns))
		case ns == c.CoordinatorNamespace && ns != storage.DefaultCoordinatorNamespace:
			errs = append(errs, fmt.Errorf("namespace %s is the coordinator namespace (coordinator_namespace); the coordinator's store is set by \"coordinator\", so remove the namespace's mapping", ns))
		}
	}
	return errors.Join(errs...)
}

// StoreNames lists the configured stores, sorted.
func (c *Config) StoreNames() []string {
	names := make([]string, 0, len(c.Stores))
	for n := range c.Stores {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// EmbeddedPath is the SQLite file of a namespace in the embedded default.
func (c *Config) EmbeddedPath(namespace string) string {
	return filepath.Join(c.DataDir, namespace+".db")
}

// StillpointNamespace holds Stillpoint's own bookkeeping, the restore
// journal (internal/restore), in the coordinator's store.
const StillpointNamespace = "stillpoint"

// StoreFor names the store holding a namespace.
func (c *Config) StoreFor(namespace string) (string, error) {
	if namespace == StillpointNamespace { // the restore journal lives with the coordinator
		namespace = "coordinator"
	}
	if c.Embedded {
		return namespace, nil
	}
	if namespace == "coordinator" {
		return c.Coordinator, nil
	}
	if s, ok := c.Namespaces[namespace]; ok {
		return s, nil
	}
	return "", fmt.Errorf("namespace %s has no store: map it under \"namespaces\" in %s (or set STILLPOINT_NAMESPACE_%s)", namespace, c.Source, EnvKey(namespace))
}

// Redacted returns a copy safe to print: passwords in DSNs are masked.
func (c *Config) Redacted() *Config {
	r := *c
	r.Stores = map[string]Store{}
	for n, s := range c.Stores {
		s.DSN = RedactDSN(s.DSN)
		r.Stores[n] = s
	}
	return &r
}

const mask = "*****"

var (
	// libpq key=value: password=value or password='quoted \' value', and
	// the other secrets of that form (sslpassword).
	keyValueSecret = regexp.MustCompile(`(?i)(\b\w*(?:password|passwd|pwd)\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'&]+)`)
	// scheme://user:password@, also in a URL that does not parse.
	urlPassword = regexp.MustCompile(`(\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)([^@\s]*)@`)
	// MySQL user:password@protocol(address)/ or user:password@/: the
	// password may hold '@', so it runs to the last one.
	mysqlPassword = regexp.MustCompile(`^([^:@/\s]*):(.*)@([a-z]*\(|/)`)
	secretParam   = regexp.MustCompile(`(?i)pass|pwd|secret|token`)
)

// RedactDSN masks every password of a DSN: a URL's userinfo and query
// parameters (?password=, ?sslpassword=), libpq key=value pairs, and
// MySQL's user:password@tcp(...)/ form.
func RedactDSN(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return mysqlPassword.ReplaceAllString(keyValueSecret.ReplaceAllString(dsn, "${1}"+mask), "${1}:"+mask+"@${3}")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return urlPassword.ReplaceAllString(keyValueSecret.ReplaceAllString(dsn, "${1}"+mask), "${1}"+mask+"@")
	}
	const placeholder = "STILLPOINTMASKED"
	userChanged, queryChanged := false, false
	if _, ok := u.User.Password(); ok {
		u.User, userChanged = url.UserPassword(u.User.Username(), placeholder), true
	}
	q := u.Query()
	for k := range q {
		if secretParam.MatchString(k) {
			q.Set(k, placeholder)
			queryChanged = true
		}
	}
	if !userChanged && !queryChanged {
		return dsn
	}
	if queryChanged {
		u.RawQuery = q.Encode()
	}
	return strings.ReplaceAll(u.String(), placeholder, mask)
}

// Redact masks in text (an error, a log line) every password dsn holds,
// wherever and in whatever escaping it appears.
func Redact(text, dsn string) string {
	var secrets []string
	add := func(s string) {
		if s == "" {
			return
		}
		secrets = append(secrets, s)
		if u, err := url.QueryUnescape(s); err == nil {
			secrets = append(secrets, u)
		}
		if uq := strings.Trim(s, "'"); uq != s {
			secrets = append(secrets, uq, strings.ReplaceAll(uq, `\'`, "'"))
		}
	}
	for _, m := range keyValueSecret.FindAllStringSubmatch(dsn, -1) {
		add(m[2])
	}
	for _, m := range urlPassword.FindAllStringSubmatch(dsn, -1) {
		add(m[2])
	}
	if m := mysqlPassword.FindStringSubmatch(dsn); m != nil {
		add(m[2])
	}
	if u, err := url.Parse(dsn); err == nil && strings.Contains(dsn, "://") {
		for k, vs := range u.Query() {
			if secretParam.MatchString(k) {
				for _, v := range vs {
					add(v)
					add(url.QueryEscape(v))
				}
			}
		}
	}
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) }) // a longer secret may hold a shorter
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, mask)
	}
	return text
}
