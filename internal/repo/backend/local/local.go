// Package local is the repository backend for a directory on a local (or
// mounted) filesystem.
//
// Object "a/b/c" is the file DIR/a/b/c. Writes go to a temporary file
// ".tmp-*" in the target directory, which is fsynced and then renamed (Put)
// or hard-linked (PutIfAbsent) into place, and the directory is fsynced, so
// an object is either absent or complete, also after a crash. Leftover
// temporary files are never listed. Directories are created on first write
// with mode 0700 and files with 0600: backups hold database contents.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

const tmpPrefix = ".tmp-"

// Backend is a repository directory.
type Backend struct {
	root string
	dirs sync.Map // directories known to exist (string -> struct{})
}

func init() { backend.Register("file", openLocation) }

// openLocation opens "file:///abs/path" or a plain path.
func openLocation(_ context.Context, location string) (backend.Backend, error) {
	if !strings.HasPrefix(location, "file://") {
		return Open(location)
	}
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("repository location %q: %v", location, err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("repository location %q: file:// URLs must name a local path (file:///path), not host %q", location, u.Host)
	}
	if u.Path == "" {
		return nil, fmt.Errorf("repository location %q: no path", location)
	}
	return Open(u.Path)
}

// Open returns the backend for directory path. The directory need not
// exist yet (it is created on the first write), but path must not be a
// file or lie under one.
func Open(path string) (*Backend, error) {
	if strings.TrimSpace(path) == "" {
		return nil, errors.New("empty repository path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %v", path, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err == nil && !fi.IsDir():
		return nil, fmt.Errorf("repository %s: it is a file, not a directory: choose a directory (it is created if missing)", abs)
	case errors.Is(err, syscall.ENOTDIR):
		return nil, fmt.Errorf("repository %s: part of the path is a file, not a directory: choose another location: %w", abs, err)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("repository %s: %w", abs, err)
	}
	return &Backend{root: abs}, nil
}

// String returns the directory.
func (b *Backend) String() string { return b.root }

func (b *Backend) path(name string) (string, error) {
	if err := backend.ValidName(name); err != nil {
		return "", fmt.Errorf("repository %s: %w", b.root, err)
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := b.path(name)
	if err != nil {
		return err
	}
	tmp, err := b.writeTemp(p, name, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return b.writeError(name, err)
	}
	return b.syncDir(filepath.Dir(p), name)
}

// PutIfAbsent implements backend.Backend: the complete temporary file is
// hard-linked to the final name, which fails if that exists. On a
// filesystem without hard links it falls back to O_CREATE|O_EXCL.
func (b *Backend) PutIfAbsent(ctx context.Context, name string, data []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p, err := b.path(name)
	if err != nil {
		return false, err
	}
	tmp, err := b.writeTemp(p, name, data)
	if err != nil {
		return false, err
	}
	linkErr := os.Link(tmp, p)
	os.Remove(tmp)
	switch {
	case linkErr == nil:
		return true, b.syncDir(filepath.Dir(p), name)
	case errors.Is(linkErr, fs.ErrExist):
		return false, nil
	case errors.Is(linkErr, syscall.EPERM), errors.Is(linkErr, syscall.ENOTSUP), errors.Is(linkErr, syscall.EOPNOTSUPP),
		errors.Is(linkErr, syscall.EXDEV), errors.Is(linkErr, syscall.EMLINK):
		return b.putExclusive(p, name, data)
	default:
		return false, b.writeError(name, linkErr)
	}
}

func (b *Backend) putExclusive(p, name string, data []byte) (bool, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, b.writeError(name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return false, b.writeError(name, err)
	}
	return true, b.syncDir(filepath.Dir(p), name)
}

// writeTemp writes data to a synced temporary file next to p.
func (b *Backend) writeTemp(p, name string, data []byte) (string, error) {
	dir := filepath.Dir(p)
	if err := b.ensureDir(dir, name); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, tmpPrefix+filepath.Base(p)+"-*")
	if err != nil {
		return "", b.writeError(name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", b.writeError(name, err)
	}
	return f.Name(), nil
}

// ensureDir creates dir and its missing parents, fsyncing each parent so
// the new entries are durable.
func (b *Backend) ensureDir(dir, name string) error {
	if _, ok := b.dirs.Load(dir); ok {
		return nil
	}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		b.dirs.Store(dir, struct{}{})
		return nil
	case err == nil:
		return b.writeError(name, &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR})
	case !errors.Is(err, fs.ErrNotExist):
		return b.writeError(name, err)
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := b.ensureDir(parent, name); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return b.writeError(name, err)
	}
	if err := b.syncDir(parent, name); err != nil {
		return err
	}
	b.dirs.Store(dir, struct{}{})
	return nil
}

func (b *Backend) syncDir(dir, name string) error {
	d, err := os.Open(dir)
	if err != nil {
		return b.writeError(name, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return b.writeError(name, err)
	}
	return nil
}

// writeError explains a failed write: what went wrong, where, and what to
// do about it.
func (b *Backend) writeError(name string, err error) error {
	return WriteError(b.root, name, err)
}

// WriteError turns an error from writing object name under the repository
// directory root into one that names the location and says what to fix.
// It wraps err.
func WriteError(root, name string, err error) error {
	var hint string
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		hint = "the disk holding the repository is full (or over quota): free some space or choose another repository location"
	case errors.Is(err, syscall.EROFS):
		hint = "the repository is on a read-only filesystem: remount it read-write or choose another repository location"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		hint = "the repository directory is not writable by this user: fix its permissions or choose another repository location"
	case errors.Is(err, syscall.ENOTDIR):
		hint = "part of the repository path is a file, not a directory: choose another repository location"
	default:
		return fmt.Errorf("repository %s: writing %s: %w", root, name, err)
	}
	return fmt.Errorf("repository %s: cannot write %s: %w: %s", root, name, err, hint)
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, backend.NotFound(b.root, name)
	}
	if err != nil {
		return nil, fmt.Errorf("repository %s: reading %s: %w", b.root, name, err)
	}
	return data, nil
}

// Exists implements backend.Backend.
func (b *Backend) Exists(ctx context.Context, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p, err := b.path(name)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return false, nil
	default:
		return false, fmt.Errorf("repository %s: %s: %w", b.root, name, err)
	}
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	return backend.Names(b.ListInfo(ctx, prefix))
}

// ListInfo implements backend.Backend.
func (b *Backend) ListInfo(ctx context.Context, prefix string) ([]backend.ObjectInfo, error) {
	start := b.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	var out []backend.ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
				return filepath.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		out = append(out, backend.ObjectInfo{Name: name, Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("repository %s: listing %q: %w", b.root, prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return b.writeError(name, err)
	}
	return nil
}
