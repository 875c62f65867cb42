// Package repo is Stillpoint's backup repository: a deduplicating,
// checksummed, optionally encrypted store of content-defined chunks on a
// backend (a local directory or S3-compatible storage, package backend).
//
// Layout (object names on the backend):
//
//	config              repository parameters (JSON in a checksummed frame)
//	data/XX/ID          a chunk; ID is the hex SHA-256 of its plaintext
//	                    (encrypted: HMAC-SHA256 under a key derived from
//	                    the repository key, config.go), XX its first two
//	                    hex digits
//	backups/ID          a backup manifest (opaque bytes to this package),
//	                    written last by the caller: a backup without a
//	                    manifest is never listed
//	locks/...           the exclusive lock (plain JSON, lock.go)
//
// Every chunk and manifest is framed (object.go): zstd-compressed when
// that helps, SHA-256 of the plaintext checked on every read, and with a
// key AES-256-GCM encrypted with the object name as additional data. A
// damaged object gives a *CorruptError naming it.
//
// Keys: a key file (LoadKey) or STILLPOINT_REPO_KEY (KeyFromEnv); see
// config.go for the key derivation. Keys are never printed.
package repo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/restic/chunker"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/stillpoint/stillpoint/internal/hint"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

// Errors matched with errors.Is; the returned errors name the repository.
var (
	// ErrNoRepository: the location holds no repository (no config).
	ErrNoRepository = errors.New("no Stillpoint repository here (no config object)")
	// ErrRepositoryExists: Init over an existing repository.
	ErrRepositoryExists = errors.New("a Stillpoint repository already exists here")
	// ErrKeyRequired: the repository is encrypted and no key was given.
	ErrKeyRequired = errors.New("this repository is encrypted: give the key with --key-file or " + EnvKey)
	// ErrWrongKey: the key does not open the repository.
	ErrWrongKey = errors.New("wrong key")
	// ErrKeyNotNeeded: a key was given for an unencrypted repository.
	ErrKeyNotNeeded = errors.New("this repository is not encrypted, but a key was given (--key-file or " + EnvKey + "): " +
		"drop the key, or create a new, encrypted repository elsewhere")
)

var errNotFound = backend.ErrNotFound

// uploadBytes bounds the plaintext bytes of the chunks being compressed,
// encrypted and uploaded per Repository (shared by all concurrent
// SaveStream calls; at least one chunk of MaxSize): with their frames that
// is at most twice as much memory, whatever the chunks' sizes
// (docs/performance.md, memory). deleteSlots is how many deletes a prune
// runs at once; readAhead is how many chunks a stream reader fetches ahead.
const (
	uploadBytes = 4 << 20
	deleteSlots = 4
	readAhead   = 3
)

// Repository is an open repository. Its methods are safe for concurrent
// use.
type Repository struct {
	be    backend.Backend
	cfg   configFile
	chunk ChunkerParams
	codec *codec
	// idKey is the HMAC key naming chunks (encrypted repositories of
	// version 2 on); nil: chunks are named by their SHA-256.
	idKey []byte

	uploads *semaphore.Weighted // plaintext bytes in flight, uploadBytes
	bufs    sync.Pool           // *[]byte chunker buffers of cap MaxSize

	loadMu sync.Mutex // serialises loading known
	mu     sync.Mutex // guards known, loaded, inflight
	known  map[string]struct{}
	loaded bool
	flying map[string]*flight
}

// flight is an upload in progress, so concurrent streams producing the
// same chunk upload it once and all wait for it.
type flight struct {
	done chan struct{}
	err  error
}

// Stream describes a saved stream.
type Stream struct {
	Chunks    []string // chunk IDs in order
	Bytes     int64    // plaintext bytes
	NewChunks int      // chunks this call stored (not already in the repository)
	NewBytes  int64    // stored (framed, compressed) bytes of those chunks
}

// newPolynomial picks each new repository's chunker polynomial (random, as
// restic does, so chunk boundaries do not reveal content across
// repositories); tests fix it so chunk counts are deterministic.
var newPolynomial = chunker.RandomPolynomial

// Init creates a repository on be: encrypted with key, or unencrypted when
// key is nil. It refuses to write over an existing repository or into a
// location that holds other objects.
func Init(ctx context.Context, be backend.Backend, key []byte) (*Repository, error) {
	if key != nil && len(key) == 0 {
		return nil, fmt.Errorf("repository %s: %w", be, errEmptyKey)
	}
	if ok, err := be.Exists(ctx, configName); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("repository %s: %w", be, ErrRepositoryExists)
	}
	if names, err := be.List(ctx, ""); err != nil {
		return nil, err
	} else if len(names) > 0 {
		return nil, fmt.Errorf("repository %s: the location is not empty (it holds %s, but no repository config): choose an empty location",
			be, names[0])
	}
	pol, err := newPolynomial()
	if err != nil {
		return nil, err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	// Unencrypted repositories stay format 1 (nothing changed for them),
	// so older binaries still read them.
	version := 1
	if key != nil {
		version = keyedIDVersion
	}
	cfg := configFile{
		Version:   version,
		ID:        hex.EncodeToString(id[:]),
		Created:   time.Now().UTC().Truncate(time.Second),
		Encrypted: key != nil,
	}
	params := ChunkerParams{Polynomial: pol, MinSize: DefaultMinChunk, MaxSize: DefaultMaxChunk, AverageBits: DefaultAverageBits}
	c := &codec{repo: be.String()}
	var idKey []byte
	if key == nil {
		cfg.Chunker = &params
	} else {
		if cfg.KDF, err = newKDF(); err != nil {
			return nil, err
		}
		k, err := deriveKeys(key, cfg.KDF)
		if err != nil {
			return nil, err
		}
		c.aead, idKey = k.aead, k.chunkID
		secret, err := json.Marshal(secretConfig{Check: keyCheck, ID: cfg.ID, Chunker: params, Version: version})
		if err != nil {
			return nil, err
		}
		if cfg.Secret, err = c.encode(secretName, secret, false); err != nil {
			return nil, err
		}
	}
	obj, err := encodeConfig(&cfg)
	if err != nil {
		return nil, err
	}
	created, err := be.PutIfAbsent(ctx, configName, obj)
	if err != nil {
		return nil, err
	}
	if !created {
		return nil, fmt.Errorf("repository %s: %w", be, ErrRepositoryExists)
	}
	return newRepository(be, cfg, params, c, idKey), nil
}

// Open opens the repository on be with key (nil for an unencrypted one).
func Open(ctx context.Context, be backend.Backend, key []byte) (*Repository, error) {
	cfg, err := readConfig(ctx, be)
	if err != nil {
		return nil, err
	}
	c, params, idKey, err := openConfig(be, cfg, key)
	if err != nil {
		return nil, err
	}
	if cfg.Encrypted && cfg.Version < keyedIDVersion {
		slog.Warn(fmt.Sprintf("repository %s (format %d) names its chunks by the SHA-256 of their content, which anyone who can list it can match against a guess: "+
			"back up into a new repository to get keyed names", be, cfg.Version))
	}
	return newRepository(be, *cfg, params, c, idKey), nil
}

// OpenOrInit opens the repository on be, creating it first if there is
// none. created tells which happened.
func OpenOrInit(ctx context.Context, be backend.Backend, key []byte) (r *Repository, created bool, err error) {
	r, err = Open(ctx, be, key)
	if !errors.Is(err, ErrNoRepository) {
		return r, false, err
	}
	r, err = Init(ctx, be, key)
	if errors.Is(err, ErrRepositoryExists) { // lost a race with another init
		r, err = Open(ctx, be, key)
		return r, false, err
	}
	return r, err == nil, err
}

func readConfig(ctx context.Context, be backend.Backend) (*configFile, error) {
	obj, err := be.Get(ctx, configName)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("repository %s: %w", be, ErrNoRepository)
	}
	if err != nil {
		return nil, err
	}
	c := &codec{repo: be.String()}
	plain, _, err := c.decode(configName, obj)
	if err != nil {
		return nil, err
	}
	var cfg configFile
	if err := json.Unmarshal(plain, &cfg); err != nil {
		return nil, c.corrupt(configName, "invalid JSON (%v)", err)
	}
	if cfg.Version > repoVersion {
		return nil, fmt.Errorf("repository %s: format version %d is newer than this Stillpoint supports (%d): upgrade Stillpoint",
			be, cfg.Version, repoVersion)
	}
	if cfg.Version < 1 || cfg.ID == "" {
		return nil, c.corrupt(configName, "no version or id")
	}
	return &cfg, nil
}

// openConfig checks key against cfg and returns the codec, the chunker
// parameters and the chunk naming key (nil: SHA-256 names).
func openConfig(be backend.Backend, cfg *configFile, key []byte) (*codec, ChunkerParams, []byte, error) {
	c := &codec{repo: be.String()}
	var params ChunkerParams
	var idKey []byte
	switch {
	case !cfg.Encrypted && key != nil:
		return nil, params, nil, fmt.Errorf("repository %s: %w", be, ErrKeyNotNeeded)
	case !cfg.Encrypted:
		if cfg.Chunker == nil {
			return nil, params, nil, c.corrupt(configName, "no chunker parameters")
		}
		params = *cfg.Chunker
	case key == nil:
		return nil, params, nil, fmt.Errorf("repository %s: %w", be, ErrKeyRequired)
	case len(key) == 0:
		return nil, params, nil, fmt.Errorf("repository %s: %w", be, errEmptyKey)
	default:
		k, err := deriveKeys(key, cfg.KDF)
		if err != nil {
			return nil, params, nil, c.corrupt(configName, "%v", err)
		}
		c.aead = k.aead
		plain, _, err := c.decode(secretName, cfg.Secret)
		var ce *CorruptError
		if errors.As(err, &ce) && strings.HasPrefix(ce.Reason, "authentication failed") {
			// The config frame's own checksum held, so the sealed part is
			// intact: the key is wrong.
			return nil, params, nil, fmt.Errorf("%w for repository %s", ErrWrongKey, be)
		}
		if err != nil {
			return nil, params, nil, c.corrupt(configName, "sealed part: %v", err)
		}
		var sec secretConfig
		if err := json.Unmarshal(plain, &sec); err != nil || sec.Check != keyCheck || sec.ID != cfg.ID {
			return nil, params, nil, c.corrupt(configName, "sealed part does not belong to this repository")
		}
		// The sealed version decides the chunk names: the plain one is
		// only checksummed, and a downgrade to plain SHA-256 names must
		// not go unnoticed.
		if sealed := max(sec.Version, 1); sealed != cfg.Version {
			return nil, params, nil, c.corrupt(configName, "format version %d differs from the sealed one (%d): the config was altered", cfg.Version, sealed)
		}
		if cfg.Version >= keyedIDVersion {
			idKey = k.chunkID
		}
		params = sec.Chunker
	}
	if err := params.validate(); err != nil {
		return nil, params, nil, c.corrupt(configName, "%v", err)
	}
	return c, params, idKey, nil
}

func newRepository(be backend.Backend, cfg configFile, params ChunkerParams, c *codec, idKey []byte) *Repository {
	r := &Repository{
		be:      be,
		cfg:     cfg,
		chunk:   params,
		codec:   c,
		idKey:   idKey,
		uploads: semaphore.NewWeighted(int64(max(uploadBytes, params.MaxSize))),
		flying:  map[string]*flight{},
	}
	maxSize := int(params.MaxSize)
	r.bufs.New = func() any { b := make([]byte, 0, maxSize); return &b }
	return r
}

// Encrypted reports whether objects are encrypted.
// ID is the repository's random id, fixed when it was created.
func (r *Repository) ID() string { return r.cfg.ID }

func (r *Repository) Encrypted() bool { return r.cfg.Encrypted }

// String returns the location.
func (r *Repository) String() string { return r.be.String() }

// chunkID names a chunk by its plaintext.
func (r *Repository) chunkID(plain []byte) string {
	if r.idKey == nil {
		sum := sha256.Sum256(plain)
		return hex.EncodeToString(sum[:])
	}
	h := hmac.New(sha256.New, r.idKey)
	h.Write(plain)
	return hex.EncodeToString(h.Sum(nil))
}

// plainSum is the SHA-256 of chunk id's plaintext: its name, where chunks
// are named by it (unencrypted repositories, and encrypted ones of
// format 1), which saves hashing each chunk a second time.
func (r *Repository) plainSum(id string, plain []byte) [sha256.Size]byte {
	var sum [sha256.Size]byte
	if r.idKey == nil {
		if n, err := hex.Decode(sum[:], []byte(id)); err == nil && n == len(sum) {
			return sum
		}
	}
	return sha256.Sum256(plain)
}

// ChunkName returns the object name of chunk id: data/XX/ID.
func ChunkName(id string) string {
	if len(id) < 2 {
		return dataPrefix + id
	}
	return dataPrefix + id[:2] + "/" + id
}

// ManifestName returns the object name of backup id: backups/ID.
func ManifestName(id string) string { return backupsDir + id }

func validChunkID(id string) bool {
	if len(id) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// chunkIDFromName returns the id of a data/XX/ID name, or "".
func chunkIDFromName(name string) string {
	rest, ok := strings.CutPrefix(name, dataPrefix)
	if !ok || len(rest) != 3+2*sha256.Size || rest[2] != '/' {
		return ""
	}
	id := rest[3:]
	if !validChunkID(id) || id[:2] != rest[:2] {
		return ""
	}
	return id
}

// LoadKnown lists the repository's chunks, which SaveStream otherwise does
// on its first call, so a caller can see the heap they take first.
func (r *Repository) LoadKnown(ctx context.Context) error { return r.loadKnown(ctx) }

// SaveMemory is about how much memory SaveStream needs with streams streams
// at once: each stream's chunker buffer (MaxSize) and read buffer, the
// chunks in flight with their frames, and zstd's encoders (one per core,
// object.go). Calls share the upload budget and the encoders.
func (r *Repository) SaveMemory(streams int) int64 {
	const chunkerReadBuf = 512 << 10            // restic/chunker's
	const encoderMemory = encoderWindow + 1<<20 // history, tables, block buffers
	budget := int64(max(uploadBytes, r.chunk.MaxSize))
	return int64(streams)*(int64(r.chunk.MaxSize)+chunkerReadBuf) + 2*budget + int64(runtime.GOMAXPROCS(0))*encoderMemory
}

// loadKnown lists data/ once per Repository.
func (r *Repository) loadKnown(ctx context.Context) error {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	r.mu.Lock()
	loaded := r.loaded
	r.mu.Unlock()
	if loaded {
		return nil
	}
	names, err := r.be.List(ctx, dataPrefix)
	if err != nil {
		return err
	}
	known := make(map[string]struct{}, len(names))
	for _, n := range names {
		if id := chunkIDFromName(n); id != "" {
			known[id] = struct{}{}
		}
	}
	r.mu.Lock()
	r.known, r.loaded = known, true
	r.mu.Unlock()
	return nil
}

func (r *Repository) getBuf() *[]byte  { return r.bufs.Get().(*[]byte) }
func (r *Repository) putBuf(b *[]byte) { *b = (*b)[:0]; r.bufs.Put(b) }

// SaveStream splits rd into content-defined chunks and stores the ones the
// repository does not have yet, with at most uploadBytes of chunks in
// flight per Repository. It returns once every chunk of the stream is
// stored. progress, if not nil, is called (from the calling goroutine) with
// the number of plaintext bytes just consumed from rd. Concurrent calls are
// safe and share the dedupe state: a chunk two streams produce at once is
// uploaded once.
//
// The caller should hold the repository lock: the known-chunk set is
// loaded once per Repository and a concurrent prune could invalidate it.
func (r *Repository) SaveStream(ctx context.Context, rd io.Reader, progress func(n int64)) (Stream, error) {
	var st Stream
	if err := r.loadKnown(ctx); err != nil {
		return st, err
	}
	g, gctx := errgroup.WithContext(ctx)
	var statsMu sync.Mutex
	ch := chunker.NewWithBoundaries(rd, r.chunk.Polynomial, r.chunk.MinSize, r.chunk.MaxSize)
	ch.SetAverageBits(r.chunk.AverageBits)
	// The chunker fills one buffer of MaxSize per stream; a chunk to
	// upload is copied out into a buffer of its own size, so what waits
	// for the upload is bounded by bytes, not by MaxSize per chunk. These
	// copies and their frames are left to the garbage collector: pooled
	// by size they were kept once per size (more memory, measured), and
	// allocating them costs little next to compressing them.
	buf := r.getBuf()
	defer r.putBuf(buf)
	var readErr error
	for gctx.Err() == nil {
		c, err := ch.Next(*buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("reading the stream to back up: %w", err)
			break
		}
		id := r.chunkID(c.Data)
		st.Chunks = append(st.Chunks, id)
		st.Bytes += int64(c.Length)
		if progress != nil {
			progress(int64(c.Length))
		}

		r.mu.Lock()
		if _, ok := r.known[id]; ok {
			r.mu.Unlock()
			continue
		}
		if f := r.flying[id]; f != nil {
			r.mu.Unlock()
			g.Go(func() error {
				select {
				case <-f.done:
					if f.err != nil {
						return fmt.Errorf("chunk %s (uploaded by a concurrent stream): %w", id, f.err)
					}
					return nil
				case <-gctx.Done():
					return gctx.Err()
				}
			})
			continue
		}
		f := &flight{done: make(chan struct{})}
		r.flying[id] = f
		r.mu.Unlock()

		// Wait for room in the upload budget: this is what bounds memory.
		weight := int64(len(c.Data))
		if err := r.acquireUpload(gctx, weight); err != nil {
			r.land(id, f, err)
			continue
		}
		plain := bytes.Clone(c.Data)
		g.Go(func() error {
			defer r.uploads.Release(weight)
			n, err := r.storeChunk(gctx, id, plain)
			r.land(id, f, err)
			if err != nil {
				return err
			}
			if n > 0 {
				statsMu.Lock()
				st.NewChunks++
				st.NewBytes += n
				statsMu.Unlock()
			}
			return nil
		})
	}
	err := g.Wait()
	if readErr != nil {
		err = readErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return Stream{}, err
	}
	return st, nil
}

// waitingForRoom, if set (by tests), is told when a chunk starts waiting
// for room in the upload budget (true) and when it has it (false).
var waitingForRoom func(waiting bool)

func (r *Repository) acquireUpload(ctx context.Context, n int64) error {
	if r.uploads.TryAcquire(n) {
		return nil
	}
	if waitingForRoom != nil {
		waitingForRoom(true)
		defer waitingForRoom(false)
	}
	return r.uploads.Acquire(ctx, n)
}

// land finishes a flight, recording the chunk as known on success.
func (r *Repository) land(id string, f *flight, err error) {
	r.mu.Lock()
	delete(r.flying, id)
	if err == nil {
		r.known[id] = struct{}{}
	}
	f.err = err
	r.mu.Unlock()
	close(f.done)
}

// storeChunk uploads a chunk unless the backend already has it (another
// process may have stored it since the listing). It returns the stored
// size, 0 if it was there.
func (r *Repository) storeChunk(ctx context.Context, id string, plain []byte) (int64, error) {
	name := ChunkName(id)
	if ok, err := r.be.Exists(ctx, name); err != nil {
		return 0, err
	} else if ok {
		return 0, nil
	}
	obj, err := r.codec.encodeTo(make([]byte, 0, len(plain)+frameOverhead), name, plain, r.plainSum(id, plain), true)
	if err != nil {
		return 0, err
	}
	if err := r.be.Put(ctx, name, obj); err != nil {
		return 0, err
	}
	return int64(len(obj)), nil
}

// LoadChunk returns the verified plaintext of chunk id.
func (r *Repository) LoadChunk(ctx context.Context, id string) ([]byte, error) {
	if !validChunkID(id) {
		return nil, fmt.Errorf("repository %s: invalid chunk id %q", r, id)
	}
	name := ChunkName(id)
	obj, err := r.be.Get(ctx, name)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, &MissingError{Repo: r.String(), Object: name}
	}
	if err != nil {
		return nil, err
	}
	plain, sum, err := r.codec.decode(name, obj)
	if err != nil {
		return nil, err
	}
	// Where chunks are named by their SHA-256, decode has just computed it:
	// no second hash of every chunk.
	named := hex.EncodeToString(sum[:])
	if r.idKey != nil {
		named = r.chunkID(plain)
	}
	if named != id {
		return nil, r.codec.corrupt(name, "content does not match its name")
	}
	return plain, nil
}

// OpenStream returns a reader of the chunks' plaintext, in order, each
// verified, fetching up to readAhead chunks ahead. Errors (a missing chunk:
// *MissingError; a damaged one: *CorruptError) are returned by Read. Close
// stops the fetching.
func (r *Repository) OpenStream(ctx context.Context, chunks []string) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	sr := &streamReader{cancel: cancel, queue: make(chan chan fetched, readAhead)}
	sr.wg.Add(1)
	go func() {
		defer sr.wg.Done()
		defer close(sr.queue)
		for _, id := range chunks {
			res := make(chan fetched, 1)
			select {
			case sr.queue <- res:
			case <-ctx.Done():
				return
			}
			sr.wg.Add(1)
			go func() {
				defer sr.wg.Done()
				data, err := r.LoadChunk(ctx, id)
				res <- fetched{data, err}
			}()
		}
	}()
	return sr
}

type fetched struct {
	data []byte
	err  error
}

type streamReader struct {
	cancel context.CancelFunc
	queue  chan chan fetched
	wg     sync.WaitGroup
	cur    []byte
	err    error
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		res, ok := <-s.queue
		if !ok {
			s.err = io.EOF
			return 0, io.EOF
		}
		f := <-res
		if f.err != nil {
			s.err = f.err
			s.cancel()
			return 0, f.err
		}
		s.cur = f.data
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

func (s *streamReader) Close() error {
	s.cancel()
	// Unblock the producer if it waits for queue space, then wait for all
	// fetches to end.
	go func() {
		for range s.queue {
		}
	}()
	s.wg.Wait()
	if s.err == nil || s.err == io.EOF {
		s.err = errors.New("read from a closed stream")
	}
	return nil
}

func validManifestID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 200 {
		return fmt.Errorf("invalid backup id %q", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("invalid backup id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

// SaveManifest stores a backup's manifest as backups/ID. Call it last,
// once every chunk the manifest references is stored (SaveStream has
// returned), holding lk since before the first SaveStream: it checks lk
// before and after writing, and fails (leaving no manifest) if the lock
// was lost meanwhile, because a prune may then have deleted chunks the
// backup deduplicated against. It never overwrites: saving the same bytes
// again is a no-op, different bytes under an existing id are an error.
func (r *Repository) SaveManifest(ctx context.Context, lk *Lock, id string, data []byte) error {
	if err := validManifestID(id); err != nil {
		return fmt.Errorf("repository %s: %w", r, err)
	}
	return r.saveCatalog(ctx, lk, "backup", id, ManifestName(id), data)
}

// saveCatalog writes a catalog object (a backup's manifest, a base
// backup's record) as SaveManifest describes, what naming its kind.
func (r *Repository) saveCatalog(ctx context.Context, lk *Lock, what, id, name string, data []byte) error {
	if err := lk.Check(ctx); err != nil {
		return fmt.Errorf("%s %s not recorded: %w", what, id, err)
	}
	obj, err := r.codec.encode(name, data, true)
	if err != nil {
		return err
	}
	created, err := r.be.PutIfAbsent(ctx, name, obj)
	if err != nil {
		return err
	}
	if !created {
		old, err := r.loadObject(ctx, name)
		if err != nil {
			return err
		}
		if !bytes.Equal(old, data) {
			return fmt.Errorf("repository %s: %s %s already exists (with other content)", r, what, id)
		}
		return nil
	}
	// Still ours after the write: no prune can have run since the lock
	// was taken, and any later one sees this object.
	if err := lk.Check(ctx); err != nil {
		if derr := r.be.Delete(context.WithoutCancel(ctx), name); derr != nil {
			return hint.Run(fmt.Errorf("%s %s: %w; removing it again failed too (%v): delete it", what, id, err, derr), what, "delete", id)
		}
		return fmt.Errorf("%s %s not recorded: %w", what, id, err)
	}
	return nil
}

// ListManifests returns the ids of the stored backups, sorted.
func (r *Repository) ListManifests(ctx context.Context) ([]string, error) {
	names, err := r.be.List(ctx, backupsDir)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(names))
	for _, n := range names {
		id := strings.TrimPrefix(n, backupsDir)
		if validManifestID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// LoadManifest returns a backup's manifest, verified. A missing backup
// gives a *MissingError (matching backend.ErrNotFound).
func (r *Repository) LoadManifest(ctx context.Context, id string) ([]byte, error) {
	if err := validManifestID(id); err != nil {
		return nil, fmt.Errorf("repository %s: %w", r, err)
	}
	return r.loadObject(ctx, ManifestName(id))
}

// loadObject reads and verifies a framed object; a missing one gives a
// *MissingError.
func (r *Repository) loadObject(ctx context.Context, name string) ([]byte, error) {
	obj, err := r.be.Get(ctx, name)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, &MissingError{Repo: r.String(), Object: name}
	}
	if err != nil {
		return nil, err
	}
	plain, _, err := r.codec.decode(name, obj)
	return plain, err
}

// DeleteManifest removes a backup's manifest (its chunks stay until
// Prune), holding lk. A missing backup gives a *MissingError.
func (r *Repository) DeleteManifest(ctx context.Context, lk *Lock, id string) error {
	if err := validManifestID(id); err != nil {
		return fmt.Errorf("repository %s: %w", r, err)
	}
	if err := lk.Check(ctx); err != nil {
		return err
	}
	name := ManifestName(id)
	ok, err := r.be.Exists(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return &MissingError{Repo: r.String(), Object: name}
	}
	return r.be.Delete(ctx, name)
}

// pruneCheckEvery is how many chunk deletions Prune starts between checks
// that it still holds the lock.
const pruneCheckEvery = 64

// Prune deletes every chunk whose id is not in referenced (collected by
// the caller from all manifests, with lk held since before they were read)
// and returns how many it deleted and their stored size. It stops if lk
// is lost (checked every pruneCheckEvery deletions): a backup that took the
// lock meanwhile may deduplicate against chunks that are not referenced
// yet. Objects under data/ that are not chunks are left alone.
func (r *Repository) Prune(ctx context.Context, lk *Lock, referenced map[string]bool) (removed int, freed int64, err error) {
	infos, err := r.be.ListInfo(ctx, dataPrefix)
	if err != nil {
		return 0, 0, err
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteSlots)
	started := 0
	for _, in := range infos {
		id := chunkIDFromName(in.Name)
		if id == "" || referenced[id] {
			continue
		}
		if started%pruneCheckEvery == 0 {
			if err := lk.Check(gctx); err != nil {
				g.Go(func() error { return err })
				break
			}
		}
		started++
		g.Go(func() error {
			if err := r.be.Delete(gctx, in.Name); err != nil {
				return err
			}
			mu.Lock()
			removed++
			freed += in.Size
			mu.Unlock()
			r.mu.Lock()
			delete(r.known, id)
			r.mu.Unlock()
			return nil
		})
	}
	err = g.Wait()
	return removed, freed, err
}

// ChunkSizes returns every stored chunk's stored (framed, compressed,
// encrypted) size, by chunk id.
func (r *Repository) ChunkSizes(ctx context.Context) (map[string]int64, error) {
	infos, err := r.be.ListInfo(ctx, dataPrefix)
	if err != nil {
		return nil, err
	}
	sizes := make(map[string]int64, len(infos))
	for _, in := range infos {
		if id := chunkIDFromName(in.Name); id != "" {
			sizes[id] = in.Size
		}
	}
	return sizes, nil
}

// Unreferenced counts the chunks Prune would remove given referenced, and
// their stored size, changing nothing.
func (r *Repository) Unreferenced(ctx context.Context, referenced map[string]bool) (chunks int, bytes int64, err error) {
	sizes, err := r.ChunkSizes(ctx)
	for id, size := range sizes {
		if !referenced[id] {
			chunks++
			bytes += size
		}
	}
	return chunks, bytes, err
}

// sortErrors orders problems by the object they name.
func sortErrors(errs []error) {
	name := func(err error) string {
		var ce *CorruptError
		var me *MissingError
		switch {
		case errors.As(err, &ce):
			return ce.Object
		case errors.As(err, &me):
			return me.Object
		}
		return err.Error()
	}
	sort.SliceStable(errs, func(i, j int) bool { return name(errs[i]) < name(errs[j]) })
}
