package repo_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/repo/backend/mem"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// backends are what every repository test runs on: memory, so they
// neither wait on a disk or a server nor flake with one (the backend
// conformance suite runs every real backend).
var backends = []struct {
	name string
	open func(t *testing.T) backend.Backend
}{
	{"mem", func(t *testing.T) backend.Backend { return mem.New() }},
}

func forEachBackend(t *testing.T, f func(t *testing.T, be backend.Backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.open(t)) })
	}
}

var testKey = []byte("correct horse battery staple")

func initRepo(t *testing.T, be backend.Backend, key []byte) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), be, key)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return r
}

// testData returns size deterministic bytes that mix random blocks,
// repeats of earlier blocks and compressible text rows, like table dumps.
func testData(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	out := make([]byte, 0, size+1<<20)
	var blocks [][]byte
	row := 0
	for len(out) < size {
		switch r.IntN(3) {
		case 0:
			b := make([]byte, 256<<10+r.IntN(768<<10))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			blocks = append(blocks, b)
			out = append(out, b...)
		case 1:
			if len(blocks) > 0 {
				out = append(out, blocks[r.IntN(len(blocks))]...)
			}
		case 2:
			n := len(out) + 128<<10 + r.IntN(384<<10)
			for len(out) < n {
				out = fmt.Appendf(out, "row %d\tcustomer-%d\t%d.%02d\t2026-11-%02d\n", row, r.IntN(5000), r.IntN(100000), r.IntN(100), 1+r.IntN(28))
				row++
			}
		}
	}
	return out[:size]
}

func save(t *testing.T, r *repo.Repository, data []byte) repo.Stream {
	t.Helper()
	var seen atomic.Int64
	st, err := r.SaveStream(context.Background(), bytes.NewReader(data), func(n int64) { seen.Add(n) })
	if err != nil {
		t.Fatalf("SaveStream: %v", err)
	}
	if st.Bytes != int64(len(data)) || seen.Load() != int64(len(data)) {
		t.Fatalf("SaveStream of %d bytes: Stream.Bytes = %d, progress total = %d", len(data), st.Bytes, seen.Load())
	}
	return st
}

func readAll(t *testing.T, r *repo.Repository, chunks []string) ([]byte, error) {
	t.Helper()
	rc := r.OpenStream(context.Background(), chunks)
	defer rc.Close()
	return io.ReadAll(rc)
}

func distinct(ids []string) int {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return len(m)
}

// TestSaveStreamDedupe: a 20 MiB round trip, a second save of the same
// data storing nothing, and a one-byte change storing only a few chunks.
func TestSaveStreamDedupe(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		forEachBackend(t, func(t *testing.T, be backend.Backend) {
			var key []byte
			if encrypted {
				key = testKey
			}
			t.Logf("encrypted=%v", encrypted)
			ctx := context.Background()
			r := initRepo(t, be, key)
			data := testData(1, 20<<20)

			first := save(t, r, data)
			minChunks, maxChunks := len(data)/repo.DefaultMaxChunk, len(data)/repo.DefaultMinChunk
			if n := len(first.Chunks); n < minChunks || n > maxChunks {
				t.Fatalf("%d chunks for 20 MiB, want %d..%d", n, minChunks, maxChunks)
			}
			if first.NewChunks != distinct(first.Chunks) {
				t.Fatalf("first save stored %d chunks, want the %d distinct ones", first.NewChunks, distinct(first.Chunks))
			}
			if first.NewBytes >= first.Bytes {
				t.Fatalf("stored %d bytes for %d plaintext bytes: repeats and text should compress", first.NewBytes, first.Bytes)
			}
			objects, size, err := r.Size(ctx)
			if err != nil || objects != first.NewChunks || size != first.NewBytes {
				t.Fatalf("Size = %d objects, %d bytes, %v; want %d, %d", objects, size, err, first.NewChunks, first.NewBytes)
			}
			got, err := readAll(t, r, first.Chunks)
			if err != nil {
				t.Fatalf("reading back: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes that differ from the %d saved", len(got), len(data))
			}

			second := save(t, r, data)
			if second.NewChunks != 0 || second.NewBytes != 0 || !slices.Equal(second.Chunks, first.Chunks) {
				t.Fatalf("second save of the same data: %d new chunks, %d new bytes, same chunks %v; want 0, 0, true",
					second.NewChunks, second.NewBytes, slices.Equal(second.Chunks, first.Chunks))
			}

			// A fresh Repository value learns the existing chunks from the listing.
			r2, err := repo.Open(ctx, be, key)
			if err != nil {
				t.Fatal(err)
			}
			if again := save(t, r2, data); again.NewChunks != 0 {
				t.Fatalf("save through a newly opened repository stored %d chunks, want 0", again.NewChunks)
			}

			changed := bytes.Clone(data)
			changed[len(changed)/2] ^= 0xff
			third := save(t, r2, changed)
			if third.NewChunks < 1 || third.NewChunks > 3 {
				t.Fatalf("a 1-byte change stored %d new chunks, want 1..3", third.NewChunks)
			}
			if third.NewBytes > 3*(repo.DefaultMaxChunk+1024) {
				t.Fatalf("a 1-byte change stored %d new bytes (first save: %d)", third.NewBytes, first.NewBytes)
			}
			t.Logf("20 MiB: %d chunks, %d stored bytes; 1-byte change: %d new chunks, %d new bytes (%.2f%%)",
				len(first.Chunks), first.NewBytes, third.NewChunks, third.NewBytes, 100*float64(third.NewBytes)/float64(first.NewBytes))
			got, err = readAll(t, r2, third.Chunks)
			if err != nil || !bytes.Equal(got, changed) {
				t.Fatalf("reading back the changed stream: equal=%v err=%v", bytes.Equal(got, changed), err)
			}
		})
	}
}

// TestSaveStreamConcurrent: streams saved at once, sharing chunks, each
// stored once and all readable.
func TestSaveStreamConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		r := initRepo(t, be, nil)
		shared := testData(2, 6<<20)
		inputs := [][]byte{
			shared,
			shared,
			append(testData(3, 2<<20), shared...),
			testData(4, 5<<20),
		}
		streams := make([]repo.Stream, len(inputs))
		errs := make([]error, len(inputs))
		var wg sync.WaitGroup
		for i, in := range inputs {
			wg.Go(func() { streams[i], errs[i] = r.SaveStream(ctx, bytes.NewReader(in), nil) })
		}
		wg.Wait()
		all := map[string]bool{}
		newChunks := 0
		for i := range inputs {
			if errs[i] != nil {
				t.Fatalf("stream %d: %v", i, errs[i])
			}
			for _, id := range streams[i].Chunks {
				all[id] = true
			}
			newChunks += streams[i].NewChunks
		}
		if newChunks != len(all) {
			t.Fatalf("the streams stored %d chunks in all, want each of the %d distinct chunks once", newChunks, len(all))
		}
		if objects, _, err := r.Size(ctx); err != nil || objects != len(all) {
			t.Fatalf("repository holds %d chunks (%v), want %d", objects, err, len(all))
		}
		for i, in := range inputs {
			got, err := readAll(t, r, streams[i].Chunks)
			if err != nil || !bytes.Equal(got, in) {
				t.Fatalf("stream %d read back: equal=%v err=%v", i, bytes.Equal(got, in), err)
			}
		}
	})
}

func TestEmptyStream(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		r := initRepo(t, be, nil)
		st := save(t, r, nil)
		if len(st.Chunks) != 0 || st.NewChunks != 0 {
			t.Fatalf("empty stream: %+v", st)
		}
		got, err := readAll(t, r, nil)
		if err != nil || len(got) != 0 {
			t.Fatalf("reading an empty stream: %q, %v", got, err)
		}
	})
}

func TestSaveStreamReadError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		r := initRepo(t, be, nil)
		boom := errors.New("table scan failed")
		rd := io.MultiReader(bytes.NewReader(testData(5, 3<<20)), iotestErrReader{boom})
		_, err := r.SaveStream(context.Background(), rd, nil)
		if !errors.Is(err, boom) {
			t.Fatalf("SaveStream of a failing reader: %v, want it to wrap %v", err, boom)
		}
	})
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestEncryption(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		r := initRepo(t, be, testKey)
		if !r.Encrypted() {
			t.Fatal("Init with a key gave an unencrypted repository")
		}
		secret := bytes.Repeat([]byte("TOP-SECRET-ROW "), 100_000)
		st := save(t, r, secret)
		if err := r.SaveManifest(ctx, lockOf(t, r), "b1", []byte(`{"manifest":"TOP-SECRET-MANIFEST"}`)); err != nil {
			t.Fatal(err)
		}
		names, err := be.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			obj, err := be.Get(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(obj, []byte("TOP-SECRET")) || bytes.Contains(obj, []byte("polynomial")) {
				t.Fatalf("object %s holds plaintext", name)
			}
		}

		cases := []struct {
			name    string
			key     []byte
			is      error
			mention []string
		}{
			{"wrong key", []byte("wrong"), repo.ErrWrongKey, []string{"wrong key for repository", be.String()}},
			{"no key", nil, repo.ErrKeyRequired, []string{"encrypted", "--key-file", repo.EnvKey, be.String()}},
		}
		for _, c := range cases {
			_, err := repo.Open(ctx, be, c.key)
			if !errors.Is(err, c.is) {
				t.Fatalf("%s: Open = %v, want %v", c.name, err, c.is)
			}
			for _, m := range c.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("%s: %q does not mention %q", c.name, err, m)
				}
			}
			if strings.Contains(err.Error(), string(testKey)) {
				t.Fatalf("%s: error reveals the key", c.name)
			}
		}
		r2, err := repo.Open(ctx, be, testKey)
		if err != nil {
			t.Fatalf("Open with the right key: %v", err)
		}
		if r2.ID() != r.ID() || r2.Chunker() != r.Chunker() {
			t.Fatal("reopened repository has another id or chunker")
		}
		got, err := readAll(t, r2, st.Chunks)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("read back with the right key: equal=%v err=%v", bytes.Equal(got, secret), err)
		}
		m, err := r2.LoadManifest(ctx, "b1")
		if err != nil || !bytes.Contains(m, []byte("TOP-SECRET-MANIFEST")) {
			t.Fatalf("LoadManifest: %q, %v", m, err)
		}
	})
}

// TestChunkNames: encrypted repositories name chunks by a keyed hash, so
// the same data under two keys shares no name and no name is the SHA-256
// of a content; deduplication within a repository stays. Unencrypted and
// format 1 repositories keep SHA-256 names.
func TestChunkNames(t *testing.T) {
	ctx := context.Background()
	data := testData(11, 3<<20)
	sha := map[string]bool{}
	{
		r := initRepo(t, mem.New(), nil)
		st := save(t, r, data)
		for _, id := range st.Chunks {
			chunk, err := r.LoadChunk(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(chunk)
			if hex.EncodeToString(sum[:]) != id {
				t.Fatalf("unencrypted chunk %s is not named by its SHA-256", id)
			}
			sha[id] = true
		}
	}
	cases := []struct {
		name       string
		key        []byte
		v1         bool
		wantSHA    bool
		wantFormat int // older binaries read format 1
	}{
		{"unencrypted", nil, false, true, 1},
		{"key A", testKey, false, false, 2},
		{"key B", []byte("another key"), false, false, 2},
		{"format 1, key A", testKey, true, true, 1},
	}
	seen := map[string]string{} // chunk name -> case that made it
	t.Run("format lowered by a tamperer", func(t *testing.T) {
		be := mem.New()
		repo.DowngradeToV1(t, initRepo(t, be, testKey), false)
		var ce *repo.CorruptError
		if _, err := repo.Open(ctx, be, testKey); !errors.As(err, &ce) || !strings.Contains(err.Error(), "altered") {
			t.Fatalf("Open of a config whose plain version was lowered: %v, want a *CorruptError saying it was altered", err)
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			be := mem.New()
			r := initRepo(t, be, c.key)
			if c.v1 {
				repo.DowngradeToV1(t, r, true)
				var err error
				if r, err = repo.Open(ctx, be, c.key); err != nil {
					t.Fatal(err)
				}
			}
			if f := repo.FormatOf(t, be); f != c.wantFormat {
				t.Fatalf("format %d, want %d", f, c.wantFormat)
			}
			st := save(t, r, data)
			if again := save(t, r, data); again.NewChunks != 0 {
				t.Fatalf("saving the same data again stored %d chunks", again.NewChunks)
			}
			if got, err := readAll(t, r, st.Chunks); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back: %v", err)
			}
			if problems, err := r.CheckChunks(ctx, refs(st), true, nil); err != nil || len(problems) != 0 {
				t.Fatalf("CheckChunks: %v %v", problems, err)
			}
			for _, id := range st.Chunks {
				if sha[id] != c.wantSHA {
					t.Fatalf("chunk %s: named by SHA-256 = %v, want %v", id, sha[id], c.wantSHA)
				}
				if other, ok := seen[id]; ok && other != c.name && !c.wantSHA {
					t.Fatalf("chunk %s has the same name with %s and with %s", id, c.name, other)
				}
				seen[id] = c.name
			}
		})
	}
}

func TestKeyForUnencryptedRepository(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		initRepo(t, be, nil)
		_, err := repo.Open(context.Background(), be, testKey)
		if !errors.Is(err, repo.ErrKeyNotNeeded) || !strings.Contains(err.Error(), "not encrypted") || !strings.Contains(err.Error(), be.String()) {
			t.Fatalf("Open of an unencrypted repository with a key: %v", err)
		}
	})
}

func TestInitOpen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		if _, err := repo.Open(ctx, be, nil); !errors.Is(err, repo.ErrNoRepository) || !strings.Contains(err.Error(), be.String()) {
			t.Fatalf("Open of an empty location: %v, want ErrNoRepository naming it", err)
		}
		r, created, err := repo.OpenOrInit(ctx, be, testKey)
		if err != nil || !created {
			t.Fatalf("OpenOrInit on an empty location: created=%v, %v", created, err)
		}
		if _, err := repo.Init(ctx, be, testKey); !errors.Is(err, repo.ErrRepositoryExists) {
			t.Fatalf("Init over a repository: %v, want ErrRepositoryExists", err)
		}
		if _, err := repo.Init(ctx, be, nil); !errors.Is(err, repo.ErrRepositoryExists) {
			t.Fatalf("unencrypted Init over a repository: %v, want ErrRepositoryExists", err)
		}
		r2, created, err := repo.OpenOrInit(ctx, be, testKey)
		if err != nil || created || r2.ID() != r.ID() {
			t.Fatalf("OpenOrInit on a repository: created=%v, %v, same id %v", created, err, err == nil && r2.ID() == r.ID())
		}
	})
}

func TestInitRefusesNonEmptyLocation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		if err := be.Put(context.Background(), "photos/cat.jpg", []byte("meow")); err != nil {
			t.Fatal(err)
		}
		_, err := repo.Init(context.Background(), be, nil)
		if err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), be.String()) {
			t.Fatalf("Init into a non-empty location: %v", err)
		}
	})
}

// middle is the offset flip takes for the middle of the object.
const middle = math.MinInt

// flip inverts one byte of a stored object, at offset off from the start
// (off >= 0), from the end (off < 0), or in the middle.
func flip(t *testing.T, be backend.Backend, name string, off int) {
	t.Helper()
	ctx := context.Background()
	obj, err := be.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case off == middle:
		off = len(obj) / 2
	case off < 0:
		off += len(obj)
	}
	obj[off] ^= 0x01
	if err := be.Put(ctx, name, obj); err != nil {
		t.Fatal(err)
	}
}

func wantCorrupt(t *testing.T, err error, object string) {
	t.Helper()
	var ce *repo.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *CorruptError for %s", err, object)
	}
	if ce.Object != object || !strings.Contains(err.Error(), object) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("CorruptError %q names %q, want %s", err, ce.Object, object)
	}
}

// TestFlippedByte: a flipped byte anywhere in a chunk or manifest object is
// detected and named.
func TestFlippedByte(t *testing.T) {
	offsets := []struct {
		name string
		off  int
	}{
		{"magic", 0},
		{"version", 4},
		{"flags", 5},
		{"length or nonce", 8},
		{"checksum or ciphertext", 20},
		{"middle", middle},
		{"last", -1},
	}
	for _, encrypted := range []bool{false, true} {
		forEachBackend(t, func(t *testing.T, be backend.Backend) {
			ctx := context.Background()
			var key []byte
			if encrypted {
				key = testKey
			}
			r := initRepo(t, be, key)
			data := testData(6, 3<<20)
			st := save(t, r, data)
			manifest := bytes.Repeat([]byte(`{"table":"accounts","chunks":["..."]}`), 200)
			for _, o := range offsets {
				chunk := st.Chunks[0]
				name := repo.ChunkName(chunk)
				orig, err := be.Get(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				flip(t, be, name, o.off)
				_, err = readAll(t, r, st.Chunks)
				wantCorrupt(t, err, name)
				_, err = r.LoadChunk(ctx, chunk)
				wantCorrupt(t, err, name)
				if err := be.Put(ctx, name, orig); err != nil {
					t.Fatal(err)
				}

				id := "m-" + strings.ReplaceAll(o.name, " ", "-")
				if err := r.SaveManifest(ctx, lockOf(t, r), id, manifest); err != nil {
					t.Fatal(err)
				}
				flip(t, be, repo.ManifestName(id), o.off)
				_, err = r.LoadManifest(ctx, id)
				wantCorrupt(t, err, repo.ManifestName(id))
			}
			// Restored chunks read fine again.
			got, err := readAll(t, r, st.Chunks)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("after restoring the objects: equal=%v err=%v", bytes.Equal(got, data), err)
			}
		})
	}
}

// TestSwappedObjects: an intact object stored under another name is
// detected (the name is authenticated, or the content hash checked).
func TestSwappedObjects(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		forEachBackend(t, func(t *testing.T, be backend.Backend) {
			ctx := context.Background()
			var key []byte
			if encrypted {
				key = testKey
			}
			r := initRepo(t, be, key)
			a, b := save(t, r, []byte("chunk a")), save(t, r, []byte("chunk b"))
			objA, err := be.Get(ctx, repo.ChunkName(a.Chunks[0]))
			if err != nil {
				t.Fatal(err)
			}
			if err := be.Put(ctx, repo.ChunkName(b.Chunks[0]), objA); err != nil {
				t.Fatal(err)
			}
			_, err = r.LoadChunk(ctx, b.Chunks[0])
			wantCorrupt(t, err, repo.ChunkName(b.Chunks[0]))

			if err := r.SaveManifest(ctx, lockOf(t, r), "one", []byte("1")); err != nil {
				t.Fatal(err)
			}
			if err := r.SaveManifest(ctx, lockOf(t, r), "two", []byte("2")); err != nil {
				t.Fatal(err)
			}
			one, _ := be.Get(ctx, repo.ManifestName("one"))
			if err := be.Put(ctx, repo.ManifestName("two"), one); err != nil {
				t.Fatal(err)
			}
			got, err := r.LoadManifest(ctx, "two")
			if encrypted {
				wantCorrupt(t, err, repo.ManifestName("two"))
			} else if err != nil || string(got) != "1" {
				// Unencrypted manifests carry no name binding; checksums
				// still hold, so the swap reads as the other manifest.
				t.Fatalf("unencrypted swapped manifest: %q, %v", got, err)
			}
		})
	}
}

func TestDamagedConfig(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		initRepo(t, be, testKey)
		flip(t, be, "config", 40)
		_, err := repo.Open(context.Background(), be, testKey)
		wantCorrupt(t, err, "config")
	})
}

func TestManifests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		r := initRepo(t, be, testKey)
		for _, id := range []string{"2026-11-24T21.00.00Z", "b2", "a_1"} {
			if err := r.SaveManifest(ctx, lockOf(t, r), id, []byte("manifest "+id)); err != nil {
				t.Fatalf("SaveManifest(%s): %v", id, err)
			}
		}
		ids, err := r.ListManifests(ctx)
		if err != nil || !slices.Equal(ids, []string{"2026-11-24T21.00.00Z", "a_1", "b2"}) {
			t.Fatalf("ListManifests = %v, %v", ids, err)
		}
		if got, err := r.LoadManifest(ctx, "b2"); err != nil || string(got) != "manifest b2" {
			t.Fatalf("LoadManifest(b2) = %q, %v", got, err)
		}
		if err := r.SaveManifest(ctx, lockOf(t, r), "b2", []byte("manifest b2")); err != nil {
			t.Fatalf("saving the same manifest again: %v", err)
		}
		if err := r.SaveManifest(ctx, lockOf(t, r), "b2", []byte("other")); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("overwriting a manifest: %v, want an already-exists error", err)
		}
		for _, bad := range []string{"", "..", "a/b", "a b", "x\n"} {
			if err := r.SaveManifest(ctx, lockOf(t, r), bad, []byte("x")); err == nil {
				t.Errorf("SaveManifest(%q) succeeded", bad)
			}
		}
		if err := r.DeleteManifest(ctx, lockOf(t, r), "b2"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.LoadManifest(ctx, "b2"); !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), "backups/b2") {
			t.Fatalf("LoadManifest of a deleted backup: %v", err)
		}
		if err := r.DeleteManifest(ctx, lockOf(t, r), "b2"); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("DeleteManifest of a missing backup: %v", err)
		}
		if ids, _ := r.ListManifests(ctx); len(ids) != 2 {
			t.Fatalf("after delete: %v", ids)
		}
	})
}

// held are the locks tests took with lockOf, by repository location.
var held sync.Map

// lockOf returns the lock of r's repository, taken on first use and
// released when the test ends.
func lockOf(t *testing.T, r *repo.Repository) *repo.Lock {
	t.Helper()
	if lk, ok := held.Load(r.String()); ok {
		return lk.(*repo.Lock)
	}
	lk, err := r.Lock(context.Background(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	held.Store(r.String(), lk)
	t.Cleanup(func() {
		held.Delete(r.String())
		if err := lk.Unlock(); err != nil {
			t.Errorf("Unlock: %v", err)
		}
	})
	return lk
}

func refs(streams ...repo.Stream) map[string]bool {
	m := map[string]bool{}
	for _, s := range streams {
		for _, id := range s.Chunks {
			m[id] = true
		}
	}
	return m
}

func TestCheckChunks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		r := initRepo(t, be, testKey)
		st := save(t, r, testData(7, 6<<20))
		referenced := refs(st)
		var calls, lastDone, lastTotal int
		problems, err := r.CheckChunks(ctx, referenced, true, func(done, total int) { calls++; lastDone, lastTotal = done, total })
		if err != nil || len(problems) != 0 {
			t.Fatalf("CheckChunks of a healthy repository: %v, %v", problems, err)
		}
		if calls == 0 || lastDone != lastTotal || lastTotal != len(referenced) {
			t.Fatalf("progress: %d calls, last %d/%d; want it to end at %d chunks", calls, lastDone, lastTotal, len(referenced))
		}
		if len(st.Chunks) < 3 {
			t.Fatalf("need 3 chunks, have %d", len(st.Chunks))
		}
		deleted, damaged := repo.ChunkName(st.Chunks[0]), repo.ChunkName(st.Chunks[1])
		if err := be.Delete(ctx, deleted); err != nil {
			t.Fatal(err)
		}
		flip(t, be, damaged, -10)

		cases := []struct {
			readData bool
			want     []string // objects named, in order
		}{
			{false, []string{deleted}},
			{true, []string{deleted, damaged}},
		}
		for _, c := range cases {
			problems, err := r.CheckChunks(ctx, referenced, c.readData, nil)
			if err != nil {
				t.Fatalf("CheckChunks(readData=%v): %v", c.readData, err)
			}
			var got []string
			for _, p := range problems {
				var ce *repo.CorruptError
				var me *repo.MissingError
				switch {
				case errors.As(p, &ce):
					got = append(got, ce.Object)
				case errors.As(p, &me):
					got = append(got, me.Object)
					if !errors.Is(p, backend.ErrNotFound) {
						t.Errorf("%v does not match ErrNotFound", p)
					}
				default:
					t.Errorf("problem %v is neither CorruptError nor MissingError", p)
				}
			}
			slices.Sort(c.want)
			if !slices.Equal(got, c.want) {
				t.Fatalf("CheckChunks(readData=%v) found %v, want %v", c.readData, got, c.want)
			}
		}
	})
}

func TestPrune(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		r := initRepo(t, be, nil)
		shared := testData(8, 6<<20) // > DefaultMaxChunk: at least one whole chunk is shared
		keep := save(t, r, append(bytes.Clone(shared), testData(9, 2<<20)...))
		drop := save(t, r, append(bytes.Clone(shared), testData(10, 2<<20)...))
		referenced := refs(keep)
		var onlyDrop []string
		for id := range refs(drop) {
			if !referenced[id] {
				onlyDrop = append(onlyDrop, id)
			}
		}
		if len(onlyDrop) == 0 || len(onlyDrop) == distinct(drop.Chunks) {
			t.Fatalf("test data: %d of %d chunks exclusive to the dropped stream; want some but not all", len(onlyDrop), distinct(drop.Chunks))
		}
		before, beforeBytes, _ := r.Size(ctx)
		removed, freed, err := r.Prune(ctx, lockOf(t, r), referenced)
		if err != nil {
			t.Fatal(err)
		}
		after, afterBytes, _ := r.Size(ctx)
		if removed != len(onlyDrop) || after != before-removed || freed != beforeBytes-afterBytes || freed <= 0 {
			t.Fatalf("Prune removed %d (want %d), freed %d; size went %d/%d -> %d/%d", removed, len(onlyDrop), freed, before, beforeBytes, after, afterBytes)
		}
		for _, id := range onlyDrop {
			if ok, _ := be.Exists(ctx, repo.ChunkName(id)); ok {
				t.Fatalf("unreferenced chunk %s survived Prune", id)
			}
		}
		got, err := readAll(t, r, keep.Chunks)
		if err != nil || !bytes.Equal(got, append(bytes.Clone(shared), testData(9, 2<<20)...)) {
			t.Fatalf("referenced stream after Prune: %v", err)
		}
		if problems, err := r.CheckChunks(ctx, referenced, true, nil); err != nil || len(problems) != 0 {
			t.Fatalf("CheckChunks after Prune: %v %v", problems, err)
		}
		// Chunks pruned are stored again when saved again.
		again := save(t, r, append(bytes.Clone(shared), testData(10, 2<<20)...))
		if again.NewChunks != len(onlyDrop) {
			t.Fatalf("re-saving the pruned stream stored %d chunks, want %d", again.NewChunks, len(onlyDrop))
		}
	})
}

func TestLock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		r := initRepo(t, be, nil)
		lk, err := r.Lock(ctx, "backup nightly")
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Lock(ctx, "prune")
		var le *repo.LockedError
		if !errors.As(err, &le) || !le.Alive {
			t.Fatalf("second Lock: %v, want a *LockedError with the holder alive", err)
		}
		for _, want := range []string{`"backup nightly"`, "since", "still running on this host", be.String()} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q does not mention %q", err, want)
			}
		}
		if le.Info.Owner != "backup nightly" || le.Info.PID != os.Getpid() || le.Info.Time.IsZero() {
			t.Errorf("LockedError.Info = %+v", le.Info)
		}
		// backup unlock refuses to remove the lock of a live process on
		// this host (this one), and leaves it working.
		if _, _, err := r.BreakLock(ctx); !errors.As(err, &le) || !le.Alive {
			t.Fatalf("BreakLock of a live holder: %v, want a refusal", err)
		}
		if err := lk.Check(ctx); err != nil {
			t.Fatalf("the lock after a refused BreakLock: %v", err)
		}
		if err := lk.Unlock(); err != nil {
			t.Fatal(err)
		}
		if names, _ := be.List(ctx, "locks/"); len(names) != 0 {
			t.Fatalf("Unlock left %v", names)
		}
		lk2, err := r.Lock(ctx, "prune")
		if err != nil {
			t.Fatalf("Lock after unlock: %v", err)
		}
		// Removed behind the holder's back (backup unlock on another
		// host): the holder finds out, and its Unlock leaves the new lock.
		if err := be.Delete(ctx, "locks/repository"); err != nil {
			t.Fatal(err)
		}
		if err := lk2.Check(ctx); !errors.Is(err, repo.ErrLockLost) {
			t.Fatalf("Check of a removed lock: %v, want ErrLockLost", err)
		}
		lk3, err := r.Lock(ctx, "third")
		if err != nil {
			t.Fatalf("Lock after the lock was removed: %v", err)
		}
		if err := lk2.Unlock(); !errors.Is(err, repo.ErrLockLost) || !strings.Contains(err.Error(), `"third"`) {
			t.Fatalf("Unlock of a replaced lock: %v, want ErrLockLost naming third", err)
		}
		if names, _ := be.List(ctx, "locks/"); len(names) != 1 {
			t.Fatalf("after the replaced holder's Unlock the locks are %v, want only third's", names)
		}
		if info, err := r.ReadLock(ctx); err != nil || info.Owner != "third" {
			t.Fatalf("after a stale unlock the lock is %+v, %v; want third's", info, err)
		}
		if err := lk3.Unlock(); err != nil {
			t.Fatal(err)
		}
	})
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// plantLock writes a lock object as another process would have.
func plantLock(t *testing.T, be backend.Backend, info repo.LockInfo, refreshed time.Time) {
	t.Helper()
	ctx := context.Background()
	if info.Nonce == "" {
		info.Nonce = fmt.Sprintf("planted-%d", time.Now().UnixNano())
	}
	data, _ := json.Marshal(info)
	if err := be.Put(ctx, "locks/repository", data); err != nil {
		t.Fatal(err)
	}
	if !refreshed.IsZero() {
		stamp, _ := json.Marshal(refreshed)
		if err := be.Put(ctx, "locks/refreshed-"+info.Nonce, stamp); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStaleLocks: which locks another process takes over by itself, and
// which need backup unlock.
func TestStaleLocks(t *testing.T) {
	host, _ := os.Hostname()
	self := repo.ProcessID()
	if self == "" {
		t.Skip("no /proc: processes cannot be told apart")
	}
	ns, boot, _ := strings.Cut(self, "/")
	boot, _, _ = strings.Cut(boot, "/")
	now := time.Now().UTC()
	old := now.Add(-repo.LockStaleAfter - time.Minute)
	cases := []struct {
		name      string
		info      repo.LockInfo
		refreshed time.Time
		takenOver string // "" if Lock must fail
	}{
		{"this host, process gone", repo.LockInfo{Owner: "killed", Host: host, PID: deadPID(t), Process: ns + "/" + boot + "/1", Time: now}, time.Time{}, "no longer running"},
		{"this host, pid reused", repo.LockInfo{Owner: "killed", Host: host, PID: os.Getpid(), Process: ns + "/" + boot + "/1", Time: now}, time.Time{}, "no longer running"},
		{"this host, before a reboot", repo.LockInfo{Owner: "killed", Host: host, PID: os.Getpid(), Process: ns + "/another-boot/1", Time: now}, time.Time{}, "no longer running"},
		{"this host, alive", repo.LockInfo{Owner: "alive", Host: host, PID: os.Getpid(), Process: self, Time: old}, now, ""},
		{"other PID namespace", repo.LockInfo{Owner: "container", Host: host, PID: deadPID(t), Process: "pid:[1]/" + boot + "/1", Time: now}, time.Time{}, ""},
		{"other host, fresh", repo.LockInfo{Owner: "remote", Host: "elsewhere", PID: 1, Time: now}, time.Time{}, ""},
		{"other host, refreshed lately", repo.LockInfo{Owner: "remote", Host: "elsewhere", PID: 1, Time: old}, now, ""},
		{"other host, not refreshed for long", repo.LockInfo{Owner: "remote", Host: "elsewhere", PID: 1, Time: old}, old, "last refreshed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			be := mem.New()
			r := initRepo(t, be, nil)
			plantLock(t, be, c.info, c.refreshed)
			lk, err := r.Lock(ctx, "next backup")
			if c.takenOver == "" {
				var le *repo.LockedError
				if !errors.As(err, &le) || le.Info.Owner != c.info.Owner {
					t.Fatalf("Lock over a live lock: %v, want a *LockedError naming %s", err, c.info.Owner)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lock over a stale lock: %v", err)
			}
			if lk.Replaced == nil || lk.Replaced.Owner != c.info.Owner || !strings.Contains(lk.ReplacedBecause, c.takenOver) {
				t.Fatalf("Lock took over %+v because %q; want %s because %q", lk.Replaced, lk.ReplacedBecause, c.info.Owner, c.takenOver)
			}
			if info, err := r.ReadLock(ctx); err != nil || info.Owner != "next backup" {
				t.Fatalf("after a takeover the lock is %+v, %v", info, err)
			}
			if err := lk.Unlock(); err != nil {
				t.Fatal(err)
			}
			if names, _ := be.List(ctx, "locks/"); len(names) != 0 {
				t.Fatalf("after the new holder's Unlock, %v are left", names)
			}
		})
	}
}

// TestBreakLock: backup unlock removes every lock but a live one of this
// host.
func TestBreakLock(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := initRepo(t, be, nil)
	if _, had, err := r.BreakLock(ctx); err != nil || had {
		t.Fatalf("BreakLock of an unlocked repository: %v, %v", had, err)
	}
	plantLock(t, be, repo.LockInfo{Owner: "remote", Host: "elsewhere", PID: 1, Time: time.Now()}, time.Now())
	if err := be.Put(ctx, "locks/takeover-x", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	info, had, err := r.BreakLock(ctx)
	if err != nil || !had || info.Owner != "remote" {
		t.Fatalf("BreakLock of another host's lock = %+v, %v, %v", info, had, err)
	}
	if names, _ := be.List(ctx, "locks/"); len(names) != 0 {
		t.Fatalf("BreakLock left %v", names)
	}
	if err := be.Put(ctx, "locks/repository", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if _, had, err := r.BreakLock(ctx); err != nil || !had {
		t.Fatalf("BreakLock of an unreadable lock: %v, %v", had, err)
	}
}

// TestLockRefresh: a holder refreshes its lock, so no one takes it over
// as stale while it runs.
func TestLockRefresh(t *testing.T) {
	repo.SetLockRefresh(t, time.Millisecond)
	ctx := context.Background()
	be := mem.New()
	r := initRepo(t, be, nil)
	lk, err := r.Lock(ctx, "long backup")
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock()
	taken, _ := r.ReadLock(ctx)
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := r.ReadLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Refreshed.After(taken.Time) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock was never refreshed")
		}
		runtime.Gosched()
	}
}

// onPut runs a hook after every successful PutIfAbsent of a name.
type onPut struct {
	backend.Backend
	name string
	fn   func()
}

func (b onPut) PutIfAbsent(ctx context.Context, name string, data []byte) (bool, error) {
	created, err := b.Backend.PutIfAbsent(ctx, name, data)
	if err == nil && created && name == b.name {
		b.fn()
	}
	return created, err
}

// TestLostLock: a holder whose lock was removed records nothing and
// deletes nothing, also when the lock goes while the manifest is written.
func TestLostLock(t *testing.T) {
	ctx := context.Background()
	removeLock := func(be backend.Backend) func() {
		return func() { be.Delete(ctx, "locks/repository") }
	}
	cases := []struct {
		name string
		act  func(r *repo.Repository, be backend.Backend, lk *repo.Lock) error
	}{
		{"save manifest", func(r *repo.Repository, be backend.Backend, lk *repo.Lock) error {
			removeLock(be)()
			return r.SaveManifest(ctx, lk, "b", []byte("m"))
		}},
		{"lost while the manifest is written", func(r *repo.Repository, be backend.Backend, lk *repo.Lock) error {
			r2, err := repo.Open(ctx, onPut{be, repo.ManifestName("b"), removeLock(be)}, nil)
			if err != nil {
				return err
			}
			return r2.SaveManifest(ctx, lk, "b", []byte("m"))
		}},
		{"delete manifest", func(r *repo.Repository, be backend.Backend, lk *repo.Lock) error {
			removeLock(be)()
			return r.DeleteManifest(ctx, lk, "a")
		}},
		{"prune", func(r *repo.Repository, be backend.Backend, lk *repo.Lock) error {
			removeLock(be)()
			_, _, err := r.Prune(ctx, lk, nil)
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			be := mem.New()
			r := initRepo(t, be, nil)
			lk, err := r.Lock(ctx, "backup")
			if err != nil {
				t.Fatal(err)
			}
			st := save(t, r, testData(3, 1<<20))
			if err := r.SaveManifest(ctx, lk, "a", []byte("a")); err != nil {
				t.Fatal(err)
			}
			before, _ := be.List(ctx, "")
			if err := c.act(r, be, lk); !errors.Is(err, repo.ErrLockLost) {
				t.Fatalf("with the lock lost: %v, want ErrLockLost", err)
			}
			after, _ := be.List(ctx, "")
			after = slices.DeleteFunc(after, func(n string) bool { return strings.HasPrefix(n, "locks/") })
			before = slices.DeleteFunc(before, func(n string) bool { return strings.HasPrefix(n, "locks/") })
			if !slices.Equal(before, after) {
				t.Fatalf("objects changed with the lock lost: %v -> %v", before, after)
			}
			if len(st.Chunks) == 0 {
				t.Fatal("no chunks saved")
			}
		})
	}
}

func TestLockRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		initRepo(t, be, nil)
		const n = 8
		// Separate Repository values, like separate processes.
		repos := make([]*repo.Repository, n)
		for i := range repos {
			var err error
			if repos[i], err = repo.Open(ctx, be, nil); err != nil {
				t.Fatal(err)
			}
		}
		host, _ := os.Hostname()
		for round := range 4 {
			if round >= 2 {
				// Racing to take over a stale lock: still one winner.
				plantLock(t, be, repo.LockInfo{Owner: "dead", Host: host, PID: deadPID(t), Process: repo.ProcessID(), Time: time.Now()}, time.Time{})
			}
			var wg sync.WaitGroup
			locks := make([]*repo.Lock, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					locks[i], errs[i] = repos[i].Lock(ctx, fmt.Sprintf("owner-%d", i))
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i := range n {
				var le *repo.LockedError
				switch {
				case errs[i] == nil:
					if winner >= 0 {
						t.Fatalf("round %d: owner-%d and owner-%d both hold the lock", round, winner, i)
					}
					winner = i
				case errors.As(errs[i], &le):
					if le.Info.Owner == fmt.Sprintf("owner-%d", i) {
						t.Fatalf("round %d: owner-%d is told it is locked by itself", round, i)
					}
				default:
					t.Fatalf("round %d: owner-%d: %v", round, i, errs[i])
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: nobody got the lock", round)
			}
			if err := locks[winner].Unlock(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := writeFile(p, content); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, content string
		want          string
		wantErr       string
	}{
		{"plain", "secret", "secret", ""},
		{"newline", "secret\n", "secret", ""},
		{"crlf", "secret\r\n", "secret", ""},
		{"binary", "\x00\x01\xff", "\x00\x01\xff", ""},
		{"empty", "", "", "is empty"},
		{"only newline", "\n", "", "is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(c.name, " ", "_"), c.content)
			got, err := repo.LoadKey(p)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("LoadKey: %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("LoadKey = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	if _, err := repo.LoadKey(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("LoadKey of a missing file succeeded")
	}
	// A key others can read is refused, saying how to fix it. Modes, not
	// access, decide: root reads every file.
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o666} {
		p := write(fmt.Sprintf("mode%o", mode), "secret")
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.LoadKey(p); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("LoadKey of a key file with mode %o: %v; want a refusal saying chmod 600", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		p := write(fmt.Sprintf("mode%o", mode), "secret")
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.LoadKey(p); err != nil {
			t.Errorf("LoadKey of a key file with mode %o: %v", mode, err)
		}
	}
	t.Setenv(repo.EnvKey, "from-env\n")
	if k, err := repo.ResolveKey(""); err != nil || string(k) != "from-env" {
		t.Fatalf("ResolveKey from env = %q, %v", k, err)
	}
	if k, err := repo.ResolveKey(write("file", "from-file")); err != nil || string(k) != "from-file" {
		t.Fatalf("ResolveKey from a file = %q, %v (a key file wins over the environment)", k, err)
	}
	t.Setenv(repo.EnvKey, "")
	if k, err := repo.ResolveKey(""); err != nil || k != nil {
		t.Fatalf("ResolveKey without a key = %q, %v; want nil", k, err)
	}

	// A key file and the environment holding the same text open the same
	// repository.
	be, err := backend.Open(context.Background(), filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	fileKey, _ := repo.LoadKey(write("k", "same words\n"))
	initRepo(t, be, fileKey)
	t.Setenv(repo.EnvKey, "same words")
	if _, err := repo.Open(context.Background(), be, repo.KeyFromEnv()); err != nil {
		t.Fatalf("the env key does not open a repository made with the same key file: %v", err)
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// TestLockWaiting: a command told to wait for the lock gets it once the
// holder lets go, and gives up, saying so, when the wait runs out first.
func TestLockWaiting(t *testing.T) {
	ctx := context.Background()
	r := initRepo(t, mem.New(), nil)
	holder, err := r.Lock(ctx, "backup nightly")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.LockWaiting(ctx, "prune", 0)
	var le *repo.LockedError
	if !errors.As(err, &le) || strings.Contains(err.Error(), "gave up") {
		t.Fatalf("LockWaiting with no wait: %v, want the plain *LockedError at once", err)
	}
	retries := 0
	repo.OnLockRetry(t, func() {
		if retries++; retries == 1 {
			holder.Unlock() // the holder finishes while the waiter waits
		}
	})
	lk, err := r.LockWaiting(ctx, "prune", time.Minute)
	if err != nil || retries != 1 {
		t.Fatalf("LockWaiting after the holder let go: %v after %d retries, want the lock after 1", err, retries)
	}
	// Whether a retry fits in 1ms depends on the machine's load: only the
	// giving up is asserted.
	_, err = r.LockWaiting(ctx, "delete", time.Millisecond)
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "gave up after waiting 1ms") {
		t.Fatalf("LockWaiting past its wait: %v, want a *LockedError that says it gave up", err)
	}
	lk.Unlock()
}

// gatedBackend holds every chunk upload until the test releases it, so the
// test sees every upload SaveStream has in flight at once.
type gatedBackend struct {
	backend.Backend
	arrived chan int      // plaintext bytes of an upload that started
	release chan struct{} // lets one upload finish
}

func (g *gatedBackend) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "data/") {
		g.arrived <- len(data) - repo.PlainFrameHeader
		<-g.release
	}
	return g.Backend.Put(ctx, name, data)
}

// eofReader closes eof once its reader is exhausted.
type eofReader struct {
	io.Reader
	eof  chan struct{}
	once sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.Reader.Read(p)
	if err == io.EOF {
		e.once.Do(func() { close(e.eof) })
	}
	return n, err
}

// TestSaveStreamBoundsBytesInFlight: SaveStream never has more than
// UploadBytes of chunks waiting for the backend, whatever their sizes (it
// used to bound their number: four chunks of up to 4 MiB, each in a buffer
// of 4 MiB), and does keep several in flight.
func TestSaveStreamBoundsBytesInFlight(t *testing.T) {
	g := &gatedBackend{Backend: mem.New(), arrived: make(chan int), release: make(chan struct{})}
	r := initRepo(t, g, nil)
	waiting := make(chan bool)
	repo.OnWaitingForRoom(t, func(w bool) { waiting <- w })
	// Random bytes: incompressible, so each frame is its plaintext plus a
	// fixed header, and the test can add up the plaintext in flight.
	data := make([]byte, 40<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	rd := &eofReader{Reader: bytes.NewReader(data), eof: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := r.SaveStream(context.Background(), rd, nil)
		done <- err
	}()
	var pending []int
	inFlight, most, mostCount, waits := 0, 0, 0, 0
	blocked, eof := false, rd.eof
	for {
		// Release the oldest upload only when SaveStream waits for room or
		// has read everything, so the budget alone limits what is in flight.
		var release chan struct{}
		if len(pending) > 0 && (blocked || eof == nil) {
			release = g.release
		}
		select {
		case n := <-g.arrived:
			pending = append(pending, n)
			inFlight += n
			most, mostCount = max(most, inFlight), max(mostCount, len(pending))
			if inFlight > repo.UploadBytes {
				t.Fatalf("%d bytes of chunks in flight (%d chunks), more than the budget of %d", inFlight, len(pending), repo.UploadBytes)
			}
		case release <- struct{}{}:
			inFlight -= pending[0]
			pending = pending[1:]
		case blocked = <-waiting:
			if blocked {
				waits++
			}
		case <-eof:
			eof = nil
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if len(pending) > 0 {
				t.Fatalf("SaveStream returned with %d uploads unfinished", len(pending))
			}
			if mostCount < 2 || waits == 0 {
				t.Fatalf("at most %d chunks in flight, %d waits for room: the budget was never filled", mostCount, waits)
			}
			t.Logf("at most %d bytes in %d chunks in flight; %d waits for room", most, mostCount, waits)
			return
		}
	}
}
