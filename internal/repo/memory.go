package repo

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
)

// gcSlack is room above the working set for the garbage a backup's or a
// restore's streams make between collections (rows, chunk copies, frames).
const gcSlack = 4 << 20

// gcPercent is the GOGC of a backup or a restore: the heap grows by half
// its live size between collections, not by all of it. The live heap is
// small (the working set), so collecting twice as often costs little CPU
// (docs/performance.md, memory).
const gcPercent = 50

// LimitMemory sets the soft memory limit (runtime/debug.SetMemoryLimit) to
// the memory the process holds now, after a collection, plus work (what
// the job's streams and pipelines need) and gcSlack, and the collector's
// target to gcPercent; GOMEMLIMIT and GOGC, where set, win. Without them
// the heap doubles its live size before each collection and the pages it
// freed go back to the system late; with them a job's peak stays near its
// working set, which does not grow with the tables (docs/performance.md,
// memory). For a process that runs one job at a time (the command line);
// what calls it loads what it keeps (such as the known chunks) first. It
// returns a function restoring both settings.
func LimitMemory(job string, work int64) (undo func()) {
	undoGC := func() {}
	if os.Getenv("GOGC") == "" {
		prev := debug.SetGCPercent(gcPercent)
		undoGC = func() { debug.SetGCPercent(prev) }
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return undoGC
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	held := int64(ms.Sys - ms.HeapIdle) // live heap, stacks, the runtime's own
	limit := held + work + gcSlack
	prev := debug.SetMemoryLimit(limit)
	slog.Info(job+": memory limit", "limit_mib", limit>>20, "held_mib", held>>20, "work_mib", work>>20)
	return func() { debug.SetMemoryLimit(prev); undoGC() }
}

// LoadMemory is what streams reading at once (OpenStream) hold at most:
// each its read-ahead chunks and the one being read, as plaintext, and one
// stored object being decoded.
func (r *Repository) LoadMemory(streams int) int64 {
	return int64(streams) * (readAhead + 2) * int64(r.chunk.MaxSize)
}
