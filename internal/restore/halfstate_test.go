package restore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// halfTarget is a PostgreSQL+MariaDB target and a way to break it as an
// interrupted restore would have.
type halfTarget struct {
	t     *testing.T
	st    *multistorage.Storage
	repo  *repo.Repository
	man   *backup.Manifest
	maria *backup.TableBackup // a table of the backup that goes to MariaDB
}

// keepMetadata deletes the metadata rows of a table past the first keep,
// as a kill does between MariaDB's implicitly committed CREATE TABLE and
// the metadata inserts.
func (h *halfTarget) keepMetadata(namespace, table string, keep int) {
	h.t.Helper()
	ctx := context.Background()
	_, d, err := restore.Stores(h.st).Destination(ctx, namespace)
	if err != nil {
		h.t.Fatal(err)
	}
	s := d.(*sqlstore.Store)
	p := s.Dialect().Placeholder
	q := "DELETE FROM " + s.Dialect().Table(sqlstore.MetadataNamespace, "metadata") + " WHERE full_table_name = " + p(1) + " AND ordinal_position > " + p(2)
	if _, err := s.DB().ExecContext(ctx, q, namespace+"."+table, keep); err != nil {
		h.t.Fatal(err)
	}
}

// createNamespace creates a namespace in its store.
func (h *halfTarget) createNamespace(ns string) {
	h.t.Helper()
	if err := h.st.CreateNamespace(context.Background(), ns); err != nil {
		h.t.Fatal(err)
	}
}

// exec runs SQL in the store of a namespace.
func (h *halfTarget) exec(ns, q string) {
	h.t.Helper()
	_, d, err := restore.Stores(h.st).Destination(context.Background(), ns)
	if err == nil {
		_, err = d.(*sqlstore.Store).DB().ExecContext(context.Background(), q)
	}
	if err != nil {
		h.t.Fatalf("%s: %v", q, err)
	}
}

// createMariaTable creates the MariaDB table with keep of its metadata rows.
func (h *halfTarget) createMariaTable(keep int) {
	h.t.Helper()
	m := h.maria.Metadata
	if err := h.st.CreateTable(context.Background(), &m); err != nil {
		h.t.Fatal(err)
	}
	h.keepMetadata(m.Namespace, m.Table, keep)
}

// journal writes journal entries (creating the journal if needed).
func (h *halfTarget) journal(backupID string, entries map[string]string) {
	h.t.Helper()
	ctx := context.Background()
	if m, _ := h.st.TableMetadata(ctx, restore.JournalNamespace, restore.JournalTable); m == nil {
		if err := h.st.CreateTable(ctx, restore.JournalLayout()); err != nil {
			h.t.Fatal(err)
		}
	}
	for item, state := range entries {
		rows := int64(0)
		if state == restore.StateDone {
			rows = h.maria.Rows
		}
		if err := h.st.Put(ctx, storage.Put{Namespace: restore.JournalNamespace, Table: restore.JournalTable,
			Values: storage.Record{"item": item, "backup_id": backupID, "state": state, "rows": rows}}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *halfTarget) restoreClean() {
	h.t.Helper()
	if _, err := restore.Run(context.Background(), h.repo, h.man, restore.Stores(h.st), restore.Options{}); err != nil {
		h.t.Fatalf("clean restore: %v", err)
	}
}

// TestResumeFromHalfStates: every state an interrupted restore (or schema
// load) can leave on MariaDB, where DDL commits implicitly, is either
// finished by the next run or refused by it with a message naming
// --force, and --force gets out of it; the end state is the backup's,
// row for row and metadata row for metadata row, with no journal left.
func TestResumeFromHalfStates(t *testing.T) {
	ctx := context.Background()
	nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
	src := newBank(t, testenv.Embedded(t), nss, 40)
	man := src.backupUnderLoad(t)
	var maria *backup.TableBackup
	for _, s := range man.Stores {
		for i, tb := range s.Tables {
			if tb.Metadata.Namespace == nss[1] && tb.Metadata.Table == "accounts" {
				maria = &s.Tables[i]
			}
		}
	}
	full := maria.Metadata.FullName()
	mariaNs, mariaTable := maria.Metadata.Namespace, maria.Metadata.Table

	var want map[string][]string
	t.Run("clean", func(t *testing.T) {
		st := multistorage.New(testenv.Mixed(t, nss...))
		defer st.Close()
		if _, err := restore.Run(ctx, src.repo, man, restore.Stores(st), restore.Options{}); err != nil {
			t.Fatal(err)
		}
		want = dump(t, st, man)
	})

	tests := []struct {
		name    string
		setup   func(h *halfTarget)
		refusal string // what a run without --force says; "" if it finishes
	}{
		{"table metadata partly written, restore in progress", func(h *halfTarget) {
			h.journal(man.ID, map[string]string{restore.WholeItem: restore.StateInProgress})
			h.createMariaTable(1)
		}, ""},
		{"table without metadata, restore in progress", func(h *halfTarget) {
			h.journal(man.ID, map[string]string{restore.WholeItem: restore.StateInProgress})
			h.createMariaTable(0)
		}, ""},
		{"table marked done, its metadata partly written", func(h *halfTarget) {
			h.restoreClean()
			h.journal(man.ID, map[string]string{restore.WholeItem: restore.StateInProgress, full: restore.StateDone})
			h.keepMetadata(mariaNs, mariaTable, 1)
		}, ""},
		{"restore complete, journal not yet removed", func(h *halfTarget) {
			h.restoreClean()
			h.journal(man.ID, map[string]string{restore.WholeItem: restore.StateComplete})
		}, ""},
		{"journal creation interrupted", func(h *halfTarget) {
			h.journal(man.ID, nil)
			h.keepMetadata(restore.JournalNamespace, restore.JournalTable, 1)
		}, ""},
		{"table metadata partly written, no restore", func(h *halfTarget) { h.createMariaTable(1) }, "another layout"},
		{"table without metadata, no restore", func(h *halfTarget) { h.createMariaTable(0) }, "without ScalarDB metadata"},
		{"journal removal interrupted: namespace left", func(h *halfTarget) {
			h.restoreClean()
			h.createNamespace(restore.JournalNamespace)
		}, "already holds data"},
		{"journal removal interrupted: namespace row left, schema dropped", func(h *halfTarget) {
			h.restoreClean()
			h.createNamespace(restore.JournalNamespace)
			h.exec(restore.JournalNamespace, `DROP SCHEMA "`+restore.JournalNamespace+`"`)
		}, "already holds data"},
		{"another backup's restore unfinished", func(h *halfTarget) {
			h.journal("20990101T000000Z-other", map[string]string{restore.WholeItem: restore.StateInProgress})
		}, "unfinished restore of backup 20990101T000000Z-other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testenv.Mixed(t, nss...)
			st := multistorage.New(cfg)
			defer st.Close()
			h := &halfTarget{t: t, st: st, repo: src.repo, man: man, maria: maria}
			tt.setup(h)
			// The next run is another process: nothing cached.
			next := multistorage.New(cfg)
			defer next.Close()
			_, err := restore.Run(ctx, src.repo, man, restore.Stores(next), restore.Options{})
			switch {
			case tt.refusal == "" && err != nil:
				t.Fatalf("the next run: %v", err)
			case tt.refusal != "":
				if err == nil || !strings.Contains(err.Error(), tt.refusal) || !strings.Contains(err.Error(), "--force") {
					t.Fatalf("the next run without --force = %v, want a refusal saying %q and naming --force", err, tt.refusal)
				}
				if s, _ := restore.JournalState(ctx, next); s == "" {
					checkNoJournal(t, next) // no restore is under way: its remains are gone, refused or not
				}
				if _, err := restore.Run(ctx, src.repo, man, restore.Stores(next), restore.Options{Force: true}); err != nil {
					t.Fatalf("--force: %v", err)
				}
			}
			checkRestored(t, cfg, man, want)
		})
	}
}

// checkRestored reads the target afresh (no cached metadata): every table
// has the backup's metadata and rows, and no journal is left.
func checkRestored(t *testing.T, cfg *config.Config, man *backup.Manifest, want map[string][]string) {
	t.Helper()
	ctx := context.Background()
	st := multistorage.New(cfg)
	defer st.Close()
	for _, s := range man.Stores {
		for _, tb := range s.Tables {
			got, err := st.TableMetadata(ctx, tb.Metadata.Namespace, tb.Metadata.Table)
			if err != nil || got == nil || len(got.Columns) != len(tb.Metadata.Columns) {
				t.Fatalf("metadata of %s after the restore: %v %+v, want %d columns", tb.Metadata.FullName(), err, got, len(tb.Metadata.Columns))
			}
		}
	}
	if diff := sameDump(dump(t, st, man), want); diff != "" {
		t.Fatalf("the restored stores differ from a clean restore: %s", diff)
	}
	checkNoJournal(t, st)
	if id, err := restore.Unfinished(ctx, st); err != nil || id != "" {
		t.Fatalf("Unfinished after the restore = %q, %v", id, err)
	}
}

// TestSessionOfAKilledRun: the server session of a killed run can commit
// its last statement after the next run started (here: the CREATE TABLE
// of a table the next run is creating). The next run still finishes.
func TestSessionOfAKilledRun(t *testing.T) {
	ctx := context.Background()
	nss := []string{testenv.UniqueName("bank_a"), testenv.UniqueName("bank_b")}
	src := newBank(t, testenv.Embedded(t), nss, 10)
	man, err := backup.Create(ctx, src.st, src.repo, backup.Options{Mode: backup.Fence})
	if err != nil {
		t.Fatal(err)
	}
	cfg := postgresOnly(t, nss...)
	st := multistorage.New(cfg)
	defer st.Close()
	_, d, err := restore.Stores(st).Destination(ctx, nss[1])
	if err != nil {
		t.Fatal(err)
	}
	db := d.(*sqlstore.Store).DB()
	if err := d.CreateNamespace(ctx, nss[1]); err != nil {
		t.Fatal(err)
	}
	ghost, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Rollback()
	if _, err := ghost.ExecContext(ctx, `CREATE TABLE "`+nss[1]+`"."accounts" (x INT)`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := restore.Run(ctx, src.repo, man, restore.Stores(st), restore.Options{})
		done <- err
	}()
	// Commit the ghost's statement once the run waits on it.
	testenv.Await(t, "the restore to wait on the other session's CREATE TABLE", func() bool {
		var waiting int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("the restore ended (%v) without waiting on the other session's CREATE TABLE", err)
		default:
		}
		return waiting > 0
	})
	if err := ghost.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("restore beside a killed run's session: %v", err)
	}
	checkSettled(t, st, src.setup)
}
