package pitr

import (
	"context"

	"github.com/stillpoint/stillpoint/internal/config"
)

// Archiver is an engine whose log is pulled from the server by a
// long-running process (`stillpoint archive`: MariaDB's binlogs), rather
// than pushed by the server (PostgreSQL's archive_command calls
// `stillpoint wal-push`). Archive stores every completed log file into
// logs until ctx ends, resuming after the newest file logs holds; it
// returns nil when ctx ends.
type Archiver interface {
	Archive(ctx context.Context, sc config.Store, logs Logs) error
}
