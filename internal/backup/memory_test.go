package backup_test

import (
	"context"
	"testing"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestLimitMemory: with LimitMemory a backup runs its tables under a
// memory limit of its working set and GOGC 50, unless the operator's
// GOMEMLIMIT or GOGC say otherwise, and puts the settings back after.
func TestLimitMemory(t *testing.T) {
	st := embeddedBank(t, 3000)
	testenv.CheckMemoryLimit(t, func(t *testing.T, seen func()) {
		opts := backup.Options{Mode: backup.Fence, LimitMemory: true, Progress: func(int64) { seen() }}
		if _, err := backup.Create(context.Background(), st, newRepo(t, t.TempDir(), nil), opts); err != nil {
			t.Fatal(err)
		}
	})
}
