package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/stillpoint/stillpoint/internal/hint"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

// The repository has one exclusive lock (docs/repository.md), after
// restic's (internal/restic/lock.go) but exclusive only:
//
//	locks/repository          the lock (LockInfo, JSON), created
//	                          exclusively and never rewritten
//	locks/refreshed-NONCE     its holder's last refresh (JSON time)
//	locks/takeover-NONCE      created exclusively by the one process
//	                          that replaces the stale lock NONCE
//
// Whoever writes to the catalog (a manifest) or deletes chunks checks
// first that the lock is still its own, so a lock removed or taken over
// while held makes the holder fail instead of losing data.
const (
	lockName        = "locks/repository"
	locksDir        = "locks/"
	refreshedPrefix = "locks/refreshed-"
	takeoverPrefix  = "locks/takeover-"
)

// Lock timing: a holder refreshes every lockRefreshEvery; a lock not
// refreshed for LockStaleAfter is stale and taken over by the next Lock
// from any host (restic's 30 minutes: far beyond any pause of a live
// holder, and short enough that a crashed nightly backup does not block
// the next night's).
var lockRefreshEvery = time.Minute

// LockStaleAfter is how long a lock may go without a refresh before it is
// taken over.
const LockStaleAfter = 30 * time.Minute

// ErrLockLost: the lock was removed (backup unlock) or taken over while
// held. Whatever the holder was writing may reference chunks a prune has
// deleted meanwhile, so it must not be recorded.
var ErrLockLost = errors.New("the repository lock was lost while held (removed by backup unlock, or taken over as stale)")

// LockInfo is the content of locks/repository (plain JSON).
type LockInfo struct {
	Owner string `json:"owner"` // what holds it, e.g. "stillpoint backup create"
	Host  string `json:"host"`
	PID   int    `json:"pid"`
	// Process tells the holder's process from a later one with the same
	// pid: the PID namespace, boot id and start time (Linux; empty
	// elsewhere).
	Process string    `json:"process,omitempty"`
	Time    time.Time `json:"time"`
	Nonce   string    `json:"nonce"` // tells this holder's lock from a later one
	// Refreshed is the holder's last refresh (from locks/refreshed-NONCE;
	// Time if it never refreshed). Not stored in the lock object.
	Refreshed time.Time `json:"-"`
}

func (i LockInfo) String() string {
	return fmt.Sprintf("%q (host %s, pid %d, since %s, refreshed %s ago)", i.Owner, i.Host, i.PID,
		i.Time.Format(time.RFC3339), time.Since(i.Refreshed).Round(time.Second))
}

// local reports whether the holder runs on this host, in this PID
// namespace, so its pid can be looked at.
func (i LockInfo) local(host string) bool {
	self := processID()
	ns, _, _ := strings.Cut(i.Process, "/")
	selfNS, _, _ := strings.Cut(self, "/")
	return i.Host == host && i.Process != "" && self != "" && ns == selfNS
}

// stale says why the lock may be taken over, or "" if not: its holder on
// this host is gone, or it has not been refreshed for LockStaleAfter.
func (i LockInfo) stale(host string, now time.Time) string {
	if i.local(host) && i.gone() {
		return fmt.Sprintf("its process (pid %d on this host) is no longer running", i.PID)
	}
	if age := now.Sub(i.Refreshed); age > LockStaleAfter {
		return fmt.Sprintf("it was last refreshed %s ago (stale after %s)", age.Round(time.Second), LockStaleAfter)
	}
	return ""
}

// LockedError is returned by Lock when the repository is locked.
type LockedError struct {
	Repo string
	Info LockInfo // zero if the lock object could not be read
	// Alive: the holder is a running process on this host.
	Alive bool
	// TakingOver: another process is replacing this stale lock.
	TakingOver bool
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.Info.Owner != "" || e.Info.Host != "" {
		who = e.Info.String()
	}
	switch {
	case e.Alive:
		return fmt.Sprintf("repository %s is locked by %s, which is still running on this host: wait for it to finish", e.Repo, who)
	case e.TakingOver:
		return fmt.Sprintf("repository %s is locked by %s, which another process is taking over as stale: try again", e.Repo, who)
	}
	return fmt.Sprintf("repository %s is locked by %s: if that process is no longer running, remove the stale lock "+
		"(a lock not refreshed for %s is taken over automatically)", e.Repo, who, LockStaleAfter)
}

// withHint adds the command that removes a lock nobody here can vouch
// for; a live holder or a takeover under way only needs waiting for.
func (e *LockedError) withHint() error {
	if e.Alive || e.TakingOver {
		return e
	}
	return hint.Run(e, "backup", "unlock")
}

// Lock is the held repository lock. It refreshes itself until Unlock.
type Lock struct {
	r    *Repository
	info LockInfo
	// Replaced is the stale lock this one took over, or nil; the caller
	// tells the user.
	Replaced *LockInfo
	// Why Replaced was stale.
	ReplacedBecause string

	takeover string // the takeover object this holder created, if any

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Lock takes the repository's exclusive lock. If it is held, the error is
// a *LockedError saying by whom; a stale lock (see LockInfo.stale) is taken
// over instead, and named in the returned Lock's Replaced.
func (r *Repository) Lock(ctx context.Context, owner string) (*Lock, error) {
	host, _ := os.Hostname()
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	info := LockInfo{Owner: owner, Host: host, PID: os.Getpid(), Process: processID(), Time: time.Now().UTC(), Nonce: hex.EncodeToString(nonce[:])}
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	l := &Lock{r: r, info: info, stop: make(chan struct{}), done: make(chan struct{})}
	for attempt := 0; ; attempt++ {
		created, err := r.be.PutIfAbsent(ctx, lockName, data)
		if err != nil {
			return nil, fmt.Errorf("taking the lock of repository %s: %w", r, err)
		}
		if created {
			break
		}
		held, err := r.readLock(ctx)
		if errors.Is(err, backend.ErrNotFound) && attempt < 3 {
			continue // released meanwhile: try again
		}
		if err == nil && held.Nonce == info.Nonce {
			break // our own write, retried by the client after a lost reply
		}
		if err != nil && !errors.Is(err, backend.ErrNotFound) && !isUnreadableLock(err) {
			return nil, err
		}
		le := &LockedError{Repo: r.String()}
		if err != nil || attempt >= 3 {
			return nil, le.withHint()
		}
		le.Info = held
		why := held.stale(host, time.Now())
		if why == "" {
			le.Alive = held.local(host)
			return nil, le.withHint()
		}
		// Of all the processes that find this lock stale, exactly one
		// replaces it: whoever creates its takeover object.
		mine, err := r.be.PutIfAbsent(ctx, takeoverPrefix+held.Nonce, data)
		if err != nil {
			return nil, fmt.Errorf("taking over the stale lock of repository %s: %w", r, err)
		}
		if !mine {
			le.TakingOver = true
			return nil, le.withHint()
		}
		// Kept until Unlock, long after any process that read the stale
		// lock before it went has tried to take it over too.
		l.takeover = takeoverPrefix + held.Nonce
		if again, err := r.readLock(ctx); err != nil || again.Nonce != held.Nonce {
			le.TakingOver = true // replaced meanwhile (unlock, then a new lock)
			return nil, le.withHint()
		}
		for _, name := range []string{lockName, refreshedPrefix + held.Nonce} {
			if err := r.be.Delete(ctx, name); err != nil {
				return nil, fmt.Errorf("taking over the stale lock of repository %s: %w", r, err)
			}
		}
		l.Replaced, l.ReplacedBecause = &held, why
		slog.Warn(fmt.Sprintf("repository %s: taking over the stale lock of %s: %s", r, held, why))
	}
	go l.refresh()
	return l, nil
}

// lockRetried is called before each retry of LockWaiting (tests).
var lockRetried = func() {}

// LockWaiting is Lock that, while another process holds the lock, tries
// again until wait has passed, as restic's --retry-lock does: every
// second at first, backing off to every 10 s. A lock that is not held but
// cannot be taken (the backend fails) is not waited for.
func (r *Repository) LockWaiting(ctx context.Context, owner string, wait time.Duration) (*Lock, error) {
	deadline := time.Now().Add(wait)
	for delay := time.Second; ; delay = min(2*delay, 10*time.Second) {
		l, err := r.Lock(ctx, owner)
		var le *LockedError
		if err == nil || !errors.As(err, &le) {
			return l, err
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			if wait > 0 {
				err = fmt.Errorf("%w (gave up after waiting %v)", err, wait)
			}
			return nil, err
		}
		delay = min(delay, remaining)
		slog.Info(fmt.Sprintf("repository %s is locked; trying again in %v", r, delay), "holder", le.Info.String())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		lockRetried()
	}
}

// refresh records every lockRefreshEvery that the holder is alive, so
// other hosts do not take the lock over as stale.
func (l *Lock) refresh() {
	defer close(l.done)
	t := time.NewTicker(lockRefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), lockRefreshEvery)
		if l.Check(ctx) == nil {
			stamp, _ := json.Marshal(time.Now().UTC())
			// A failed refresh is retried at the next tick; a holder that
			// cannot refresh for LockStaleAfter may lose the lock, which
			// its next Check reports.
			_ = l.r.be.Put(ctx, refreshedPrefix+l.info.Nonce, stamp)
		}
		cancel()
	}
}

// Check returns nil if the lock is still this holder's, else an error
// matching ErrLockLost that says what happened (or a failure to read it).
func (l *Lock) Check(ctx context.Context) error {
	if l == nil {
		return errors.New("writing to the repository needs its lock")
	}
	held, err := l.r.readLock(ctx)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return fmt.Errorf("repository %s: %w: it is gone", l.r, ErrLockLost)
	case isUnreadableLock(err):
		return fmt.Errorf("repository %s: %w: %v", l.r, ErrLockLost, err)
	case err != nil:
		return fmt.Errorf("repository %s: checking that the lock is still held: %w", l.r, err)
	case held.Nonce != l.info.Nonce:
		return fmt.Errorf("repository %s: %w: it is now held by %s", l.r, ErrLockLost, held)
	}
	return nil
}

// Unlock stops refreshing and removes the lock if it is still this one
// (its refresh and takeover records in any case).
func (l *Lock) Unlock() error {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	ctx := context.Background()
	err := l.Check(ctx)
	if err == nil {
		err = l.r.be.Delete(ctx, lockName)
	}
	err = errors.Join(err, l.r.be.Delete(ctx, refreshedPrefix+l.info.Nonce))
	if l.takeover != "" {
		err = errors.Join(err, l.r.be.Delete(ctx, l.takeover))
	}
	return err
}

type unreadableLockError struct{ msg string }

func (e *unreadableLockError) Error() string { return e.msg }

func isUnreadableLock(err error) bool {
	var u *unreadableLockError
	return errors.As(err, &u)
}

func (r *Repository) readLock(ctx context.Context) (LockInfo, error) {
	var info LockInfo
	data, err := r.be.Get(ctx, lockName)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(data, &info); err != nil || info.Nonce == "" {
		return LockInfo{}, &unreadableLockError{fmt.Sprintf("repository %s: %s: unreadable lock (%v)", r, lockName, err)}
	}
	info.Refreshed = info.Time
	stamp, err := r.be.Get(ctx, refreshedPrefix+info.Nonce)
	var t time.Time
	switch {
	case err == nil && json.Unmarshal(stamp, &t) == nil && t.After(info.Refreshed):
		info.Refreshed = t
	case err != nil && !errors.Is(err, backend.ErrNotFound):
		return info, err
	}
	return info, nil
}

// BreakLock removes the lock and everything that belongs to it, for
// `stillpoint backup unlock`. It refuses (a *LockedError with Alive set)
// while the holder is a running process on this host. It returns the
// removed lock (zero if it was unreadable) and whether there was one.
func (r *Repository) BreakLock(ctx context.Context) (LockInfo, bool, error) {
	held, err := r.readLock(ctx)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		held = LockInfo{}
	case isUnreadableLock(err):
		held = LockInfo{}
	case err != nil:
		return held, false, err
	default:
		host, _ := os.Hostname()
		if held.local(host) && held.stale(host, time.Now()) == "" {
			return held, false, &LockedError{Repo: r.String(), Info: held, Alive: true}
		}
	}
	names, err := r.be.List(ctx, locksDir)
	if err != nil {
		return held, false, err
	}
	for _, name := range names {
		if err := r.be.Delete(ctx, name); err != nil {
			return held, false, err
		}
	}
	return held, len(names) > 0, nil
}

// processID identifies this process on this machine: its PID namespace,
// the boot and its start time, so that a later process with the same pid
// is told apart. It is "" where /proc cannot tell (not Linux).
func processID() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	boot, start := bootID(), startTime(os.Getpid())
	if boot == "" || start == "" {
		return ""
	}
	return ns + "/" + boot + "/" + start
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// startTime is field 22 of /proc/PID/stat (clock ticks after boot), ""
// if the process does not exist or cannot be read.
func startTime(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name, in parentheses, may hold spaces: count after it.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

// gone reports whether the holder of a lock taken on this host (local)
// no longer runs: the machine rebooted, its pid is free, or the pid is a
// later process's. A process that exists but cannot be read counts as
// running.
func (i LockInfo) gone() bool {
	parts := strings.SplitN(i.Process, "/", 3)
	if len(parts) != 3 || parts[1] != bootID() {
		return len(parts) == 3
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d", i.PID))
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	start := startTime(i.PID)
	return start != "" && start != parts[2]
}
