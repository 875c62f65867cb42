package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Connection says where a store is: a server's DSN, or an embedded
// engine's file.
type Connection struct {
	DSN    string
	Path   string
	Layout Layout
	// MustExist: the store's database must be there already. An engine
	// that would create it on open (SQLite's file) refuses instead, with
	// ErrNoDatabase, so a mistyped path never becomes an empty store.
	MustExist bool
}

// ErrNoDatabase: the store's database does not exist (Connection.MustExist).
var ErrNoDatabase = errors.New("no database there")

// Layout is what a ScalarDB deployment chose: the schemas, with ScalarDB's
// settings scalar.db.jdbc.table_metadata.schema and
// scalar.db.consensus_commit.coordinator.namespace, and the ScalarDB
// release whose DDL new tables get. Empty fields are ScalarDB's defaults.
type Layout struct {
	// MetadataSchema holds the metadata table; default "scalardb".
	MetadataSchema string
	// CoordinatorNamespace is where the coordinator table is in the
	// database; default "coordinator". The layers above always call it
	// "coordinator" (schema.CoordinatorNamespace); the store maps the name.
	CoordinatorNamespace string
	// ScalarDB is the release whose DDL CreateTable issues
	// (scalardb_version); zero: LatestScalarDB.
	ScalarDB ScalarDBVersion
}

// ScalarDB's defaults.
const (
	DefaultMetadataSchema       = "scalardb"
	DefaultCoordinatorNamespace = "coordinator"
)

// WithDefaults fills the empty fields with ScalarDB's defaults.
func (l Layout) WithDefaults() Layout {
	if l.MetadataSchema == "" {
		l.MetadataSchema = DefaultMetadataSchema
	}
	if l.CoordinatorNamespace == "" {
		l.CoordinatorNamespace = DefaultCoordinatorNamespace
	}
	l.ScalarDB = l.ScalarDB.orLatest()
	return l
}

// Engine is what an engine package registers about itself (in its init,
// as database/sql drivers do), so that the layers above open stores and
// check names without a switch on engine names.
type Engine struct {
	Name string
	// Open connects to one store.
	Open func(ctx context.Context, name string, c Connection) (Store, error)
	// Limits are the names and values the engine can hold when it
	// creates tables as ScalarDB release v does.
	Limits func(v ScalarDBVersion) Limits
}

// Limits are what an engine can hold. Names beyond them would be
// truncated, refused half-way through creating a schema, or collide, so
// they are checked before anything is created.
type Limits struct {
	// MaxName is the longest identifier (schema, table, column, index), in
	// bytes; 0: no limit.
	MaxName int
	// FoldsCase: names that differ only in case are one name.
	FoldsCase bool
	// NamespaceSeparator joins namespace and table into one table name
	// where namespaces are not schemas (SQLite: "$"); "" otherwise.
	NamespaceSeparator string
	// MaxFullTableName is the width of scalardb.metadata's full_table_name
	// ("namespace.table"), VARCHAR(128) as ScalarDB declares it; 0: no
	// limit.
	MaxFullTableName int
	// MaxKeyLength bounds TEXT (characters) and BLOB (bytes) values of key
	// and indexed columns; 0: no limit.
	MaxKeyLength int
	// ClusteringOrderIndex: the engine keeps a table's clustering order in
	// a unique index of its own (PostgreSQL), named by ScalarDB's rules.
	ClusteringOrderIndex bool
	// ScalarDB is the release whose DDL the store issues, which names the
	// indexes it creates.
	ScalarDB ScalarDBVersion
	// SingleWriter: one writer per database at a time (SQLite); concurrent
	// writers queue on a lock and may fail busy, so bulk loads take turns.
	SingleWriter bool
}

var (
	enginesMu sync.RWMutex
	engines   = map[string]Engine{}
)

// RegisterEngine makes an engine known by its name. Registering a name
// twice is a programming error.
func RegisterEngine(e Engine) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if _, dup := engines[e.Name]; dup {
		panic("storage: engine " + e.Name + " registered twice")
	}
	engines[e.Name] = e
}

// LookupEngine returns a registered engine.
func LookupEngine(name string) (Engine, error) {
	enginesMu.RLock()
	defer enginesMu.RUnlock()
	e, ok := engines[name]
	if !ok {
		names := make([]string, 0, len(engines))
		for n := range engines {
			names = append(names, n)
		}
		slices.Sort(names)
		return Engine{}, fmt.Errorf("unknown engine %q (known: %s)", name, strings.Join(names, ", "))
	}
	return e, nil
}

// Opener adapts an engine's Open that returns its own store type, so a
// failed open gives a nil Store, not a Store holding a nil pointer.
func Opener[S Store](open func(ctx context.Context, name string, c Connection) (S, error)) func(context.Context, string, Connection) (Store, error) {
	return func(ctx context.Context, name string, c Connection) (Store, error) {
		s, err := open(ctx, name, c)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// CheckNamespace refuses the names of the layout's own schemas for user
// namespaces: a table there would be mistaken for the metadata or the
// coordinator. store names the store in the error.
func (l Layout) CheckNamespace(store, namespace string) error {
	switch {
	case namespace == l.MetadataSchema:
		return fmt.Errorf("store %s: namespace %s is the metadata schema (metadata_schema); use another name", store, namespace)
	case namespace != DefaultCoordinatorNamespace && namespace == l.CoordinatorNamespace:
		return fmt.Errorf("store %s: namespace %s is the coordinator namespace (coordinator_namespace); use another name", store, namespace)
	}
	return nil
}
