// Package backend is where a Stillpoint repository keeps its objects: a
// flat namespace of names such as "config", "data/ab/abcd..." or
// "backups/ID", each holding an immutable byte string.
//
// Implementations:
//
//   - package local: a directory on a local (or mounted) filesystem;
//   - package s3: a bucket (and optional key prefix) on S3-compatible storage.
//
// Open picks one from a location string.
//
// Names use "/" as separator, are relative, and never contain empty, "." or
// ".." segments; ValidName checks that. Every method is safe for concurrent
// use.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/stillpoint/stillpoint/internal/repo/backend/internal/common"
	"github.com/stillpoint/stillpoint/internal/repo/backend/local"
	"github.com/stillpoint/stillpoint/internal/repo/backend/s3"
)

// ErrNotFound is matched (errors.Is) by the error Get returns for a name
// that does not exist.
var ErrNotFound = common.ErrNotFound

// ObjectInfo describes one stored object.
type ObjectInfo = common.ObjectInfo

// Backend stores immutable named objects.
type Backend interface {
	// Put stores data under name, replacing any previous object. It is
	// atomic: readers see either the previous object (or none) or all of
	// data, never a partial object.
	Put(ctx context.Context, name string, data []byte) error
	// PutIfAbsent stores data under name only if no object of that name
	// exists, atomically (create-exclusive: of several concurrent callers
	// exactly one gets created == true). created is false, with a nil
	// error, when the object already existed; it was then left unchanged.
	PutIfAbsent(ctx context.Context, name string, data []byte) (created bool, err error)
	// Get returns the whole object. A missing object gives an error
	// matching ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// Exists reports whether name exists.
	Exists(ctx context.Context, name string) (bool, error)
	// List returns the names starting with prefix (a plain string prefix,
	// e.g. "data/" or "backups/"), sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// ListInfo is List with the objects' sizes.
	ListInfo(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes name. Deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// String describes the location for messages (never with secrets).
	String() string
}

// ValidName returns why name is not a valid object name, or nil.
func ValidName(name string) error { return common.ValidName(name) }

// NotFound returns an error matching ErrNotFound that names the object and
// the location.
func NotFound(location, name string) error { return common.NotFound(location, name) }

// Open returns the backend for a repository location:
//
//   - a plain path ("/var/backups/sp", "./repo") or "file:///abs/path": a
//     local directory (created on first write);
//   - "s3://BUCKET[/PREFIX][?endpoint=HOST:PORT&tls=false&region=R]": an
//     S3-compatible bucket (see package s3 for the parameters and the
//     credentials it reads from the environment).
func Open(ctx context.Context, location string) (Backend, error) {
	switch {
	case strings.TrimSpace(location) == "":
		return nil, errors.New("no repository location given: use a directory path, file:///path or s3://bucket/prefix")
	case strings.HasPrefix(location, "s3://"):
		return s3.Open(ctx, location)
	case strings.HasPrefix(location, "file://"):
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
		return local.Open(u.Path)
	}
	if i := strings.Index(location, "://"); i > 0 && !strings.ContainsAny(location[:i], "/\\") {
		return nil, fmt.Errorf("unsupported repository location %q: scheme %q is not supported; use a directory path, file:///path or s3://bucket/prefix?endpoint=host:port",
			location, location[:i])
	}
	return local.Open(location)
}
