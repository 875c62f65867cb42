package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Server is a mariadbd this package started on a data directory: the
// restore's replay server, a drill's restored server, or a test's source.
type Server struct {
	DataDir string
	// Socket is the server's unix socket; Port its TCP port (0: none).
	Socket string
	Port   int
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// startTimeout bounds how long a server may take to accept connections
// (crash recovery of a large data directory can take a while).
const startTimeout = 10 * time.Minute

// StartServer starts mariadbd on dataDir with its socket, pid file and
// error log in runDir, listening on 127.0.0.1:port (port 0: socket only),
// with args appended (e.g. --log-bin, --skip-grant-tables), and returns
// once it accepts connections on its socket.
func StartServer(ctx context.Context, dataDir, runDir string, port int, args ...string) (*Server, error) {
	s := &Server{DataDir: dataDir, Socket: filepath.Join(runDir, "mysqld.sock"), Port: port, exited: make(chan struct{}), log: filepath.Join(runDir, "error.log")}
	argv := []string{"--no-defaults", "--datadir=" + dataDir, "--socket=" + s.Socket,
		"--pid-file=" + filepath.Join(runDir, "mariadbd.pid"), "--log-error=" + s.log, "--tmpdir=" + runDir}
	if os.Geteuid() == 0 {
		// mariadbd refuses to run as root unless told to.
		argv = append(argv, "--user=root")
	}
	if port == 0 {
		argv = append(argv, "--skip-networking")
	} else {
		argv = append(argv, "--bind-address=127.0.0.1", fmt.Sprintf("--port=%d", port))
	}
	// Not CommandContext: the server outlives ctx when the caller keeps it.
	s.cmd = exec.Command("mariadbd", append(argv, args...)...)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mariadbd on %s: %w", dataDir, err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	if err := s.awaitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// awaitReady polls the socket: mariadbd gives no other readiness signal.
func (s *Server) awaitReady(ctx context.Context) error {
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User = "unix", s.Socket, "root"
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := db.PingContext(ctx)
		var me *mysql.MySQLError
		if err == nil || errors.As(err, &me) {
			// An access-denied answer is still a server that is up.
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("mariadbd on %s exited during startup: %s", s.DataDir, s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbd on %s did not accept connections within %v: %s", s.DataDir, startTimeout, s.logTail())
		}
	}
}

// Stop shuts the server down cleanly (SIGTERM) and waits for it to exit.
func (s *Server) Stop() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop mariadbd on %s: %w", s.DataDir, err)
	}
	<-s.exited
	return nil
}

// Exited is closed once the server process has ended.
func (s *Server) Exited() <-chan struct{} { return s.exited }

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// StopRestored shuts down the server a restore with target.Start left
// running on dataDir (SIGTERM: a clean shutdown) and waits until it has
// exited.
func StopRestored(ctx context.Context, dataDir string) error {
	b, err := os.ReadFile(filepath.Join(RunDir(dataDir), "mariadbd.pid"))
	if err != nil {
		return fmt.Errorf("no server running on %s: %w", dataDir, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("pid file of the server on %s: %w", dataDir, err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop the server on %s (pid %d): %w", dataDir, pid, err)
	}
	// Not our child once the restoring process is gone: poll for its end.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for syscall.Kill(pid, 0) == nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
