package restore_test

import (
	"context"
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
	nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
	src := newBank(t, testenv.Embedded(t), nss, 1500)
	man, err := backup.Create(ctx, src.st, src.repo, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	testenv.CheckMemoryLimit(t, func(t *testing.T, seen func()) {
		target := multistorage.New(testenv.Embedded(t))
		defer target.Close()
		opts := restore.Options{LimitMemory: true, Progress: func(int64) { seen() }}
		if _, err := restore.Run(ctx, src.repo, man, restore.Stores(target), opts); err != nil {
			t.Fatal(err)
		}
	})
}
