package backup_test

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestLimitMemory: with LimitMemory a backup runs its tables under a
// memory limit of its working set and GOGC 50, unless the operator's
// GOMEMLIMIT or GOGC say otherwise, and puts the settings back after.
func TestLimitMemory(t *testing.T) {
	ctx := context.Background()
	st := embeddedBank(t, 3000)
	gogc0, limit0 := testenv.GCSettings()
	if limit0 != math.MaxInt64 {
		t.Skipf("this test process runs with a memory limit (%d): GOMEMLIMIT is set", limit0)
	}
	for _, tc := range []struct {
		name, env, value string
		limit            bool
		gogc             uint64
	}{
		{name: "default", limit: true, gogc: 50},
		{name: "GOGC set", env: "GOGC", value: "100", limit: true, gogc: gogc0},
		{name: "GOMEMLIMIT set", env: "GOMEMLIMIT", value: "1GiB", limit: false, gogc: 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(tc.env, tc.value) // read by limitMemory; the runtime read it at start
			}
			var mu sync.Mutex // Progress is called from each table's stream
			var gogc, limit uint64
			seen := func(int64) {
				mu.Lock()
				defer mu.Unlock()
				gogc, limit = testenv.GCSettings()
			}
			opts := backup.Options{Mode: backup.Fence, LimitMemory: true, Progress: seen}
			if _, err := backup.Create(ctx, st, newRepo(t, t.TempDir(), nil), opts); err != nil {
				t.Fatal(err)
			}
			if gogc != tc.gogc {
				t.Errorf("GOGC while the tables streamed: %d, want %d", gogc, tc.gogc)
			}
			switch {
			case tc.limit && (limit < 16<<20 || limit > 512<<20):
				t.Errorf("memory limit while the tables streamed: %d bytes, want the working set (16 MiB to 512 MiB)", limit)
			case !tc.limit && limit != limit0:
				t.Errorf("memory limit while the tables streamed: %d, want it unchanged (%d)", limit, limit0)
			}
			if g, l := testenv.GCSettings(); g != gogc0 || l != limit0 {
				t.Errorf("after the backup: GOGC %d, limit %d; want them back to %d, %d", g, l, gogc0, limit0)
			}
		})
	}
}
