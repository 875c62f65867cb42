package restore_test

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestRestoreLimitMemory: with LimitMemory a restore loads its tables
// under a memory limit of what its loads hold and GOGC 50, unless the
// operator's GOMEMLIMIT or GOGC say otherwise, and puts the settings back
// after (docs/performance.md, memory).
func TestRestoreLimitMemory(t *testing.T) {
	ctx := context.Background()
	gogc0, limit0 := testenv.GCSettings()
	if limit0 != math.MaxInt64 {
		t.Skipf("this test process runs with a memory limit (%d): GOMEMLIMIT is set", limit0)
	}
	nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
	src := newBank(t, testenv.Embedded(t), nss, 1500)
	man, err := backup.Create(ctx, src.st, src.repo, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
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
				t.Setenv(tc.env, tc.value) // read by repo.LimitMemory; the runtime read it at start
			}
			target := multistorage.New(testenv.Embedded(t))
			defer target.Close()
			var mu sync.Mutex // Progress is called from each table's load
			var gogc, limit uint64
			seen := func(int64) {
				mu.Lock()
				defer mu.Unlock()
				gogc, limit = testenv.GCSettings()
			}
			opts := restore.Options{LimitMemory: true, Progress: seen}
			if _, err := restore.Run(ctx, src.repo, man, restore.Stores(target), opts); err != nil {
				t.Fatal(err)
			}
			if gogc != tc.gogc {
				t.Errorf("GOGC while the tables loaded: %d, want %d", gogc, tc.gogc)
			}
			switch {
			case tc.limit && (limit < 16<<20 || limit > 512<<20):
				t.Errorf("memory limit while the tables loaded: %d bytes, want what the loads hold (16 MiB to 512 MiB)", limit)
			case !tc.limit && limit != limit0:
				t.Errorf("memory limit while the tables loaded: %d, want it unchanged (%d)", limit, limit0)
			}
			if g, l := testenv.GCSettings(); g != gogc0 || l != limit0 {
				t.Errorf("after the restore: GOGC %d, limit %d; want them back to %d, %d", g, l, gogc0, limit0)
			}
		})
	}
}
