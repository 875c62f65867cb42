// Package common holds what the backend implementations share with package
// backend (which imports them, so they cannot import it).
package common

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is matched (errors.Is) by the error Get returns for a name
// that does not exist.
var ErrNotFound = errors.New("object not found")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name string
	Size int64
}

// ValidName reports why name is not a valid object name, or nil.
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
