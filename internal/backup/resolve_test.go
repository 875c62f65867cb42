package backup_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/backup"

	"github.com/stillpoint/stillpoint/internal/repo/backend/mem"
)

// TestResolve: what an operator types names exactly one backup, or the
// error says which ones it could mean.
func TestResolve(t *testing.T) {
	ctx := context.Background()
	r, lk := lockedRepo(t, mem.New())
	at := time.Date(2026, 11, 25, 6, 39, 6, 0, time.UTC)
	for i, b := range []struct {
		id   string
		mode backup.Mode
	}{
		{"20261124T101010Z-3a800dbf", backup.Fence},
		{"20261125T063906Z-3a81aa00", backup.Pause},
		{"20261125T063906Z-c0ffee00", backup.Fence},
		{"20261125T070000Z-77777777", backup.Independent}, // newest, but no cut
	} {
		data, _ := (&backup.Manifest{ID: b.id, Mode: b.mode, Started: at.Add(time.Duration(i) * time.Millisecond)}).Encode()
		if err := r.SaveManifest(ctx, lk, b.id, data); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		ref, want  string
		candidates []string // ambiguous
		unknown    bool
	}{
		{ref: "latest", want: "20261125T063906Z-c0ffee00"},
		{ref: "20261124T101010Z-3a800dbf", want: "20261124T101010Z-3a800dbf"},
		{ref: "3a800dbf", want: "20261124T101010Z-3a800dbf"},
		{ref: "c0f", want: "20261125T063906Z-c0ffee00"},
		{ref: "20261124", want: "20261124T101010Z-3a800dbf"},
		{ref: "2026112", candidates: []string{"20261124T101010Z-3a800dbf", "20261125T063906Z-3a81aa00", "20261125T063906Z-c0ffee00", "20261125T070000Z-77777777"}},
		{ref: "3a8", candidates: []string{"20261124T101010Z-3a800dbf", "20261125T063906Z-3a81aa00"}},
		{ref: "20261125T063906Z", candidates: []string{"20261125T063906Z-3a81aa00", "20261125T063906Z-c0ffee00"}},
		{ref: "deadbeef", unknown: true},
		{ref: "", unknown: true},
	} {
		got, err := backup.Resolve(ctx, r, tc.ref)
		var re *backup.RefError
		switch {
		case tc.want != "":
			if err != nil || got != tc.want {
				t.Errorf("Resolve(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
			}
		case !backup.IsRefError(err):
			t.Errorf("Resolve(%q) = %q, %v; want a reference error", tc.ref, got, err)
		case tc.unknown:
			if !strings.Contains(err.Error(), "backup list") {
				t.Errorf("Resolve(%q): %v; want it to point at backup list", tc.ref, err)
			}
		default:
			errors.As(err, &re)
			if !slices.Equal(re.Candidates, tc.candidates) {
				t.Errorf("Resolve(%q) candidates %v, want %v", tc.ref, re.Candidates, tc.candidates)
			}
			for _, c := range tc.candidates {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("Resolve(%q): %v; want it to list %s", tc.ref, err, c)
				}
			}
		}
	}
}

// TestResolveLatestWithoutConsistentBackup: latest never falls back to a
// backup with no cut, and says why there is none.
func TestResolveLatestWithoutConsistentBackup(t *testing.T) {
	ctx := context.Background()
	for name, modes := range map[string][]backup.Mode{"empty": nil, "only independent": {backup.Independent}} {
		t.Run(name, func(t *testing.T) {
			r, lk := lockedRepo(t, mem.New())
			for i, m := range modes {
				id := backup.NewID(time.Now(), strings.Repeat(string(rune('a'+i)), 8))
				data, _ := (&backup.Manifest{ID: id, Mode: m, Started: time.Now()}).Encode()
				if err := r.SaveManifest(ctx, lk, id, data); err != nil {
					t.Fatal(err)
				}
			}
			_, err := backup.Resolve(ctx, r, backup.Latest)
			if !backup.IsRefError(err) {
				t.Fatalf("Resolve(latest) = %v, want a reference error", err)
			}
			if len(modes) > 0 && !strings.Contains(err.Error(), "independent") {
				t.Errorf("Resolve(latest): %v; want it to say only independent backups exist", err)
			}
		})
	}
}
