package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// Load reads a backup's manifest.
func Load(ctx context.Context, r *repo.Repository, id string) (*Manifest, error) {
	data, err := r.LoadManifest(ctx, id)
	if err != nil {
		return nil, err
	}
	m, err := DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	return m, nil
}

// LoadAll reads every complete backup's manifest, oldest first. Every
// manifest must be readable: a damaged one is an error naming it.
func LoadAll(ctx context.Context, r *repo.Repository) ([]*Manifest, error) {
	ids, err := r.ListManifests(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	out := make([]*Manifest, 0, len(ids))
	for _, id := range ids {
		m, err := Load(ctx, r, id)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// ReadTable streams a table's records back out of the repository,
// checking every chunk on the way.
func ReadTable(ctx context.Context, r *repo.Repository, t TableBackup, fn func(storage.Record) error) error {
	rc := r.OpenStream(ctx, t.Chunks)
	defer rc.Close()
	rr, err := NewRowReader(rc, t.Metadata.Columns)
	if err != nil {
		return fmt.Errorf("table %s: %w", t.Metadata.FullName(), err)
	}
	var n int64
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("table %s, record %d: %w", t.Metadata.FullName(), n+1, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
		n++
	}
	if n != t.Rows {
		return fmt.Errorf("table %s: %d records in the repository, the manifest says %d", t.Metadata.FullName(), n, t.Rows)
	}
	return nil
}
