package backup

import (
	"context"
	"fmt"
	"slices"

	"github.com/stillpoint/stillpoint/internal/repo"
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
