package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// stallFirstChunk holds the first chunk upload until release is closed,
// after closing reached: the backup has listed the repository's chunks by
// then and deduplicates against them.
type stallFirstChunk struct {
	backend.Backend
	once             sync.Once
	reached, release chan struct{}
}

func (b *stallFirstChunk) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "data/") {
		b.once.Do(func() {
			close(b.reached)
			<-b.release
		})
	}
	return b.Backend.Put(ctx, name, data)
}

// TestCampaignUnlockDuringBackup: `backup unlock` while a backup runs,
// then `backup delete` (with prune) of the only other backup, whose chunks
// the running one deduplicated against. The running backup must fail or
// stay whole: never be listed with a missing object. Odd trials run the
// real unlock on this host (it must refuse, so the delete must wait); even
// trials remove the lock objects as an unlock on another host does.
func TestCampaignUnlockDuringBackup(t *testing.T) {
	ctx := context.Background()
	trials := testenv.Trials(t, 2, 20)
	dataDir := t.TempDir()
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", dataDir}}
	if out, code := c.run("workload", "bank", "--count", "200"); code != 0 {
		t.Fatalf("workload: %s", out)
	}
	cfg, err := config.Load("", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for trial := range trials {
		remote := trial%2 == 0
		repoDir := filepath.Join(t.TempDir(), "repo")
		out, code := c.run("--json", "backup", "create", "--init", "--repo", repoDir)
		var older struct{ ID string }
		if code != 0 || json.Unmarshal([]byte(out), &older) != nil {
			t.Fatalf("trial %d: backup create: exit %d %s", trial, code, out)
		}
		if out, code := c.run("workload", "bank", "--count", "20"); code != 0 {
			t.Fatalf("workload: %s", out)
		}

		// The running backup, in this process, as the CLI runs it.
		local, err := backend.Open(ctx, repoDir)
		if err != nil {
			t.Fatal(err)
		}
		be := &stallFirstChunk{Backend: local, reached: make(chan struct{}), release: make(chan struct{})}
		r, err := repo.Open(ctx, be, nil)
		if err != nil {
			t.Fatal(err)
		}
		st := multistorage.New(cfg)
		done := make(chan error, 1)
		go func() {
			_, err := backup.Create(ctx, st, r, backup.Options{Mode: backup.Fence})
			done <- err
		}()
		select {
		case <-be.reached:
		case err := <-done:
			t.Fatalf("trial %d: the backup ended before storing a chunk: %v", trial, err)
		}

		if remote {
			if err := os.RemoveAll(filepath.Join(repoDir, "locks")); err != nil {
				t.Fatal(err)
			}
		} else if _, code := c.run("backup", "unlock", "--repo", repoDir); code == 0 {
			outcomes["unlock removed a live lock"]++
		}
		_, delCode := c.run("backup", "delete", older.ID, "--repo", repoDir)
		close(be.release)
		err = <-done
		st.Close()

		out, code = c.run("--json", "backup", "list", "--repo", repoDir)
		var list []struct{ ID string }
		if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
			t.Fatalf("trial %d: backup list: exit %d %s", trial, code, out)
		}
		for _, b := range list {
			if out, code := c.run("backup", "verify", b.ID, "--repo", repoDir); code != 0 {
				t.Fatalf("trial %d (remote unlock %v): backup %s is listed but does not verify (the running backup ended with %v): %s", trial, remote, b.ID, err, out)
			}
		}
		switch {
		case err != nil && !strings.Contains(err.Error(), "lock"):
			t.Fatalf("trial %d: the backup failed, but not for its lost lock: %v", trial, err)
		case err != nil:
			outcomes["backup failed: lock lost"]++
		case delCode == 0:
			outcomes["backup whole, delete ran"]++
		default:
			outcomes["backup whole, delete refused"]++
		}
	}
	t.Logf("%d trials: %v", trials, outcomes)
	if outcomes["unlock removed a live lock"] > 0 {
		t.Fatalf("backup unlock removed the lock of a live backup on this host %d times", outcomes["unlock removed a live lock"])
	}
}

// TestKilledBackupLockTakenOver: a backup killed while it holds the lock
// leaves it behind; the next backup on the same host sees its process is
// gone, takes the lock over with a message, and succeeds.
func TestKilledBackupLockTakenOver(t *testing.T) {
	dataDir := t.TempDir()
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", dataDir}}
	if out, code := c.run("workload", "bank", "--count", "50"); code != 0 {
		t.Fatalf("workload: %s", out)
	}
	repoDir := filepath.Join(t.TempDir(), "repo")
	if out, code := c.run("backup", "create", "--init", "--repo", repoDir); code != 0 {
		t.Fatalf("backup create: %s", out)
	}

	// Hold the coordinator database's write lock, so the next backup
	// waits at its fence while it holds the repository lock.
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "coordinator.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	victim := exec.Command(c.bin, append(c.args, "backup", "create", "--init", "--repo", repoDir, "--fence-timeout", "10m")...)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	lockFile := filepath.Join(repoDir, "locks", "repository")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(lockFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			victim.Process.Kill()
			t.Fatal("the backup never took the lock")
		}
		runtime.Gosched()
	}
	victim.Process.Kill()
	victim.Wait()
	conn.ExecContext(context.Background(), "ROLLBACK")
	conn.Close()

	next := exec.Command(c.bin, append(c.args, "backup", "create", "--init", "--repo", repoDir)...)
	var stderr strings.Builder
	next.Stderr = &stderr
	if err := next.Run(); err != nil {
		t.Fatalf("backup after a killed one: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "taking over the stale lock") || !strings.Contains(stderr.String(), fmt.Sprintf("pid %d", victim.Process.Pid)) {
		t.Fatalf("the takeover was not reported naming pid %d: %s", victim.Process.Pid, stderr.String())
	}
}

// TestUnlockOtherHost: another host's fresh lock blocks a backup until
// backup unlock removes it.
func TestUnlockOtherHost(t *testing.T) {
	c := cli{t: t, bin: build(t), args: []string{"--data-dir", t.TempDir()}}
	if out, code := c.run("workload", "bank", "--count", "20"); code != 0 {
		t.Fatalf("workload: %s", out)
	}
	repoDir := filepath.Join(t.TempDir(), "repo")
	if out, code := c.run("backup", "create", "--init", "--repo", repoDir); code != 0 {
		t.Fatalf("backup create: %s", out)
	}
	lock, _ := json.Marshal(repo.LockInfo{Owner: "stillpoint backup create (db2, pid 4242)", Host: "db2", PID: 4242, Time: time.Now().UTC(), Nonce: "remote"})
	if err := os.MkdirAll(filepath.Join(repoDir, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repoDir, "locks", "repository"), lock, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, code := c.run("backup", "create", "--init", "--repo", repoDir); code == 0 {
		t.Fatal("backup create ran beside another host's fresh lock")
	}
	cases := []struct {
		removed bool
		owner   string
	}{
		{true, "stillpoint backup create (db2, pid 4242)"},
		{false, ""},
	}
	for _, want := range cases {
		out, code := c.run("--json", "backup", "unlock", "--repo", repoDir)
		var res struct {
			Removed bool
			Lock    *repo.LockInfo
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || res.Removed != want.removed || (res.Lock != nil) != want.removed ||
			(res.Lock != nil && res.Lock.Owner != want.owner) {
			t.Fatalf("backup unlock: exit %d %s (%v); want removed=%v", code, out, err, want.removed)
		}
	}
	if out, code := c.run("backup", "create", "--init", "--repo", repoDir); code != 0 {
		t.Fatalf("backup create after unlock: %s", out)
	}
}
