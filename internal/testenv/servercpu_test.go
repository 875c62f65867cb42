package testenv

import (
	"testing"
	"time"
)

// TestTreeCPUCountsAChildReapedDuringTheScan: a backend that exits and is
// reaped while /proc is scanned still counts, once (the PostgreSQL
// benchmarks' server CPU once lost a whole COPY backend this way).
func TestTreeCPUCountsAChildReapedDuringTheScan(t *testing.T) {
	const parent, child = time.Second, 3 * time.Second
	for _, tc := range []struct {
		name      string
		reapAfter int // scans done before the child is reaped (-1: never)
	}{
		{"reaped before", 0},
		{"reaped during the first scan", 1},
		{"alive throughout", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scans := 0
			reaped := func() bool { return tc.reapAfter >= 0 && scans >= tc.reapAfter }
			readParent := func() (stat, error) {
				s := stat{cpu: parent}
				if reaped() {
					s.children = child
				}
				return s, nil
			}
			scanLive := func() time.Duration {
				wasAlive := !reaped()
				scans++
				if wasAlive && !reaped() {
					return child
				}
				return 0 // it left /proc before the scan reached it
			}
			got, err := treeCPU(readParent, scanLive)
			if err != nil || got != parent+child {
				t.Fatalf("treeCPU = %v, %v; want %v", got, err, parent+child)
			}
		})
	}
}
