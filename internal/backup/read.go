package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

// Load reads a backup's manifest.
func Load(ctx context.Context, r *repo.Repository, id string) (*Manifest, error) {
	data, err := r.LoadManifest(ctx, id)
	if err != nil {
		return nil, err
	}
	m, err := DecodeManifest(data)
	if err != nil {
		return nil, &decodeError{fmt.Errorf("backup %s: %w", id, err)}
	}
	return m, nil
}

// Damaged is a backup whose manifest cannot be read: its object is
// damaged, or it does not decode.
type Damaged struct {
	ID  string
	Err error
}

// LoadAll reads every complete backup's manifest, oldest first. A manifest
// that cannot be read (damaged, or not a manifest) is returned in damaged,
// so one bad object never hides the others; err is a failure to read the
// catalog at all (the backend).
func LoadAll(ctx context.Context, r *repo.Repository) (all []*Manifest, damaged []Damaged, err error) {
	ids, err := r.ListManifests(ctx)
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(ids)
	for _, id := range ids {
		m, err := Load(ctx, r, id)
		switch {
		case err == nil:
			all = append(all, m)
		case errors.Is(err, backend.ErrNotFound):
			// deleted since the listing
		case Unreadable(err):
			damaged = append(damaged, Damaged{ID: id, Err: err})
		default:
			return nil, nil, err
		}
	}
	// Ids order by the second a backup started; within one second only
	// the start time itself tells which came first.
	slices.SortStableFunc(all, func(a, b *Manifest) int { return a.Started.Compare(b.Started) })
	return all, damaged, nil
}

// Unreadable reports whether err from Load means the manifest is there
// but cannot be read: the backup is damaged.
func Unreadable(err error) bool {
	var ce *repo.CorruptError
	var de *decodeError
	return errors.As(err, &ce) || errors.As(err, &de)
}

// decodeError is a manifest whose frame is intact but whose content is not
// a manifest (written by something else, or a newer Stillpoint).
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }
