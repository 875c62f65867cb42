package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/pitr"
)

// ArchiveInterval is how often Archive asks the server for binlogs it
// closed: a file is archived at most this long after it rotates.
var ArchiveInterval = time.Second

// Archive copies every binlog the server closes into logs until ctx
// ends (then it returns nil). It keeps no state of its own: each pass
// starts from what logs hold, so a restarted archiver resumes where the
// last one stopped. A binlog the server purged before it was archived is
// a *pitr.GapError, returned once the files after it are archived.
func Archive(ctx context.Context, sc config.Store, logs pitr.Logs) error {
	srv, err := connect(sc)
	if err != nil {
		return err
	}
	defer srv.close()
	var version string
	if err := srv.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return fmt.Errorf("mariadb at %s: %w", srv.cfg.Addr, err)
	}
	if err := notMariaDB(version); err != nil {
		return fmt.Errorf("mariadb at %s: %w", srv.cfg.Addr, err)
	}
	tick := time.NewTicker(ArchiveInterval)
	defer tick.Stop()
	for {
		_, err := archivePass(ctx, srv, logs)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// ArchiveOnce is one pass of Archive: it copies the closed binlogs logs
// lack and returns their names.
func ArchiveOnce(ctx context.Context, sc config.Store, logs pitr.Logs) ([]string, error) {
	srv, err := connect(sc)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	return archivePass(ctx, srv, logs)
}

type serverBinlog struct {
	binlog
	size int64
}

// archivePass copies the closed binlogs (all that SHOW BINARY LOGS lists
// but the last, which is still written) that logs lack, newer than the
// oldest they hold: older ones were archived and pruned, or predate the
// archive. With an empty archive it copies all of them.
func archivePass(ctx context.Context, srv *server, logs pitr.Logs) ([]string, error) {
	onServer, err := binaryLogs(ctx, srv.db)
	if err != nil {
		return nil, fmt.Errorf("mariadb at %s: %w", srv.cfg.Addr, err)
	}
	closed := onServer[:len(onServer)-1]
	held, err := heldNumbers(ctx, logs, onServer[0].base)
	if err != nil {
		return nil, err
	}
	has := map[int]bool{}
	for _, n := range held {
		has[n] = true
	}
	var copied []string
	for _, f := range closed {
		if has[f.num] || len(held) > 0 && f.num < held[0] {
			continue
		}
		if err := archiveFile(ctx, srv, logs, f); err != nil {
			return copied, err
		}
		copied = append(copied, f.String())
	}
	if len(held) > 0 {
		newest := binlog{onServer[0].base, held[len(held)-1]}
		if oldest := onServer[0].binlog; oldest.num > newest.num+1 {
			return copied, &pitr.GapError{Store: srv.cfg.Addr, After: newest.String(), Missing: newest.next().String(), Before: oldest.String(),
				Suggestion: "; the server purged it before it was archived (keep the archiver running, raise binlog_expire_logs_seconds); take a new base backup"}
		}
	}
	return copied, nil
}

func binaryLogs(ctx context.Context, db *sql.DB) ([]serverBinlog, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var files []serverBinlog
	for rows.Next() {
		var name string
		var f serverBinlog
		if err := rows.Scan(&name, &f.size); err != nil {
			return nil, err
		}
		b, ok := parseBinlog(name)
		if !ok {
			return nil, fmt.Errorf("SHOW BINARY LOGS lists %q, which is not a binlog file name", name)
		}
		f.binlog = b
		files = append(files, f)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("the server has no binary log: start it with log_bin, server_id and binlog_format=ROW")
	}
	return files, nil
}

// archiveFile reads one closed binlog from the server as it is
// (mariadb-binlog --read-from-remote-server --raw: the archiver needs no
// access to the server's files) and stores it once it is whole.
func archiveFile(ctx context.Context, srv *server, logs pitr.Logs, f serverBinlog) error {
	dir, err := tempDir("binlog")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	name := f.String()
	if err := runTool(exec.CommandContext(ctx, "mariadb-binlog", srv.defaults(), "--read-from-remote-server", "--raw",
		"--result-file="+dir+string(filepath.Separator), name)); err != nil {
		return err
	}
	file, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return err
	}
	if st.Size() != f.size {
		return fmt.Errorf("binlog %s: read %d bytes of %d from the server: not archived", name, st.Size(), f.size)
	}
	if err := logs.Put(ctx, name, file); err != nil {
		return fmt.Errorf("archive binlog %s: %w", name, err)
	}
	return nil
}
