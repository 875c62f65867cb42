package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

// UnlockCommand is what a user runs to remove a stale lock.
const UnlockCommand = "stillpoint backup unlock"

// LockInfo is the content of locks/repository (plain JSON).
type LockInfo struct {
	Owner string    `json:"owner"` // what holds it, e.g. "backup 2026-11-24T21:00:00Z"
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Time  time.Time `json:"time"`
	Nonce string    `json:"nonce"` // tells this holder's lock from a later one
}

// LockedError is returned by Lock when the repository is locked.
type LockedError struct {
	Repo string
	Info LockInfo // zero if the lock object could not be read
	// Age is how long the lock has been held (informational: a lock is
	// never considered stale automatically).
	Age time.Duration
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.Info.Owner != "" || e.Info.Host != "" {
		who = fmt.Sprintf("%q (host %s, pid %d)", e.Info.Owner, e.Info.Host, e.Info.PID)
	}
	since := ""
	if !e.Info.Time.IsZero() {
		since = fmt.Sprintf(" since %s (%s ago)", e.Info.Time.Format(time.RFC3339), e.Age.Round(time.Second))
	}
	return fmt.Sprintf("repository %s is locked by %s%s: if that process is no longer running, remove the stale lock with `%s`",
		e.Repo, who, since, UnlockCommand)
}

// Lock takes the repository's exclusive lock by creating locks/repository
// atomically (create-exclusive). If it is held, the error is a
// *LockedError saying by whom and since when. unlock removes the lock if
// it is still this one.
func (r *Repository) Lock(ctx context.Context, owner string) (unlock func() error, err error) {
	host, _ := os.Hostname()
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	info := LockInfo{Owner: owner, Host: host, PID: os.Getpid(), Time: time.Now().UTC(), Nonce: hex.EncodeToString(nonce[:])}
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
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
		le := &LockedError{Repo: r.String()}
		if err == nil {
			le.Info, le.Age = held, time.Since(held.Time)
		}
		return nil, le
	}
	return func() error {
		held, err := r.readLock(context.Background())
		if errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("repository %s: the lock was removed by someone else while held", r)
		}
		if err != nil {
			return err
		}
		if held.Nonce != info.Nonce {
			return fmt.Errorf("repository %s: the lock was replaced by %q (host %s, pid %d) while held; left it in place", r, held.Owner, held.Host, held.PID)
		}
		return r.be.Delete(context.Background(), lockName)
	}, nil
}

// ReadLock returns the current lock, or an error matching
// backend.ErrNotFound when the repository is not locked.
func (r *Repository) ReadLock(ctx context.Context) (LockInfo, error) { return r.readLock(ctx) }

func (r *Repository) readLock(ctx context.Context) (LockInfo, error) {
	var info LockInfo
	data, err := r.be.Get(ctx, lockName)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("repository %s: %s: unreadable lock (%v)", r, lockName, err)
	}
	return info, nil
}

// ForceUnlock removes the lock whoever holds it (for `stillpoint backup
// unlock`, after the user made sure the holder is gone).
func (r *Repository) ForceUnlock(ctx context.Context) error {
	return r.be.Delete(ctx, lockName)
}
