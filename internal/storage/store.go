// Package storage is the record-store contract every engine implements:
// ScalarDB's data model (namespaces, tables with partition and clustering
// keys) with single-record conditional writes. Engines live in subpackages.
package storage

import (
	"context"
	"errors"
	"fmt"
)

// Store is one database holding some namespaces.
type Store interface {
	// Get returns the record, or nil when there is none.
	Get(ctx context.Context, g Get) (Record, error)
	Scan(ctx context.Context, s Scan) ([]Record, error)
	ScanAll(ctx context.Context, s ScanAll) ([]Record, error)
	Put(ctx context.Context, p Put) error
	Delete(ctx context.Context, d Delete) error
	// Mutate applies the mutations atomically: all or none. The contract
	// promises this for mutations of one partition; SQL engines honour it
	// for any mutations of the store.
	Mutate(ctx context.Context, ms []Mutation) error
	Admin
	Close() error
}

// Admin manages namespaces and tables and their metadata.
type Admin interface {
	// Info names the engine and its server version.
	Info(ctx context.Context) (EngineInfo, error)
	CreateNamespace(ctx context.Context, namespace string) error
	DropNamespace(ctx context.Context, namespace string) error
	Namespaces(ctx context.Context) ([]string, error)
	CreateTable(ctx context.Context, m *TableMetadata) error
	DropTable(ctx context.Context, namespace, table string) error
	// TableMetadata returns nil when the table does not exist.
	TableMetadata(ctx context.Context, namespace, table string) (*TableMetadata, error)
	Tables(ctx context.Context, namespace string) ([]string, error)
}

// EngineInfo identifies a store's engine.
type EngineInfo struct {
	Engine  string // sqlite, postgres, mysql
	Version string
}

// ErrNoMutation is the error of a conditional mutation whose condition did
// not hold. Nothing was written.
var ErrNoMutation = errors.New("condition not satisfied, no mutation applied")

// NoMutationError says which mutation's condition failed.
type NoMutationError struct {
	Table     string
	Condition ConditionKind
}

func (e *NoMutationError) Error() string {
	return fmt.Sprintf("%s on %s: %v", e.Condition, e.Table, ErrNoMutation)
}

func (e *NoMutationError) Unwrap() error { return ErrNoMutation }

// ErrTableNotFound is returned for operations on a table with no metadata.
var ErrTableNotFound = errors.New("table not found")

// ErrRetriable marks an engine-level conflict (deadlock, serialization
// failure, busy database) after which the same call may succeed.
var ErrRetriable = errors.New("retriable storage conflict")
