package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/restic/chunker"

	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

// Point-in-time recovery's objects (docs/pitr.md):
//
//	cuts/ID                  a cut mark (no chunks; written without the lock)
//	cutnames/NAME            a cut name's reservation, create-exclusive, so
//	                         two cuts never take one name (no lock)
//	bases/ID                 a base backup's record, naming its chunks in
//	                         data/ (written last, under the lock, as a manifest)
//	logs/STORE/NAME          a log file's index: its size, SHA-256, chunks
//	logdata/STORE/NAME/ID    that file's chunks, its own: never shared, so
//	                         archiving needs no lock (a prune of data/ never
//	                         sees them, and a log file is removed whole)
const (
	cutsDir     = "cuts/"
	cutNamesDir = "cutnames/"
	basesDir    = "bases/"
	logsDir     = "logs/"
	logDataDir  = "logdata/"
)

// Catalog kinds of SaveRecord and friends.
const (
	KindCut     = "cut"
	KindCutName = "cutname"
	KindBase    = "base"
)

// ErrExists is matched (errors.Is) by SaveRecord's error for a record
// that exists already.
var ErrExists = errors.New("already exists")

func recordName(kind, id string) (string, error) {
	if err := validManifestID(id); err != nil {
		return "", err
	}
	switch kind {
	case KindCut:
		return cutsDir + id, nil
	case KindCutName:
		return cutNamesDir + id, nil
	case KindBase:
		return basesDir + id, nil
	}
	return "", fmt.Errorf("unknown record kind %q", kind)
}

// SaveRecord stores a cut mark, a cut name's reservation or a base
// backup's record. A base references chunks in data/, so it is saved as a
// manifest is (lk held since before its first chunk; see SaveManifest); a
// cut or a name references none and lk may be nil: cut marks are taken
// while a backup holds the lock. Those are created exclusively: one that
// exists already is an error matching ErrExists.
// A base's record must be JSON with its chunk ids in "chunks", which
// prune keeps.
func (r *Repository) SaveRecord(ctx context.Context, lk *Lock, kind, id string, data []byte) error {
	name, err := recordName(kind, id)
	if err != nil {
		return fmt.Errorf("repository %s: %w", r, err)
	}
	if kind == KindBase {
		if lk == nil {
			return fmt.Errorf("repository %s: base %s not recorded: a base is saved holding the repository lock", r, id)
		}
		return r.saveCatalog(ctx, lk, kind, id, name, data)
	}
	obj, err := r.codec.encode(name, data, true)
	if err != nil {
		return err
	}
	created, err := r.be.PutIfAbsent(ctx, name, obj)
	if err != nil || created {
		return err
	}
	return fmt.Errorf("repository %s: %s %s %w", r, kind, id, ErrExists)
}

// LoadRecord reads a cut mark or base record, verified.
func (r *Repository) LoadRecord(ctx context.Context, kind, id string) ([]byte, error) {
	name, err := recordName(kind, id)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", r, err)
	}
	return r.loadObject(ctx, name)
}

// ListRecords returns the ids of the stored records of kind, sorted.
func (r *Repository) ListRecords(ctx context.Context, kind string) ([]string, error) {
	prefix, err := recordName(kind, "x")
	if err != nil {
		return nil, err
	}
	prefix = strings.TrimSuffix(prefix, "x")
	names, err := r.be.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range names {
		if id := strings.TrimPrefix(n, prefix); validManifestID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// DeleteRecord removes a record, holding lk; a cut name's reservation is
// released without it, by the cut create that made it and failed.
func (r *Repository) DeleteRecord(ctx context.Context, lk *Lock, kind, id string) error {
	name, err := recordName(kind, id)
	if err != nil {
		return fmt.Errorf("repository %s: %w", r, err)
	}
	if kind != KindCutName {
		if err := lk.Check(ctx); err != nil {
			return err
		}
	}
	return r.be.Delete(ctx, name)
}

// BaseReferences adds the chunks of every base backup to refs, and
// returns the ids of the bases whose record cannot be read (a prune must
// then remove nothing: they might reference any chunk).
func (r *Repository) BaseReferences(ctx context.Context, refs map[string]bool) (damaged []string, err error) {
	ids, err := r.ListRecords(ctx, KindBase)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		data, err := r.LoadRecord(ctx, KindBase, id)
		if errors.Is(err, backend.ErrNotFound) {
			continue // deleted since the listing
		}
		var rec struct {
			Chunks []string `json:"chunks"`
		}
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		var ce *CorruptError
		if err != nil && !errors.As(err, &ce) && !isJSONError(err) {
			return nil, err
		}
		if err != nil {
			damaged = append(damaged, "base "+id)
			continue
		}
		for _, c := range rec.Chunks {
			refs[c] = true
		}
	}
	return damaged, nil
}

func isJSONError(err error) bool {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	return errors.As(err, &se) || errors.As(err, &te)
}

// LogFile is a log file's index object.
type LogFile struct {
	Name   string   `json:"name"`
	Size   int64    `json:"size"`
	SHA256 string   `json:"sha256"`
	Chunks []string `json:"chunks"`
}

func validLogName(store, name string) error {
	for _, s := range []string{store, name} {
		if validManifestID(s) != nil {
			return fmt.Errorf("invalid log archive name %q (store %q): only letters, digits, '-', '_' and '.'", name, store)
		}
	}
	return nil
}

func logIndexName(store, name string) string { return logsDir + store + "/" + name }
func logChunkDir(store, name string) string  { return logDataDir + store + "/" + name + "/" }

// PutLog archives one log file of store, chunked (so memory stays bounded
// whatever its size), each chunk framed and encrypted as any object, and
// its index written last: a file whose index is missing was never
// archived. It takes no lock. The same content again is a no-op; other
// content under an archived name is an error, and the archive keeps the
// first.
func (r *Repository) PutLog(ctx context.Context, store, name string, rd io.Reader) (LogFile, error) {
	if err := validLogName(store, name); err != nil {
		return LogFile{}, err
	}
	old, err := r.LogInfo(ctx, store, name)
	var me *MissingError
	switch {
	case err == nil:
		h := sha256.New()
		n, err := io.Copy(h, rd)
		if err != nil {
			return LogFile{}, fmt.Errorf("reading log file %s: %w", name, err)
		}
		return old, sameLog(store, old, n, hex.EncodeToString(h.Sum(nil)))
	case !errors.As(err, &me):
		return LogFile{}, err
	}
	f := LogFile{Name: name}
	h := sha256.New()
	ch := chunker.NewWithBoundaries(io.TeeReader(rd, h), r.chunk.Polynomial, r.chunk.MinSize, r.chunk.MaxSize)
	ch.SetAverageBits(r.chunk.AverageBits)
	buf := r.getBuf()
	defer r.putBuf(buf)
	for {
		c, err := ch.Next(*buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return LogFile{}, fmt.Errorf("reading log file %s: %w", name, err)
		}
		id := r.chunkID(c.Data)
		obj, err := r.codec.encode(logChunkDir(store, name)+id, c.Data, true)
		if err != nil {
			return LogFile{}, err
		}
		if err := r.be.Put(ctx, logChunkDir(store, name)+id, obj); err != nil {
			return LogFile{}, err
		}
		f.Chunks = append(f.Chunks, id)
		f.Size += int64(c.Length)
	}
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	data, err := json.Marshal(f)
	if err != nil {
		return LogFile{}, err
	}
	idx := logIndexName(store, name)
	obj, err := r.codec.encode(idx, data, true)
	if err != nil {
		return LogFile{}, err
	}
	created, err := r.be.PutIfAbsent(ctx, idx, obj)
	if err != nil || created {
		return f, err
	}
	// Another archiver stored it meanwhile: the same rule applies.
	if old, err = r.LogInfo(ctx, store, name); err != nil {
		return LogFile{}, err
	}
	return old, sameLog(store, old, f.Size, f.SHA256)
}

// sameLog refuses other content offered under an archived name.
func sameLog(store string, old LogFile, size int64, sum string) error {
	if sum == old.SHA256 && size == old.Size {
		return nil
	}
	return fmt.Errorf("store %s: log file %s is already archived with other content (%d bytes, SHA-256 %s; offered %d bytes, %s): the archive keeps the first; check that two servers do not archive under one store name",
		store, old.Name, old.Size, old.SHA256, size, sum)
}

// LogInfo reads a log file's index; a missing one is a *MissingError.
func (r *Repository) LogInfo(ctx context.Context, store, name string) (LogFile, error) {
	var f LogFile
	if err := validLogName(store, name); err != nil {
		return f, err
	}
	idx := logIndexName(store, name)
	data, err := r.loadObject(ctx, idx)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(data, &f); err != nil || f.Name != name {
		return f, r.codec.corrupt(idx, "not a log file index")
	}
	return f, nil
}

// GetLog writes an archived log file to w, every chunk verified, and the
// whole checked against its SHA-256.
func (r *Repository) GetLog(ctx context.Context, store, name string, w io.Writer) error {
	f, err := r.LogInfo(ctx, store, name)
	if err != nil {
		return err
	}
	h := sha256.New()
	for _, id := range f.Chunks {
		cn := logChunkDir(store, name) + id
		plain, err := r.loadObject(ctx, cn)
		if err != nil {
			return err
		}
		if r.chunkID(plain) != id {
			return r.codec.corrupt(cn, "content does not match its name")
		}
		h.Write(plain)
		if _, err := w.Write(plain); err != nil {
			return err
		}
	}
	if hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return r.codec.corrupt(logIndexName(store, name), "the chunks do not add up to the file's SHA-256")
	}
	return nil
}

// ListLogs returns the names of store's archived log files, sorted.
func (r *Repository) ListLogs(ctx context.Context, store string) ([]string, error) {
	if err := validLogName(store, "x"); err != nil {
		return nil, err
	}
	prefix := logsDir + store + "/"
	names, err := r.be.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.TrimPrefix(n, prefix))
	}
	return out, nil
}

// DeleteLog removes an archived log file, holding lk: its index first
// (it is then no longer archived), then its chunks.
func (r *Repository) DeleteLog(ctx context.Context, lk *Lock, store, name string) error {
	if err := validLogName(store, name); err != nil {
		return err
	}
	if err := lk.Check(ctx); err != nil {
		return err
	}
	if err := r.be.Delete(ctx, logIndexName(store, name)); err != nil {
		return err
	}
	chunks, err := r.be.List(ctx, logChunkDir(store, name))
	if err != nil {
		return err
	}
	for _, c := range chunks {
		if err := r.be.Delete(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// LogStores lists the stores that have a log archive, sorted.
func (r *Repository) LogStores(ctx context.Context) ([]string, error) {
	names, err := r.be.List(ctx, logsDir)
	if err != nil {
		return nil, err
	}
	var stores []string
	for _, n := range names {
		store, _, _ := strings.Cut(strings.TrimPrefix(n, logsDir), "/")
		if len(stores) == 0 || stores[len(stores)-1] != store {
			stores = append(stores, store)
		}
	}
	return stores, nil
}
