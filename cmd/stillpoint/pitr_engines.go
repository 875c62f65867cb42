package main

import (
	"context"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/pitr/mariadb"    // registers the MariaDB engine
	_ "github.com/stillpoint/stillpoint/internal/pitr/postgres" // registers the PostgreSQL engine
	"github.com/stillpoint/stillpoint/internal/storage"
)

// The engines' functions beyond pitr.Engine, by storage engine name.
// PostgreSQL pushes its WAL itself (archive_command: wal-push, wal.go)
// and needs neither.
var (
	// archivers pull a store's log into the archive until ctx ends
	// (stillpoint archive).
	archivers = map[string]func(ctx context.Context, sc config.Store, logs pitr.Logs) error{
		"mysql": mariadb.Archive,
	}
	// closeLogs closes the log file a cut's mark is in, so that it is
	// archived now and the cut restorable at once, not when the file fills.
	closeLogs = map[string]func(ctx context.Context, st storage.Store) error{
		"mysql": mariadb.Flush,
	}
)
