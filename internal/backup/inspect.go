package backup

import (
	"context"
	"maps"
	"slices"

	"github.com/stillpoint/stillpoint/internal/repo"
)

// RepositoryCheck is what Check found in a whole repository.
type RepositoryCheck struct {
	Backups  int      `json:"backups"`
	Chunks   int      `json:"chunks_checked"`
	ReadData bool     `json:"read_data"`
	Damaged  []string `json:"damaged_backups,omitempty"` // manifests that cannot be read
	// Problems name every missing or damaged chunk that a backup needs.
	Problems []string `json:"problems,omitempty"`
	// Unreferenced chunks are left by failed backups or an interrupted
	// delete: not a problem, prune removes them.
	Unreferenced      int   `json:"unreferenced_chunks"`
	UnreferencedBytes int64 `json:"unreferenced_bytes"`
}

// OK reports whether every backup can be restored.
func (c *RepositoryCheck) OK() bool { return len(c.Damaged) == 0 && len(c.Problems) == 0 }

// Check checks every backup of the repository: that its manifest reads
// back intact and that every chunk it references exists (and, with
// readData, reads back intact), and counts the chunks no backup uses. It
// writes nothing.
func Check(ctx context.Context, r *repo.Repository, readData bool, progress func(done, total int)) (*RepositoryCheck, error) {
	all, damaged, err := LoadAll(ctx, r)
	if err != nil {
		return nil, err
	}
	res := &RepositoryCheck{Backups: len(all) + len(damaged), ReadData: readData}
	for _, d := range damaged {
		res.Damaged = append(res.Damaged, d.ID)
	}
	refs := map[string]bool{}
	for _, m := range all {
		m.Referenced(refs)
	}
	// Point-in-time recovery's base backups use the same chunks (the
	// caller reports damaged bases).
	if _, err := r.BaseReferences(ctx, refs); err != nil {
		return nil, err
	}
	res.Chunks = len(refs)
	problems, err := r.CheckChunks(ctx, refs, readData, progress)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		res.Problems = append(res.Problems, p.Error())
	}
	if res.Unreferenced, res.UnreferencedBytes, err = r.Unreferenced(ctx, refs); err != nil {
		return nil, err
	}
	return res, nil
}

// RepositoryStats are the sizes of a repository's backups and what
// deduplication and compression saved.
type RepositoryStats struct {
	Backups int `json:"backups"`
	// LogicalBytes: the table data of every backup, as if each were stored
	// whole and uncompressed.
	LogicalBytes int64 `json:"logical_bytes"`
	// StoredBytes: what the chunks occupy (deduplicated, compressed).
	StoredBytes int64 `json:"stored_bytes"`
	Chunks      int   `json:"chunks"`
	// SavingRatio is LogicalBytes / StoredBytes: 10 means ten times less
	// space than the backups' table data.
	SavingRatio float64       `json:"saving_ratio"`
	PerStore    []StoreStats  `json:"stores"`
	PerBackup   []BackupStats `json:"backups_detail"`
}

// StoreStats sums one store's part over every backup.
type StoreStats struct {
	Store        string `json:"store"`
	LogicalBytes int64  `json:"logical_bytes"`
	// StoredBytes: the chunks this store's tables reference (a chunk shared
	// with another store counts in both).
	StoredBytes int64 `json:"stored_bytes"`
}

// BackupStats is one backup's size.
type BackupStats struct {
	ID           string `json:"id"`
	Mode         Mode   `json:"mode"`
	LogicalBytes int64  `json:"logical_bytes"`
	StoredBytes  int64  `json:"stored_bytes"` // every chunk it references
	// AddedBytes: what it stored that no earlier backup had, when taken.
	AddedBytes int64 `json:"added_bytes"`
	// UniqueBytes: chunks no other backup references now, which deleting
	// it would free.
	UniqueBytes int64 `json:"unique_bytes"`
}

// Stats sizes the repository's backups from their manifests and the chunk
// listing; it reads no chunk and writes nothing.
func Stats(ctx context.Context, r *repo.Repository) (*RepositoryStats, error) {
	all, _, err := LoadAll(ctx, r)
	if err != nil {
		return nil, err
	}
	sizes, err := r.ChunkSizes(ctx)
	if err != nil {
		return nil, err
	}
	st := &RepositoryStats{Backups: len(all), Chunks: len(sizes)}
	for _, size := range sizes {
		st.StoredBytes += size
	}
	users := map[string]int{} // chunk -> backups referencing it
	refsOf := make([]map[string]bool, len(all))
	for i, m := range all {
		refsOf[i] = map[string]bool{}
		m.Referenced(refsOf[i])
		for id := range refsOf[i] {
			users[id]++
		}
	}
	stores := map[string]*StoreStats{}
	storeChunks := map[string]map[string]bool{}
	for i, m := range all {
		b := BackupStats{ID: m.ID, Mode: m.Mode, LogicalBytes: m.Bytes, AddedBytes: m.NewBytes}
		for id := range refsOf[i] {
			b.StoredBytes += sizes[id]
			if users[id] == 1 {
				b.UniqueBytes += sizes[id]
			}
		}
		st.LogicalBytes += m.Bytes
		st.PerBackup = append(st.PerBackup, b)
		for _, s := range m.Stores {
			if stores[s.Name] == nil {
				stores[s.Name] = &StoreStats{Store: s.Name}
				storeChunks[s.Name] = map[string]bool{}
			}
			stores[s.Name].LogicalBytes += s.Bytes
			for _, t := range s.Tables {
				for _, id := range t.Chunks {
					storeChunks[s.Name][id] = true
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(stores)) {
		for id := range storeChunks[name] {
			stores[name].StoredBytes += sizes[id]
		}
		st.PerStore = append(st.PerStore, *stores[name])
	}
	if st.StoredBytes > 0 {
		st.SavingRatio = float64(st.LogicalBytes) / float64(st.StoredBytes)
	}
	return st, nil
}
