package backup

import (
	"context"
	"fmt"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
)

// restoreBatch is how many records go into one local transaction.
const restoreBatch = 500

// Restore loads every table of a backup into the stores its namespaces map
// to in target, creating the tables. It refuses tables that already exist.
// After it, lazy recovery (stillpoint verify) completes the cut.
func Restore(ctx context.Context, r *repo.Repository, m *Manifest, target *multistorage.Storage) error {
	for _, s := range m.Stores {
		for _, t := range s.Tables {
			meta := t.Metadata
			existing, err := target.TableMetadata(ctx, meta.Namespace, meta.Table)
			if err != nil {
				return err
			}
			if existing != nil {
				return fmt.Errorf("restore: table %s already exists in the target; restore into empty stores", meta.FullName())
			}
			if err := target.CreateTable(ctx, &meta); err != nil {
				return err
			}
			batch := make([]storage.Mutation, 0, restoreBatch)
			flush := func() error {
				if len(batch) == 0 {
					return nil
				}
				err := target.Mutate(ctx, batch)
				batch = batch[:0]
				return err
			}
			err = ReadTable(ctx, r, t, func(rec storage.Record) error {
				batch = append(batch, storage.Put{Namespace: meta.Namespace, Table: meta.Table, Values: rec})
				if len(batch) == restoreBatch {
					return flush()
				}
				return nil
			})
			if err == nil {
				err = flush()
			}
			if err != nil {
				return fmt.Errorf("restore %s: %w", meta.FullName(), err)
			}
		}
	}
	return nil
}
