// Package pitr is point-in-time recovery of every store to one cut
// (DESIGN.md sections 5, 7 and 10; docs/pitr.md): a physical base backup
// of each database server and its log archived continuously into the
// repository, cut marks that record each store's log position while the
// coordinator fence holds, and a restore that replays each store exactly
// to a mark, then finishes the cut by lazy recovery.
//
// This file is the contract between the core (repository objects, cut
// marks, retention, restore orchestration: this package) and the engines
// (pitr/postgres, pitr/mariadb), which register themselves.
package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// Position is a point in one store's log, in the engine's own terms.
type Position struct {
	// Engine names the engine that wrote it (postgres, mysql).
	Engine string `json:"engine"`
	// LSN is PostgreSQL's log sequence number ("0/3000060"), with its
	// timeline.
	LSN      string `json:"lsn,omitempty"`
	Timeline uint32 `json:"timeline,omitempty"`
	// RestorePoint is the name given to pg_create_restore_point.
	RestorePoint string `json:"restore_point,omitempty"`
	// File and Offset are MariaDB's binlog coordinates; GTID its
	// @@gtid_binlog_pos at the same moment.
	File   string `json:"file,omitempty"`
	Offset uint64 `json:"offset,omitempty"`
	GTID   string `json:"gtid,omitempty"`
}

func (p Position) String() string {
	switch {
	case p.LSN != "":
		return fmt.Sprintf("%s (timeline %d)", p.LSN, p.Timeline)
	case p.File != "":
		return fmt.Sprintf("%s:%d", p.File, p.Offset)
	}
	return "unknown position"
}

// BaseInfo describes a physical base backup as its engine took it.
type BaseInfo struct {
	// Start is the log position replay starts from; End the position
	// from which the base is consistent (replay must reach it at least).
	Start, End Position
	// Version is the server's version: a base restores only into the same
	// major version.
	Version string
	// Format names how the streamed bytes are laid out (e.g. "tar",
	// "xbstream"), for the engine's Restore.
	Format string
}

// Logs is one store's log archive in the repository: the WAL segments or
// binlog files, each stored whole under the name the server gave it.
// The core implements it over the repository (chunked, deduplicated,
// checksummed, optionally encrypted).
type Logs interface {
	// Put stores one log file. Storing the same content again is a no-op;
	// other content under a stored name is an error (never overwritten).
	Put(ctx context.Context, name string, r io.Reader) error
	// Get writes a stored file to w; a missing one is ErrMissing.
	Get(ctx context.Context, name string, w io.Writer) error
	// Names lists the stored files, sorted.
	Names(ctx context.Context) ([]string, error)
}

// ErrMissing: the archive has no such log file.
var ErrMissing = errors.New("not in the log archive")

// GapError is an archive that lacks log files between two it holds, or
// after a base's start: replay across it is impossible, and it is
// reported, never skipped.
type GapError struct {
	Store      string
	After      string // the last file before the gap ("" at the start)
	Missing    string // the first file missing
	Before     string // the next file held after the gap ("" if none)
	Suggestion string
}

func (e *GapError) Error() string {
	return fmt.Sprintf("store %s: the log archive has a gap: %s is missing (after %q, before %q)%s", e.Store, e.Missing, e.After, e.Before, e.Suggestion)
}

// Target is where a restore rebuilds one server: an empty data directory
// it fills, and the port a server started on it listens on (tests and
// drills start a fresh instance there; in production the operator points
// a configured directory and starts the server).
type Target struct {
	DataDir string
	Port    int
	// Start: start a server on DataDir once it is restored and replayed,
	// and leave it running (its address is then 127.0.0.1:Port).
	Start bool
}

// Engine is one database engine's physical backup, log archiving and
// replay. Engines register themselves with Register.
type Engine interface {
	// Mark records the store's current log position under name. It is
	// called while the coordinator fence holds, so it must be one quick
	// statement (pg_create_restore_point; SHOW MASTER STATUS and
	// @@gtid_binlog_pos in one read).
	Mark(ctx context.Context, st storage.Store, name string) (Position, error)
	// Base takes a physical base backup of the store's server, streaming
	// its bytes to w, and says where replay must start.
	Base(ctx context.Context, sc config.Store, w io.Writer) (BaseInfo, error)
	// Gaps checks that logs hold every file from the base's start on,
	// with no hole; a hole is a *GapError.
	Gaps(ctx context.Context, store string, logs Logs, from Position) error
	// Restore fills target.DataDir from the base (base yields the bytes
	// Base streamed) and replays logs from info.Start exactly to `to`:
	// every change recorded before `to` is applied and none after. Then
	// the server is ready to be started (or, with target.Start, started).
	Restore(ctx context.Context, base io.Reader, info BaseInfo, logs Logs, to Position, target Target) error
}

var (
	enginesMu sync.RWMutex
	engines   = map[string]Engine{}
)

// Register makes an engine's PITR known by its storage engine name.
func Register(engine string, e Engine) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if _, dup := engines[engine]; dup {
		panic("pitr: engine registered twice: " + engine)
	}
	engines[engine] = e
}

// EngineFor returns the PITR of a storage engine; SQLite has none (its
// stores keep logical backups and cut marks; docs/pitr.md).
func EngineFor(engine string) (Engine, error) {
	enginesMu.RLock()
	defer enginesMu.RUnlock()
	if e, ok := engines[engine]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("engine %s has no point-in-time recovery: its stores are restored from logical backups", engine)
}
