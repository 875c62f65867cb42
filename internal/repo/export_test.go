package repo

import (
	"context"
	"testing"
	"time"

	"github.com/restic/chunker"
)

// Tests chunk with one fixed polynomial (restic's test polynomial), so
// the number of chunks a test stream makes never varies from run to run.
func init() {
	newPolynomial = func() (chunker.Pol, error) { return 0x3DA3358B4DC173, nil }
}

// ID returns the repository's random id.
func (r *Repository) ID() string { return r.cfg.ID }

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
