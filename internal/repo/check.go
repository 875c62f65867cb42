package repo

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/errgroup"
)

// checkWorkers is how many objects CheckChunks reads at once.
const checkWorkers = 4

func isObjectProblem(err error) bool {
	var ce *CorruptError
	var me *MissingError
	return errors.As(err, &ce) || errors.As(err, &me)
}

// CheckChunks checks only the given chunks: that each exists and, with
// readData, that it reads back intact. One error per missing or damaged
// chunk, naming it; the second result is a failure to check at all.
func (r *Repository) CheckChunks(ctx context.Context, ids map[string]bool, readData bool, progress func(done, total int)) ([]error, error) {
	var problems []error
	var mu sync.Mutex
	done := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(checkWorkers)
	for id := range ids {
		g.Go(func() error {
			var err error
			if readData {
				_, err = r.LoadChunk(gctx, id)
			} else if ok, xerr := r.be.Exists(gctx, ChunkName(id)); xerr != nil {
				err = xerr
			} else if !ok {
				err = &MissingError{Repo: r.String(), Object: ChunkName(id)}
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
			case isObjectProblem(err) || errors.Is(err, errNotFound):
				problems = append(problems, err)
			default:
				return err
			}
			done++
			if progress != nil {
				progress(done, len(ids))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sortErrors(problems)
	return problems, nil
}
