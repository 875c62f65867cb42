// Package backup takes transactionally consistent backups of every store
// into a repository: cut (internal/cut), then stream every table from the
// held snapshots, in parallel, into deduplicated chunks, and write the
// manifest last so that a backup without one is never listed.
package backup

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Mode is how the cut is taken.
type Mode string

const (
	// Fence blocks commit decisions for the moment the snapshots take to
	// open; the applications never stop.
	Fence Mode = "fence"
	// Pause pauses every server through rpc.Admin (draining in-flight
	// transactions), opens the snapshots, and unpauses.
	Pause Mode = "pause"
	// Independent snapshots each store on its own, one after the other,
	// with no cut at all: what per-database backups do. It exists to show
	// what goes wrong without a cut; never restore one in production.
	Independent Mode = "independent"
)

// ParseMode reads a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Fence, Pause, Independent:
		return m, nil
	}
	return "", fmt.Errorf("unknown backup mode %q: use fence, pause or independent", s)
}

// Manifest describes one backup: written last, it is what makes the
// backup exist.
type Manifest struct {
	ID       string    `json:"id"`
	Mode     Mode      `json:"mode"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// CutAt is when the cut was taken (the fence released, or the pause
	// ended); empty for independent backups, which have no cut.
	CutAt time.Time `json:"cut_at,omitzero"`
	// FenceWait and FenceHold: how long the fence took to be granted, and
	// how long commit decisions were blocked.
	FenceWait   time.Duration `json:"fence_wait_ns,omitzero"`
	FenceHold   time.Duration `json:"fence_hold_ns,omitzero"`
	Coordinator string        `json:"coordinator_store"`
	// PausedWindow is when every server was paused (pause mode).
	PausedWindow *Window       `json:"paused_window,omitempty"`
	Stores       []StoreBackup `json:"stores"`
	Rows         int64         `json:"rows"`
	Bytes        int64         `json:"bytes"`     // table streams, uncompressed
	NewBytes     int64         `json:"new_bytes"` // stored by this backup (compressed), after dedup
	Encrypted    bool          `json:"encrypted"`
	// DDLFormat is the storage.DefinitionFormat of the definitions the
	// stores and tables carry (docs/ddl.md); 0 in manifests written before
	// they were captured, which restore as they always did.
	DDLFormat int `json:"ddl_format,omitempty"`
}

// Window is a paused window.
type Window struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Targets []string  `json:"targets"`
}

// StoreBackup is one store's part of a backup.
type StoreBackup struct {
	Name     string        `json:"name"`
	Engine   string        `json:"engine"`
	Version  string        `json:"version"`
	CutPoint string        `json:"cut_point"`
	Tables   []TableBackup `json:"tables"`
	Rows     int64         `json:"rows"`
	Bytes    int64         `json:"bytes"`
	// Namespaces are the definitions of the store's namespaces (MariaDB:
	// character set and collation), by namespace.
	Namespaces map[string]*storage.NamespaceDefinition `json:"namespaces,omitempty"`
	// MetadataTable and MetadataSchema are the metadata table's own DDL.
	MetadataTable  *storage.TableDefinition     `json:"metadata_table,omitempty"`
	MetadataSchema *storage.NamespaceDefinition `json:"metadata_schema,omitempty"`
}

// TableBackup is one table: its metadata and the chunks of its stream.
type TableBackup struct {
	Metadata storage.TableMetadata `json:"metadata"`
	Rows     int64                 `json:"rows"`
	Bytes    int64                 `json:"bytes"`
	NewBytes int64                 `json:"new_bytes"`
	Chunks   []string              `json:"chunks"`
	// KeyLengths: the longest value of each TEXT/BLOB key or indexed
	// column. Nil in manifests written before it was recorded; restore then
	// measures while it checks the chunks.
	KeyLengths map[string]KeyLength `json:"key_lengths"`
	// Definition is the table as its engine's catalog had it; nil in
	// manifests written before it was captured.
	Definition *storage.TableDefinition `json:"definition,omitempty"`
}

// Encode is the manifest as stored.
func (m *Manifest) Encode() ([]byte, error) { return json.MarshalIndent(m, "", "  ") }

// DecodeManifest reads a stored manifest.
func DecodeManifest(data []byte) (*Manifest, error) {
	// Manifests written before durations were nanoseconds hold them as Go
	// duration strings under other keys.
	var m struct {
		Manifest
		OldFenceWait string `json:"fence_wait"`
		OldFenceHold string `json:"fence_hold"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	for _, old := range []struct {
		s string
		d *time.Duration
	}{{m.OldFenceWait, &m.FenceWait}, {m.OldFenceHold, &m.FenceHold}} {
		if old.s == "" {
			continue
		}
		v, err := time.ParseDuration(old.s)
		if err != nil {
			return nil, fmt.Errorf("manifest: fence time %q: %w", old.s, err)
		}
		*old.d = v
	}
	return &m.Manifest, nil
}

// Referenced collects every chunk a manifest uses.
func (m *Manifest) Referenced(into map[string]bool) {
	for _, s := range m.Stores {
		for _, t := range s.Tables {
			for _, c := range t.Chunks {
				into[c] = true
			}
		}
	}
}

// NewID names a backup by its start time, sortable, plus a random suffix.
func NewID(t time.Time, suffix string) string {
	return t.UTC().Format("20060102T150405Z") + "-" + suffix
}
