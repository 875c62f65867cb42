package repo

import (
	"context"
	"errors"
	"io"
)

// CheckLog checks one archived log file of store: its index, and that
// each of its chunks exists; with readData, the whole file is read back,
// every chunk and the file's SHA-256 verified. A missing or damaged
// object is a *MissingError or *CorruptError (IsObjectProblem); any other
// error is a failure to check.
func (r *Repository) CheckLog(ctx context.Context, store, name string, readData bool) error {
	if readData {
		return r.GetLog(ctx, store, name, io.Discard)
	}
	f, err := r.LogInfo(ctx, store, name)
	if err != nil {
		return err
	}
	for _, id := range f.Chunks {
		cn := logChunkDir(store, name) + id
		ok, err := r.be.Exists(ctx, cn)
		if err != nil {
			return err
		}
		if !ok {
			return &MissingError{Repo: r.String(), Object: cn}
		}
	}
	return nil
}

// IsObjectProblem reports whether err is a missing or damaged object (a
// finding of a check), not a failure to check.
func IsObjectProblem(err error) bool { return isObjectProblem(err) || errors.Is(err, errNotFound) }
