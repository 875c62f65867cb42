package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/stillpoint/stillpoint/internal/pitr"
)

// Push stores one file PostgreSQL's archive_command hands over (%f is
// name, %p is path), verbatim: WAL segments, .partial segments, timeline
// .history and backup .backup files alike. Pushing a file again with the
// same content succeeds, as PostgreSQL expects after a crash between the
// copy and its acknowledgement; other content under the name fails.
func Push(ctx context.Context, logs pitr.Logs, name, path string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return fmt.Errorf("wal-push: %q is not a WAL file name (give %%f, the file name, then %%p)", name)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("wal-push %s: %w", name, err)
	}
	defer f.Close()
	if err := logs.Put(ctx, name, f); err != nil {
		return fmt.Errorf("wal-push %s: %w", name, err)
	}
	return nil
}

// Fetch writes the archived file name to path, as restore_command must
// (%f, %p). A file the archive lacks is an error wrapping
// pitr.ErrMissing and leaves nothing at path: PostgreSQL asks for files
// that may not exist (the next timeline's history) and takes a failure
// as "not there".
func Fetch(ctx context.Context, logs pitr.Logs, name, path string) error {
	tmp := path + ".stillpoint-tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("wal-fetch %s: %w", name, err)
	}
	err = logs.Get(ctx, name, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("wal-fetch %s: %w", name, err)
	}
	return nil
}

// segment is a WAL segment file name, TTTTTTTTXXXXXXXXYYYYYYYY: timeline,
// then the segment number in two halves whose low one counts segments of
// 4 GiB of WAL (so its range depends on the segment size).
type segment struct {
	tli      uint32
	hi, lo   uint32
	partial  bool
	fileName string
}

func parseSegment(name string) (segment, error) {
	base, partial := strings.CutSuffix(name, ".partial")
	if len(base) != 24 {
		return segment{}, fmt.Errorf("%q is not a WAL segment name", name)
	}
	var v [3]uint64
	for i := range v {
		n, err := strconv.ParseUint(base[i*8:i*8+8], 16, 32)
		if err != nil {
			return segment{}, fmt.Errorf("%q is not a WAL segment name", name)
		}
		v[i] = n
	}
	return segment{tli: uint32(v[0]), hi: uint32(v[1]), lo: uint32(v[2]), partial: partial, fileName: name}, nil
}

func (s segment) number(segSize uint64) uint64 { return uint64(s.hi)*(1<<32/segSize) + uint64(s.lo) }

func segmentName(tli uint32, segno, segSize uint64) string {
	per := 1 << 32 / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, segno/per, segno%per)
}

func historyName(tli uint32) string { return fmt.Sprintf("%08X.history", tli) }

func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a PostgreSQL LSN (like 0/3000060)", s)
	}
	return h<<32 | l, nil
}

// archive is what a log archive holds, by kind.
type archive struct {
	logs     pitr.Logs
	segSize  uint64
	segments map[uint32][]segment // by timeline, sorted; .partial included
	history  map[uint32]bool
}

func readArchive(ctx context.Context, logs pitr.Logs) (*archive, error) {
	names, err := logs.Names(ctx)
	if err != nil {
		return nil, err
	}
	a := &archive{logs: logs, segments: map[uint32][]segment{}, history: map[uint32]bool{}}
	for _, n := range names {
		if tli, ok := strings.CutSuffix(n, ".history"); ok {
			if t, err := strconv.ParseUint(tli, 16, 32); err == nil && len(tli) == 8 {
				a.history[uint32(t)] = true
			}
			continue
		}
		if s, err := parseSegment(n); err == nil {
			a.segments[s.tli] = append(a.segments[s.tli], s)
		}
	}
	for _, segs := range a.segments {
		slices.SortFunc(segs, func(x, y segment) int { return strings.Compare(x.fileName, y.fileName) })
		if a.segSize == 0 && !segs[0].partial {
			if a.segSize, err = fileSize(ctx, logs, segs[0].fileName); err != nil {
				return nil, err
			}
		}
	}
	if a.segSize == 0 {
		a.segSize = 16 << 20
	}
	if a.segSize&(a.segSize-1) != 0 || a.segSize < 1<<20 || a.segSize > 1<<30 {
		return nil, fmt.Errorf("the log archive's segments are %d bytes, not a WAL segment size (a power of two from 1 MiB to 1 GiB): is it a PostgreSQL archive?", a.segSize)
	}
	return a, nil
}

// fileSize is the size of an archived segment, which is the server's
// wal_segment_size (every archived segment is whole).
func fileSize(ctx context.Context, logs pitr.Logs, name string) (uint64, error) {
	var n countWriter
	if err := logs.Get(ctx, name, &n); err != nil {
		return 0, fmt.Errorf("reading %s from the log archive: %w", name, err)
	}
	return uint64(n), nil
}

type countWriter uint64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// held says whether the archive has segment segno of timeline tli, whole
// or as the .partial a promotion leaves of its old timeline.
func (a *archive) held(tli uint32, segno uint64) bool {
	name := segmentName(tli, segno, a.segSize)
	_, found := slices.BinarySearchFunc(a.segments[tli], name, func(s segment, n string) int {
		return strings.Compare(strings.TrimSuffix(s.fileName, ".partial"), n)
	})
	return found
}

// span is a stretch of one timeline that replay reads: segments first
// to last of timeline tli.
type span struct {
	tli         uint32
	first, last uint64
}

// errNotDescended: a timeline that branched off before the base, or off
// another timeline, which replay from the base cannot reach.
var errNotDescended = errors.New("does not descend from the base's timeline after its start")

// path is the segments replay from `from` (a base's start) to segment
// upTo of timeline tli reads: the base's timeline up to the segment
// before the first switch, each timeline tli descends from after it up to
// the segment before its own switch, then tli. A switch's segment is read
// from the new timeline, which holds the old one's WAL before the switch
// (PostgreSQL reads each segment from the newest timeline that has it).
// The ancestry comes from tli's history file, whose lines are every
// ancestor and the LSN where its child branched off.
func (a *archive) path(ctx context.Context, store string, from pitr.Position, tli uint32, upTo uint64) ([]span, error) {
	start, err := parseLSN(from.LSN)
	if err != nil {
		return nil, fmt.Errorf("the base's start: %w", err)
	}
	if tli == from.Timeline {
		return []span{{tli, start / a.segSize, upTo}}, nil
	}
	if !a.history[tli] {
		return nil, &pitr.GapError{Store: store, Missing: historyName(tli), Suggestion: fmt.Sprintf(": timeline %d's history file never reached the archive; replay cannot follow the switch to it", tli)}
	}
	var b bytes.Buffer
	if err := a.logs.Get(ctx, historyName(tli), &b); err != nil {
		return nil, err
	}
	var spans []span
	for _, l := range strings.Split(b.String(), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		parent, err1 := strconv.ParseUint(f[0], 10, 32)
		lsn, err2 := parseLSN(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s in the log archive: line %q is not \"timeline LSN reason\"", historyName(tli), l)
		}
		switch {
		case uint32(parent) == from.Timeline:
			if lsn < start {
				return nil, fmt.Errorf("timeline %d %w", tli, errNotDescended)
			}
			spans = append(spans, span{from.Timeline, start / a.segSize, 0})
		case len(spans) == 0:
			continue // an ancestor of the base's timeline
		default:
			spans = append(spans, span{uint32(parent), 0, 0})
		}
		// The switch's segment is the child's first.
		spans[len(spans)-1].last = lsn / a.segSize
		if len(spans) > 1 {
			spans[len(spans)-1].first = spans[len(spans)-2].last
		}
	}
	if len(spans) == 0 {
		return nil, fmt.Errorf("timeline %d %w", tli, errNotDescended)
	}
	spans = append(spans, span{tli, spans[len(spans)-1].last, upTo})
	for i := range len(spans) - 1 {
		// The switch's segment is read from the next timeline; an empty
		// span is two switches in one segment.
		spans[i].last--
		spans[i].first = min(spans[i].first, spans[i].last+1)
	}
	return spans, nil
}

// check finds the first file replay from `from` to segment upTo of
// timeline tli lacks.
func (a *archive) check(ctx context.Context, store string, from pitr.Position, tli uint32, upTo uint64) error {
	spans, err := a.path(ctx, store, from, tli, upTo)
	if err != nil {
		return err
	}
	for _, s := range spans {
		for n := s.first; n <= s.last && s.first <= s.last; n++ {
			if !a.held(s.tli, n) {
				return a.gap(store, s.tli, n, max(s.last, a.newest(s.tli)))
			}
		}
	}
	return nil
}

// newest is the newest segment of timeline tli held (0 if none).
func (a *archive) newest(tli uint32) uint64 {
	segs := a.segments[tli]
	if len(segs) == 0 {
		return 0
	}
	s, _ := parseSegment(strings.TrimSuffix(segs[len(segs)-1].fileName, ".partial"))
	return s.number(a.segSize)
}

func (a *archive) gap(store string, tli uint32, missing, end uint64) *pitr.GapError {
	e := &pitr.GapError{Store: store, Missing: segmentName(tli, missing, a.segSize)}
	if missing > 0 && a.held(tli, missing-1) {
		e.After = segmentName(tli, missing-1, a.segSize)
	}
	for n := missing + 1; n <= end; n++ {
		if a.held(tli, n) {
			e.Before = segmentName(tli, n, a.segSize)
			break
		}
	}
	if e.Before == "" {
		e.Suggestion = ": if the server still has it, it has not been archived yet (run SELECT pg_switch_wal() or wait for archive_timeout, and check archive_command's errors in the server log)"
	} else {
		e.Suggestion = ": replay cannot cross it; cuts after it restore only from a base taken after it"
	}
	return e
}

// Gaps checks the archive holds every file replay from `from` (a base's
// start) needs to reach the newest segment of every timeline that
// descends from the base's: a cut on any of them must be restorable.
func (Engine) Gaps(ctx context.Context, store string, logs pitr.Logs, from pitr.Position) error {
	a, err := readArchive(ctx, logs)
	if err != nil {
		return fmt.Errorf("store %s: %w", store, err)
	}
	tlis := []uint32{from.Timeline}
	for t := range a.segments {
		tlis = append(tlis, t)
	}
	for t := range a.history {
		tlis = append(tlis, t)
	}
	slices.Sort(tlis)
	for _, t := range slices.Compact(tlis) {
		if t < from.Timeline {
			continue
		}
		start, _ := parseLSN(from.LSN)
		err := a.check(ctx, store, from, t, max(a.newest(t), start/a.segSize))
		if errors.Is(err, errNotDescended) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// GapsTo checks the path a replay from `from` (a base's start) to the mark
// `to` reads, as Restore does: a hole after the mark does not stop a
// restore to it. Segments at the end of the path that no later file
// follows are not archived yet, not a hole (recovery itself fails if they
// never come); a missing history file is always a gap.
func (Engine) GapsTo(ctx context.Context, store string, logs pitr.Logs, from, to pitr.Position) error {
	stop, err := parseLSN(to.LSN)
	if err != nil {
		return fmt.Errorf("store %s: the cut's position: %w", store, err)
	}
	a, err := readArchive(ctx, logs)
	if err != nil {
		return fmt.Errorf("store %s: %w", store, err)
	}
	err = a.check(ctx, store, from, to.Timeline, stop/a.segSize)
	if gap := (*pitr.GapError)(nil); errors.As(err, &gap) && gap.Before == "" && !strings.HasSuffix(gap.Missing, ".history") {
		return nil
	}
	return err
}
