package pitr

import "context"

// GapsToChecker is an Engine that can check only the log files a replay
// to one position reads, so that a hole after a cut neither refuses a
// restore to it nor makes `cut list` call it unrestorable (docs/pitr-archiving.md).
// Engines without it are checked from the base's start to the newest file
// archived (Gaps).
type GapsToChecker interface {
	// GapsTo checks that logs hold every file a replay from `from` to
	// `to` reads: a missing one with a later file held is a *GapError;
	// files not archived yet (none held after them) are not a hole.
	GapsTo(ctx context.Context, store string, logs Logs, from, to Position) error
}

// replayGaps checks what a replay of store from `from` to `to` needs.
func replayGaps(ctx context.Context, e Engine, store string, logs Logs, from, to Position) error {
	if g, ok := e.(GapsToChecker); ok {
		return g.GapsTo(ctx, store, logs, from, to)
	}
	return e.Gaps(ctx, store, logs, from)
}
