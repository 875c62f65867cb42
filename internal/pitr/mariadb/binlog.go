package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/pitr"
)

// binlog is a binlog file name split into its base and sequence number
// (mysql-bin.000042 is mysql-bin, 42).
type binlog struct {
	base string
	num  int
}

func parseBinlog(name string) (binlog, bool) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 {
		return binlog{}, false
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n < 0 {
		return binlog{}, false
	}
	return binlog{name[:i], n}, true
}

func (b binlog) String() string { return fmt.Sprintf("%s.%06d", b.base, b.num) }

func (b binlog) next() binlog { return binlog{b.base, b.num + 1} }

// heldNumbers is the sorted sequence numbers of the archive's files with
// base's name.
func heldNumbers(ctx context.Context, logs pitr.Logs, base string) ([]int, error) {
	names, err := logs.Names(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the binlog archive: %w", err)
	}
	var nums []int
	for _, n := range names {
		if b, ok := parseBinlog(n); ok && b.base == base {
			nums = append(nums, b.num)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// before reports whether position p comes before q in the binlog.
func before(p, q pitr.Position) bool {
	a, _ := parseBinlog(p.File)
	b, _ := parseBinlog(q.File)
	return a.num < b.num || a.num == b.num && p.Offset < q.Offset
}

// server is how the command-line tools and this package reach a store's
// server, from its go-sql-driver DSN.
type server struct {
	cfg *mysql.Config
	// optionsDir holds an option file with the credentials, so they are
	// never on a command line (visible in ps).
	optionsDir string
	db         *sql.DB
}

func connect(sc config.Store) (*server, error) {
	cfg, err := mysql.ParseDSN(sc.DSN)
	if err != nil {
		return nil, fmt.Errorf("mysql store DSN: %w", err)
	}
	dir, err := tempDir("mariadb")
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, optionsDir: dir}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		s.close()
		return nil, err
	}
	s.db = sql.OpenDB(conn)
	opts := "[client]\nuser=" + cfg.User + "\npassword=" + cfg.Passwd + "\n"
	if cfg.Net == "unix" {
		opts += "socket=" + cfg.Addr + "\n"
	} else {
		host, port, _ := strings.Cut(cfg.Addr, ":")
		opts += "host=" + host + "\nprotocol=tcp\n"
		if port != "" {
			opts += "port=" + port + "\n"
		}
	}
	if err := os.WriteFile(s.optionsFile(), []byte(opts), 0o600); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *server) optionsFile() string { return filepath.Join(s.optionsDir, "client.cnf") }

// defaults is the first argument of every tool: only our option file is
// read, never the host's my.cnf.
func (s *server) defaults() string { return "--defaults-file=" + s.optionsFile() }

func (s *server) close() {
	if s.db != nil {
		s.db.Close()
	}
	os.RemoveAll(s.optionsDir)
}

// tempDir makes a private temporary directory named for kind and this
// process (stillpoint-KIND-pPID-...), after removing those of this
// package's processes that are gone. A process killed with SIGKILL cannot
// remove its own (the option file with the credentials, a binlog half
// copied): the next start of the archiver, whose supervisor restarts it at
// once, does.
func tempDir(kind string) (string, error) {
	stale, _ := filepath.Glob(filepath.Join(os.TempDir(), "stillpoint-*-p*-*"))
	for _, dir := range stale {
		_, rest, _ := strings.Cut(filepath.Base(dir), "-p")
		pid, _, _ := strings.Cut(rest, "-")
		if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() && !alive(n) {
			os.RemoveAll(dir) // another user's stays: not ours to remove
		}
	}
	return os.MkdirTemp("", fmt.Sprintf("stillpoint-%s-p%d-", kind, os.Getpid()))
}

// alive reports whether process pid exists (perhaps another user's).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// GapsTo checks that logs hold every binlog a replay from `from` to `to`
// reads, the cut's own included: a hole after the cut does not stop a
// restore to it. Files after the base's first that no later file follows
// are not archived yet (the archiver copies each once the server closes
// it), which the restore reports by name; they are not a hole. The base's
// first missing with nothing after it is a gap, as Gaps says.
func (Engine) GapsTo(ctx context.Context, store string, logs pitr.Logs, from, to pitr.Position) error {
	start, ok1 := parseBinlog(from.File)
	end, ok2 := parseBinlog(to.File)
	if !ok1 || !ok2 || start.base != end.base {
		return fmt.Errorf("store %s: cannot replay from %s to %s: not binlog positions of one server", store, from, to)
	}
	held, err := heldNumbers(ctx, logs, start.base)
	if err != nil {
		return fmt.Errorf("store %s: %w", store, err)
	}
	for b := start; b.num <= end.num; b = b.next() {
		if _, ok := slices.BinarySearch(held, b.num); ok {
			continue
		}
		i, _ := slices.BinarySearch(held, b.num)
		switch {
		case i < len(held):
			gap := &pitr.GapError{Store: store, Missing: b.String(), Before: binlog{start.base, held[i]}.String(),
				Suggestion: "; replay to " + to.String() + " cannot cross it: restore a cut before it, or take a new base backup for the cuts after it"}
			if i > 0 {
				gap.After = binlog{start.base, held[i-1]}.String()
			}
			return gap
		case b == start:
			// As Gaps says: nothing of the base's log is archived.
			return &pitr.GapError{Store: store, Missing: b.String(), Suggestion: "; the base backup's first binlog was never archived: is the archiver running?"}
		}
		return nil // not archived yet
	}
	return nil
}
