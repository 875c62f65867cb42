package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/pitr/mariadb"
)

// PITRMariaDB starts a throwaway MariaDB configured for point-in-time
// recovery as an operator would (log_bin, server_id, binlog_format=ROW),
// on a free loopback port, stopped when the test ends. It returns the
// store (user stillpoint, all privileges) and the server's data directory.
// innodb are InnoDB settings fixed when the data directory is created
// (e.g. --innodb-page-size=32k), given to mariadb-install-db and mariadbd.
func PITRMariaDB(t testing.TB, innodb ...string) (config.Store, string) {
	t.Helper()
	dir := t.TempDir()
	data, run := filepath.Join(dir, "data"), filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--tmpdir="+run,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	install.Args = append(install.Args, innodb...)
	if os.Geteuid() == 0 {
		install.Args = append(install.Args, "--user=root")
	}
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v: %s", err, tail(out, 5))
	}
	ctx := context.Background()
	var srv *mariadb.Server
	for attempt := 1; ; attempt++ {
		var err error
		args := []string{"--log-bin=mysql-bin", "--server-id=1",
			"--binlog-format=ROW", "--innodb-flush-log-at-trx-commit=2", "--skip-name-resolve"}
		srv, err = mariadb.StartServer(ctx, data, run, LoopbackPort(t), append(args, innodb...)...)
		if err == nil {
			break
		}
		// Another process may take the port between FreePort and the bind.
		if attempt == 5 || !strings.Contains(err.Error(), "already in use") {
			t.Fatalf("start MariaDB: %v", err)
		}
	}
	t.Cleanup(func() { srv.Stop() })
	root := mysql.NewConfig()
	root.Net, root.Addr, root.User = "unix", srv.Socket, "root"
	conn, err := mysql.NewConnector(root)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	for _, stmt := range []string{
		"CREATE USER 'stillpoint'@'127.0.0.1' IDENTIFIED BY 'stillpoint'",
		"GRANT ALL PRIVILEGES ON *.* TO 'stillpoint'@'127.0.0.1' WITH GRANT OPTION",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("MariaDB user: %v", err)
		}
	}
	return config.Store{Engine: "mysql", DSN: fmt.Sprintf("stillpoint:stillpoint@tcp(127.0.0.1:%d)/", srv.Port)}, data
}

// LoopbackPort is a loopback TCP port that was free a moment ago.
func LoopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
