package testenv

import (
	"testing"
	"time"
)

// Await polls cond until it holds, failing the test after five minutes:
// the way to wait for an event that gives no signal of its own. The
// deadline only catches a hang; it is not a timing assertion, so it is
// generous enough for a machine whose cores are busy with other tests.
func Await(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
