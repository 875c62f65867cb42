package repo

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/restic/chunker"

	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

// Tests chunk with one fixed polynomial (restic's test polynomial), so
// the number of chunks a test stream makes never varies from run to run.
func init() {
	newPolynomial = func() (chunker.Pol, error) { return 0x3DA3358B4DC173, nil }
}

// Chunker returns the chunking parameters.
func (r *Repository) Chunker() ChunkerParams { return r.chunk }

// Size returns the number and total stored size of the chunks (data/).
func (r *Repository) Size(ctx context.Context) (objects int, bytes int64, err error) {
	infos, err := r.be.ListInfo(ctx, dataPrefix)
	if err != nil {
		return 0, 0, err
	}
	for _, in := range infos {
		objects++
		bytes += in.Size
	}
	return objects, bytes, nil
}

// ProcessID is this process's id in lock objects.
func ProcessID() string { return processID() }

// SetLockRefresh makes locks refresh every d for the rest of the test.
func SetLockRefresh(t *testing.T, d time.Duration) {
	old := lockRefreshEvery
	lockRefreshEvery = d
	t.Cleanup(func() { lockRefreshEvery = old })
}

// DowngradeToV1 rewrites the config of the encrypted repository r as
// format 1 wrote it, whose chunks are named by their plain SHA-256; with
// sealed false only the plain version changes, as a tamperer could.
func DowngradeToV1(t *testing.T, r *Repository, sealed bool) {
	t.Helper()
	ctx := context.Background()
	cfg, err := readConfig(ctx, r.be)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Version = 1
	if sealed {
		secret, _ := json.Marshal(secretConfig{Check: keyCheck, ID: cfg.ID, Chunker: r.chunk})
		if cfg.Secret, err = r.codec.encode(secretName, secret, false); err != nil {
			t.Fatal(err)
		}
	}
	obj, err := encodeConfig(cfg)
	if err == nil {
		err = r.be.Put(ctx, configName, obj)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// FormatOf returns the format version of the repository on be.
func FormatOf(t *testing.T, be backend.Backend) int {
	t.Helper()
	cfg, err := readConfig(context.Background(), be)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Version
}

// ReadLock returns the current lock.
func (r *Repository) ReadLock(ctx context.Context) (LockInfo, error) { return r.readLock(ctx) }

// OnLockRetry calls fn before each retry of LockWaiting, for the rest of
// the test.
func OnLockRetry(t *testing.T, fn func()) {
	lockRetried = fn
	t.Cleanup(func() { lockRetried = func() {} })
}

// UploadBytes is SaveStream's budget of plaintext bytes in flight.
const UploadBytes = uploadBytes

// PlainFrameHeader is what an unencrypted, uncompressed frame adds to its
// plaintext.
const PlainFrameHeader = headerLen + innerHdrLen

// OnWaitingForRoom sets SaveStream's hook for the rest of the test: f is
// told when a chunk starts waiting for room in the upload budget (true)
// and when it has it (false).
func OnWaitingForRoom(t *testing.T, f func(waiting bool)) {
	waitingForRoom = f
	t.Cleanup(func() { waitingForRoom = nil })
}
