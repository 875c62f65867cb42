package backup

import (
	"context"
	"fmt"

	"github.com/stillpoint/stillpoint/internal/hint"
	"github.com/stillpoint/stillpoint/internal/repo"
)

// PruneResult is what a prune removed, or which damaged backups stopped
// it: a manifest that cannot be read might reference any chunk, so while
// one exists nothing is removed.
type PruneResult struct {
	Removed int      `json:"chunks_removed"`
	Freed   int64    `json:"bytes_freed"`
	Blocked []string `json:"blocked_by_damaged,omitempty"`
}

// DeleteResult is what Delete did.
type DeleteResult struct {
	Deleted    string       `json:"deleted"`
	WasDamaged bool         `json:"was_damaged,omitempty"`
	Prune      *PruneResult `json:"prune,omitempty"`
}

// PruneError is a prune that failed after the backup it followed was
// deleted: the backup is gone, some chunks it alone used are left.
type PruneError struct {
	Deleted string
	Err     error
}

func (e *PruneError) Error() string {
	return fmt.Sprintf("backup %s was deleted, but removing the chunks no backup uses failed: %v; a prune finishes the job", e.Deleted, e.Err)
}

func (e *PruneError) Unwrap() error { return e.Err }

// Delete deletes backup id (readable or damaged) holding lk and, with
// prune, the chunks no other backup references. Everything that can fail
// is read before the manifest is removed, so an error is either "nothing
// deleted" or a *PruneError (the backup is gone, its chunks partly stay).
func Delete(ctx context.Context, r *repo.Repository, lk *repo.Lock, id string, prune bool) (DeleteResult, error) {
	res, err := deleteTarget(ctx, r, id)
	if err != nil {
		return DeleteResult{}, err
	}
	var refs map[string]bool
	var blocked []string
	if prune {
		if refs, blocked, err = referenced(ctx, r, id); err != nil {
			return DeleteResult{}, fmt.Errorf("nothing deleted: %w", err)
		}
	}
	if err := r.DeleteManifest(ctx, lk, id); err != nil {
		return DeleteResult{}, err
	}
	if prune {
		p, err := pruneUnless(ctx, r, lk, refs, blocked)
		res.Prune = &p
		if err != nil {
			return res, hint.Run(&PruneError{Deleted: id, Err: err}, "backup", "prune")
		}
	}
	return res, nil
}

// deleteTarget reads the backup to delete: it must exist, readable or
// damaged.
func deleteTarget(ctx context.Context, r *repo.Repository, id string) (DeleteResult, error) {
	res := DeleteResult{Deleted: id}
	if _, err := Load(ctx, r, id); Unreadable(err) {
		res.WasDamaged = true
	} else if err != nil {
		return DeleteResult{}, err
	}
	return res, nil
}

// PlanDelete says what Delete would do, changing nothing and taking no
// lock: whether the backup exists and is damaged, and with prune how many
// chunks would go (the backup's own and any left by earlier failures).
func PlanDelete(ctx context.Context, r *repo.Repository, id string, prune bool) (DeleteResult, error) {
	res, err := deleteTarget(ctx, r, id)
	if err != nil {
		return DeleteResult{}, err
	}
	if prune {
		p, err := planPrune(ctx, r, id)
		if err != nil {
			return DeleteResult{}, err
		}
		res.Prune = &p
	}
	return res, nil
}

// PlanPrune says what Prune would remove, changing nothing.
func PlanPrune(ctx context.Context, r *repo.Repository) (PruneResult, error) {
	return planPrune(ctx, r, "")
}

func planPrune(ctx context.Context, r *repo.Repository, skip string) (PruneResult, error) {
	refs, blocked, err := referenced(ctx, r, skip)
	if err != nil {
		return PruneResult{}, err
	}
	res := PruneResult{Blocked: blocked}
	if len(blocked) == 0 {
		res.Removed, res.Freed, err = r.Unreferenced(ctx, refs)
	}
	return res, err
}

// Prune removes the chunks no backup references, holding lk.
func Prune(ctx context.Context, r *repo.Repository, lk *repo.Lock) (PruneResult, error) {
	refs, blocked, err := referenced(ctx, r, "")
	if err != nil {
		return PruneResult{}, err
	}
	return pruneUnless(ctx, r, lk, refs, blocked)
}

// referenced collects the chunks every backup but skip references, and
// the damaged backups but skip.
func referenced(ctx context.Context, r *repo.Repository, skip string) (refs map[string]bool, damagedIDs []string, err error) {
	all, damaged, err := LoadAll(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	refs = map[string]bool{}
	for _, m := range all {
		if m.ID != skip {
			m.Referenced(refs)
		}
	}
	for _, d := range damaged {
		if d.ID != skip {
			damagedIDs = append(damagedIDs, d.ID)
		}
	}
	// Point-in-time recovery's base backups share the chunks.
	bases, err := r.BaseReferences(ctx, refs)
	return refs, append(damagedIDs, bases...), err
}

// pruneUnless prunes to refs unless a damaged backup blocks it.
func pruneUnless(ctx context.Context, r *repo.Repository, lk *repo.Lock, refs map[string]bool, blocked []string) (PruneResult, error) {
	res := PruneResult{Blocked: blocked}
	if len(blocked) > 0 {
		return res, nil
	}
	var err error
	res.Removed, res.Freed, err = r.Prune(ctx, lk, refs)
	return res, err
}
