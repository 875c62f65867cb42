package testenv

import (
	"math"
	"runtime/metrics"
	"sync"
	"testing"
)

// gcSettings reads the collector's target (GOGC) and soft memory limit.
func gcSettings() (gogc uint64, limit uint64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// CheckMemoryLimit runs job, a backup or a restore that bounds its memory
// (repo.LimitMemory) and calls seen while it works, three times: by
// default it must run under GOGC 50 and a soft limit of its working set;
// with the operator's GOGC, under that GOGC; with the operator's
// GOMEMLIMIT, under that limit; and it must put both back after.
func CheckMemoryLimit(t *testing.T, job func(t *testing.T, seen func())) {
	gogc0, limit0 := gcSettings()
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
				t.Setenv(tc.env, tc.value) // read by repo.LimitMemory; the runtime read it at start
			}
			var mu sync.Mutex // seen is called from each table's stream
			var gogc, limit uint64
			job(t, func() {
				mu.Lock()
				defer mu.Unlock()
				gogc, limit = gcSettings()
			})
			if gogc != tc.gogc {
				t.Errorf("GOGC while the tables streamed: %d, want %d", gogc, tc.gogc)
			}
			switch {
			case tc.limit && (limit < 16<<20 || limit > 512<<20):
				t.Errorf("memory limit while the tables streamed: %d bytes, want the working set (16 MiB to 512 MiB)", limit)
			case !tc.limit && limit != limit0:
				t.Errorf("memory limit while the tables streamed: %d, want it unchanged (%d)", limit, limit0)
			}
			if g, l := gcSettings(); g != gogc0 || l != limit0 {
				t.Errorf("after the job: GOGC %d, limit %d; want them back to %d, %d", g, l, gogc0, limit0)
			}
		})
	}
}
