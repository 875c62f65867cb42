package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Benchmarks explain their times by the CPU the database servers used on
// this machine's cores (issue 13; docs/performance.md,
// docs/performance-transactions.md). The readers below need the server on
// this machine, as scripts/bench.sh starts it.

// MariaDBCPU returns a reader of the CPU time (user + system) mariadbd has
// used, from /proc/PID/stat of the server behind db (its pid file; mariadbd
// is one process).
func MariaDBCPU(t testing.TB, ctx context.Context, db *sql.DB) func() time.Duration {
	t.Helper()
	var pidFile string
	if err := db.QueryRowContext(ctx, "SELECT @@pid_file").Scan(&pidFile); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the MariaDB server's pid (the benchmark needs the server on this machine): %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("the MariaDB server's pid file %s: %v", pidFile, err)
	}
	return func() time.Duration {
		st, err := procStat(pid)
		if err != nil {
			t.Fatal(err)
		}
		return st.cpu
	}
}

// PostgresCPU returns a reader of the CPU time (user + system) the whole
// PostgreSQL server behind db has used: the postmaster, its live processes
// (backends, WAL writer, checkpointer, autovacuum), and the processes that
// have exited (the postmaster's reaped children's times), so a backend whose
// connection closed during a measurement still counts.
func PostgresCPU(t testing.TB, ctx context.Context, db *sql.DB) func() time.Duration {
	t.Helper()
	var backend int
	if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	st, err := procStat(backend)
	if err != nil {
		t.Fatalf("the PostgreSQL backend's process (the benchmark needs the server on this machine): %v", err)
	}
	postmaster := st.ppid
	return func() time.Duration {
		total, err := treeCPU(func() (stat, error) { return procStat(postmaster) }, func() time.Duration { return liveChildrenCPU(t, postmaster) })
		if err != nil {
			t.Fatal(err)
		}
		return total
	}
}

// treeCPU is a parent's CPU time, its reaped children's and its live
// children's (scanLive). A child reaped during the scan is in neither the
// reaped children's times read before it nor the scan (right after a
// client exits, its backends are exiting): it scans again until those
// times did not change across a scan.
func treeCPU(readParent func() (stat, error), scanLive func() time.Duration) (time.Duration, error) {
	for {
		before, err := readParent()
		if err != nil {
			return 0, err
		}
		live := scanLive()
		after, err := readParent()
		if err != nil {
			return 0, err
		}
		if after.children == before.children {
			return after.cpu + after.children + live, nil
		}
	}
}

// liveChildrenCPU sums the CPU time of parent's live child processes.
func liveChildrenCPU(t testing.TB, parent int) time.Duration {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	var total time.Duration
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if st, err := procStat(pid); err == nil && st.ppid == parent {
			total += st.cpu
		}
	}
	return total
}

type stat struct {
	ppid          int
	cpu, children time.Duration
}

// procStat reads /proc/PID/stat: ppid, utime + stime and cutime + cstime.
func procStat(pid int) (stat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	// Fields after the command name "(...)": state is the 3rd field, ppid
	// the 4th, utime, stime, cutime and cstime the 14th to 17th, in clock
	// ticks (100 a second on Linux, USER_HZ).
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 || i+2 > len(data) {
		return stat{}, fmt.Errorf("/proc/%d/stat: no command name in %q", pid, data)
	}
	f := strings.Fields(string(data[i+2:]))
	if len(f) < 15 {
		return stat{}, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want at least 15", pid, len(f))
	}
	var n [5]int64
	for j, k := range []int{1, 11, 12, 13, 14} {
		if n[j], err = strconv.ParseInt(f[k], 10, 64); err != nil {
			return stat{}, fmt.Errorf("/proc/%d/stat field %d: %v", pid, k+3, err)
		}
	}
	tick := func(v int64) time.Duration { return time.Duration(v) * time.Second / 100 }
	return stat{ppid: int(n[0]), cpu: tick(n[1] + n[2]), children: tick(n[3] + n[4])}, nil
}
