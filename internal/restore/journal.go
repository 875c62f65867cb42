package restore

import (
	"context"
	"slices"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// The restore journal: stillpoint.restore_journal in the coordinator's
// store, created only by restore and removed once the restore is complete,
// so a restored database holds exactly what the backup held. One row for
// the whole restore (item "*": IN_PROGRESS, then COMPLETE) and one per
// table loaded (DONE, with its row count).
const (
	journalNamespace = config.StillpointNamespace
	journalTable     = "restore_journal"
	wholeItem        = "*"
	stateInProgress  = "IN_PROGRESS"
	stateComplete    = "COMPLETE"
	stateDone        = "DONE"
)

func journalLayout() *storage.TableMetadata {
	return &storage.TableMetadata{
		Namespace: journalNamespace, Table: journalTable,
		Columns: []storage.Column{{Name: "item", Type: storage.Text}, {Name: "backup_id", Type: storage.Text},
			{Name: "state", Type: storage.Text}, {Name: "rows", Type: storage.BigInt}},
		PartitionKey: []string{"item"},
	}
}

type entry struct {
	backup, state string
	rows          int64
}

// readJournal returns the journal's entries by item; none when there is no
// journal, or only part of one: a journal whose creation was interrupted
// (its metadata incomplete) never held an entry, since entries are written
// after it is created.
func readJournal(ctx context.Context, st storage.Store) (map[string]entry, error) {
	out := map[string]entry{}
	m, err := st.TableMetadata(ctx, journalNamespace, journalTable)
	if err != nil || m == nil || !sameLayout(m, journalLayout()) {
		return out, err
	}
	recs, err := st.ScanAll(ctx, storage.ScanAll{Namespace: journalNamespace, Table: journalTable})
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		e := entry{}
		e.backup, _ = r["backup_id"].(string)
		e.state, _ = r["state"].(string)
		e.rows, _ = r["rows"].(int64)
		item, _ := r["item"].(string)
		out[item] = e
	}
	return out, nil
}

// Unfinished returns the id of a backup whose restore into st started and
// is not complete, or "". Such stores hold a partial state: nothing about
// them should be trusted until the restore is run again to its end.
func Unfinished(ctx context.Context, st storage.Store) (string, error) {
	j, err := readJournal(ctx, st)
	if err != nil {
		return "", err
	}
	if w := j[wholeItem]; w.state == stateInProgress {
		return w.backup, nil
	}
	return "", nil
}

// journal writes the journal of one restore.
type journal struct {
	st      storage.Store
	name    string
	d       Destination
	limits  storage.Limits
	writers *writers
	backup  string
}

// start replaces whatever journal the stores hold (an earlier one, or the
// remains of one whose creation or removal was interrupted) with a new
// one saying the restore of backup is in progress.
func (j *journal) start(ctx context.Context) error {
	defer j.writers.lock(j.name, j.limits)()
	err := retried(ctx, func() error {
		if err := j.d.PurgeTable(ctx, journalNamespace, journalTable); err != nil {
			return err
		}
		return j.d.CreateTable(ctx, journalLayout())
	})
	if err != nil {
		return err
	}
	return j.put(ctx, wholeItem, stateInProgress, 0)
}

// clear removes what an interrupted creation or removal of a journal left:
// the table (with some, all or none of its metadata) and the namespace
// (with or without its schema: it is made whole, then dropped).
func (j *journal) clear(ctx context.Context) error {
	defer j.writers.lock(j.name, j.limits)()
	return retried(ctx, func() error {
		if err := j.d.PurgeTable(ctx, journalNamespace, journalTable); err != nil {
			return err
		}
		nss, err := j.d.Namespaces(ctx)
		if err != nil || !slices.Contains(nss, journalNamespace) {
			return err
		}
		if err := j.d.CreateNamespace(ctx, journalNamespace); err != nil {
			return err
		}
		return j.d.DropNamespace(ctx, journalNamespace)
	})
}

// mark records the state of an item.
func (j *journal) mark(ctx context.Context, item, state string, rows int64) error {
	defer j.writers.lock(j.name, j.limits)()
	return j.put(ctx, item, state, rows)
}

func (j *journal) put(ctx context.Context, item, state string, rows int64) error {
	return j.st.Put(ctx, storage.Put{Namespace: journalNamespace, Table: journalTable,
		Values: storage.Record{"item": item, "backup_id": j.backup, "state": state, "rows": rows}})
}

// remove drops the journal, its metadata and its namespace. It runs only
// after the journal says COMPLETE, so a run stopped part way is finished by
// the next run.
func (j *journal) remove(ctx context.Context) error {
	defer j.writers.lock(j.name, j.limits)()
	if err := j.d.DropTable(ctx, journalNamespace, journalTable); err != nil {
		return err
	}
	return j.d.DropNamespace(ctx, journalNamespace)
}
