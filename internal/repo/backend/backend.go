// Package backend is where a Stillpoint repository keeps its objects: a
// flat namespace of names such as "config", "data/ab/abcd..." or
// "backups/ID", each holding an immutable byte string.
//
// Implementations import this package and register a location scheme
// (Register), so this package depends on none of them:
//
//   - package local ("file", and plain paths): a directory on a local (or
//     mounted) filesystem;
//   - package s3 ("s3"): a bucket (and optional key prefix) on
//     S3-compatible storage;
//   - package mem: in memory, for tests (not registered).
//
// Open picks one from a location string; package repo imports local and s3.
//
// Names use "/" as separator, are relative, and never contain empty, "." or
// ".." segments; ValidName checks that. Every method is safe for concurrent
// use.
package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// ErrNotFound is matched (errors.Is) by the error Get returns for a name
// that does not exist.
var ErrNotFound = errors.New("object not found")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name string
	Size int64
}

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

// Names returns the names of infos, or err: List for an implementation
// of ListInfo.
func Names(infos []ObjectInfo, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	names := make([]string, len(infos))
	for i, in := range infos {
		names[i] = in.Name
	}
	return names, nil
}

// ValidName returns why name is not a valid object name, or nil.
func ValidName(name string) error {
	if name == "" {
		return errors.New("empty object name")
	}
	if strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
		return fmt.Errorf("invalid object name %q: leading or trailing /", name)
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return fmt.Errorf("invalid object name %q: empty, . or .. segment", name)
		case strings.ContainsAny(seg, "\\\x00"):
			return fmt.Errorf("invalid object name %q: backslash or NUL", name)
		}
	}
	return nil
}

// NotFound returns an error matching ErrNotFound that names the object and
// the location.
func NotFound(location, name string) error {
	return &notFoundError{location: location, name: name}
}

type notFoundError struct{ location, name string }

func (e *notFoundError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.location, e.name, ErrNotFound)
}

func (e *notFoundError) Unwrap() error { return ErrNotFound }

// Opener opens a location of the scheme it was registered for.
type Opener func(ctx context.Context, location string) (Backend, error)

var (
	openersMu sync.RWMutex
	openers   = map[string]Opener{}
)

// Register makes Open hand locations "SCHEME://..." to open; scheme "file"
// also gets plain paths. Implementations call it from init, so this
// package never imports them.
func Register(scheme string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	openers[scheme] = open
}

// Open returns the backend for a repository location:
//
//   - a plain path ("/var/backups/sp", "./repo") or "file:///abs/path": a
//     local directory (created on first write);
//   - "s3://BUCKET[/PREFIX][?endpoint=HOST:PORT&tls=false&region=R]": an
//     S3-compatible bucket (see package s3 for the parameters and the
//     credentials it reads from the environment).
func Open(ctx context.Context, location string) (Backend, error) {
	if strings.TrimSpace(location) == "" {
		return nil, errors.New("no repository location given: use a directory path, file:///path or s3://bucket/prefix")
	}
	scheme := "file"
	if i := strings.Index(location, "://"); i > 0 && !strings.ContainsAny(location[:i], "/\\") {
		scheme = location[:i]
	}
	openersMu.RLock()
	open := openers[scheme]
	openersMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("unsupported repository location %q: scheme %q is not supported; use a directory path, file:///path or s3://bucket/prefix?endpoint=host:port",
			location, scheme)
	}
	return open(ctx, location)
}
