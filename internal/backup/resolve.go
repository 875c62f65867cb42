package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/stillpoint/stillpoint/internal/hint"
	"github.com/stillpoint/stillpoint/internal/repo"
)

// Latest names the newest consistent backup wherever a backup id is taken.
const Latest = "latest"

// RefError is a backup reference that names no backup, or more than one:
// the caller's input is at fault, and the message says what to type.
type RefError struct {
	Ref        string
	Candidates []string // ambiguous: every id the reference matches
	err        error
}

func (e *RefError) Error() string { return e.err.Error() }
func (e *RefError) Unwrap() error { return e.err }

// Resolve turns what an operator typed into a backup id: "latest" (the
// newest fence or pause backup by start time; independent backups have no
// cut and are never "latest"), a full id, or a unique prefix of an id or of
// its random part (20261125T063906Z-3a800dbf is found by 2026112 and by
// 3a80). A reference that matches nothing or several backups is a
// *RefError listing the candidates.
func Resolve(ctx context.Context, r *repo.Repository, ref string) (string, error) {
	if ref == Latest {
		return latest(ctx, r)
	}
	ids, err := r.ListManifests(ctx)
	if err != nil {
		return "", err
	}
	if slices.Contains(ids, ref) {
		return ref, nil
	}
	var matches []string
	for _, id := range ids {
		_, random, _ := strings.Cut(id, "-")
		if ref != "" && (strings.HasPrefix(id, ref) || strings.HasPrefix(random, ref)) {
			matches = append(matches, id)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return "", &RefError{Ref: ref, err: hint.Run(fmt.Errorf("no backup %q in repository %s (an id, a unique prefix of one, or %q)", ref, r, Latest), "backup", "list")}
	}
	return "", &RefError{Ref: ref, Candidates: matches, err: fmt.Errorf("backup %q is ambiguous in repository %s: it matches %s; give more characters", ref, r, strings.Join(matches, ", "))}
}

func latest(ctx context.Context, r *repo.Repository) (string, error) {
	all, damaged, err := LoadAll(ctx, r)
	if err != nil {
		return "", err
	}
	for _, m := range slices.Backward(all) {
		if m.Mode != Independent {
			return m.ID, nil
		}
	}
	why := "it holds no backup"
	switch {
	case len(all) > 0:
		why = fmt.Sprintf("it holds only independent backups (%d), which have no cut; name one by its id, with restore --allow-inconsistent, to restore it anyway", len(all))
	case len(damaged) > 0:
		why = fmt.Sprintf("its only backups are damaged (%d)", len(damaged))
	}
	return "", &RefError{Ref: Latest, err: hint.Run(fmt.Errorf("no latest backup in repository %s: %s", r, why), "backup", "list")}
}

// IsRefError reports whether err is a reference that named no single backup.
func IsRefError(err error) bool {
	var re *RefError
	return errors.As(err, &re)
}
