package backup_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/repo/backend/mem"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// failing fails Delete of chunks, or List of manifests, when told to.
type failing struct {
	backend.Backend
	chunkDeletes, manifestLists bool
}

var errInjected = errors.New("injected backend failure")

func (b *failing) Delete(ctx context.Context, name string) error {
	if b.chunkDeletes && strings.HasPrefix(name, "data/") {
		return errInjected
	}
	return b.Backend.Delete(ctx, name)
}

func (b *failing) List(ctx context.Context, prefix string) ([]string, error) {
	if b.manifestLists && prefix == "backups/" {
		return nil, errInjected
	}
	return b.Backend.List(ctx, prefix)
}

// lockedRepo is a new unencrypted repository on be, locked for the test.
func lockedRepo(t *testing.T, be backend.Backend) (*repo.Repository, *repo.Lock) {
	t.Helper()
	r, err := repo.Init(context.Background(), be, nil)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := r.Lock(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lk.Unlock() })
	return r, lk
}

// TestDelete: delete is all or nothing up to the prune, a failed prune
// says the backup is gone, a damaged backup can be deleted, and a damaged
// other backup stops the prune.
func TestDelete(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name         string
		damage       string // "target", "other" or ""
		chunkDeletes bool   // prune fails
		listFails    bool   // reading the catalog fails
		wantErr      string
		wantGone     bool // the target's manifest is gone
		wantBlocked  bool
		wantPruned   bool
	}{
		{name: "plain", wantGone: true, wantPruned: true},
		{name: "damaged target", damage: "target", wantGone: true, wantPruned: true},
		{name: "damaged other", damage: "other", wantGone: true, wantBlocked: true},
		{name: "prune fails", chunkDeletes: true, wantErr: "was deleted, but removing the chunks", wantGone: true},
		{name: "catalog unreadable", listFails: true, wantErr: "nothing deleted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			be := &failing{Backend: mem.New()}
			r, lk := lockedRepo(t, be)
			for i, id := range []string{"target", "other"} {
				st, err := r.SaveStream(ctx, bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 1<<20)), nil)
				if err != nil {
					t.Fatal(err)
				}
				m := &backup.Manifest{ID: id, Stores: []backup.StoreBackup{{Name: "s", Tables: []backup.TableBackup{{Metadata: storage.TableMetadata{}, Chunks: st.Chunks}}}}}
				data, _ := m.Encode()
				if err := r.SaveManifest(ctx, lk, id, data); err != nil {
					t.Fatal(err)
				}
			}
			if c.damage != "" {
				obj, _ := be.Get(ctx, repo.ManifestName(c.damage))
				obj[len(obj)-1] ^= 1
				be.Put(ctx, repo.ManifestName(c.damage), obj)
			}
			be.chunkDeletes, be.manifestLists = c.chunkDeletes, c.listFails
			chunksBefore, _ := be.List(ctx, "data/")

			res, err := backup.Delete(ctx, r, lk, "target", true)
			var pe *backup.PruneError
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("Delete: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("Delete: %v, want an error saying %q", err, c.wantErr)
			case c.chunkDeletes && (!errors.As(err, &pe) || res.Deleted != "target"):
				t.Fatalf("Delete with a failing prune: %v, %+v; want a *PruneError and the result naming the deleted backup", err, res)
			}
			be.chunkDeletes, be.manifestLists = false, false
			gone, _ := be.Exists(ctx, repo.ManifestName("target"))
			if gone == c.wantGone {
				t.Fatalf("target manifest exists = %v, want gone = %v", gone, c.wantGone)
			}
			if c.damage == "target" && !res.WasDamaged {
				t.Fatalf("result %+v does not say the backup was damaged", res)
			}
			chunksAfter, _ := be.List(ctx, "data/")
			pruned := len(chunksAfter) < len(chunksBefore)
			if pruned != c.wantPruned {
				t.Fatalf("chunks %d -> %d, want pruned = %v", len(chunksBefore), len(chunksAfter), c.wantPruned)
			}
			if blocked := res.Prune != nil && len(res.Prune.Blocked) > 0; blocked != c.wantBlocked {
				t.Fatalf("prune %+v: blocked = %v, want %v", res.Prune, blocked, c.wantBlocked)
			}
		})
	}
}

// TestLoadAllInStartOrder: backups taken within one second have ids that
// differ only in a random suffix; the catalog lists them in the order they
// were taken, not in the suffixes' order.
func TestLoadAllInStartOrder(t *testing.T) {
	ctx := context.Background()
	r, lk := lockedRepo(t, mem.New())
	at := time.Date(2026, 11, 25, 8, 35, 33, 0, time.UTC)
	taken := []string{"20261125T083533Z-c28bc8e0", "20261125T083533Z-9c8e62ed", "20261125T083533Z-733448c7"}
	for i, id := range taken {
		data, _ := (&backup.Manifest{ID: id, Started: at.Add(time.Duration(i) * time.Millisecond)}).Encode()
		if err := r.SaveManifest(ctx, lk, id, data); err != nil {
			t.Fatal(err)
		}
	}
	all, _, err := backup.LoadAll(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range all {
		got = append(got, m.ID)
	}
	if !slices.Equal(got, taken) {
		t.Fatalf("catalog order %v, want the order taken %v", got, taken)
	}
}

// TestManifestDurations: durations are nanoseconds in JSON, and manifests
// written when they were Go duration strings still read.
func TestManifestDurations(t *testing.T) {
	m := &backup.Manifest{ID: "x", FenceWait: 1500 * time.Microsecond, FenceHold: 394365 * time.Nanosecond}
	data, err := m.Encode()
	if err != nil || !strings.Contains(string(data), `"fence_hold_ns": 394365`) {
		t.Fatalf("encoded %s, %v; want fence_hold_ns in nanoseconds", data, err)
	}
	for _, in := range []string{string(data), `{"id": "x", "fence_wait": "1.5ms", "fence_hold": "394.365µs"}`} {
		got, err := backup.DecodeManifest([]byte(in))
		if err != nil || got.FenceWait != m.FenceWait || got.FenceHold != m.FenceHold {
			t.Errorf("decode %s: %+v, %v; want wait %v hold %v", in, got, err, m.FenceWait, m.FenceHold)
		}
	}
	if _, err := backup.DecodeManifest([]byte(`{"id": "x", "fence_hold": "soon"}`)); err == nil {
		t.Error("a manifest with an unreadable old duration decoded")
	}
}
