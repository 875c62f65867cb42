package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
)

// CreateBases takes a physical base backup of every PITR store (in
// turn: each streams a whole server), holding lk since before the first
// chunk, as a logical backup does. Each base is recorded once its stream
// is stored; a store that fails is reported and the others still go.
// SQLite stores are skipped (logical backups cover them).
func CreateBases(ctx context.Context, r *repo.Repository, lk *repo.Lock, st *multistorage.Storage) ([]*Base, error) {
	configs, err := storeEngines(st)
	if err != nil {
		return nil, err
	}
	var made []*Base
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(configs)) {
		e, err := EngineFor(configs[name].Engine)
		if err != nil {
			slog.Info("base: skipped, no point-in-time recovery", "store", name, "engine", configs[name].Engine)
			continue
		}
		b, err := createBase(ctx, r, lk, name, configs[name].Engine, func(w io.Writer) (BaseInfo, error) {
			return e.Base(ctx, configs[name], w)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("base backup of store %s: %w", name, err))
			continue
		}
		made = append(made, b)
	}
	if len(made) == 0 && len(errs) == 0 {
		return nil, errors.New("no store has point-in-time recovery (PostgreSQL or MariaDB): there is nothing to take a base backup of")
	}
	return made, errors.Join(errs...)
}

// createBase streams one base into r and records it last.
func createBase(ctx context.Context, r *repo.Repository, lk *repo.Lock, store, engine string, take func(io.Writer) (BaseInfo, error)) (*Base, error) {
	names, err := r.ListLogs(ctx, store)
	if err != nil {
		return nil, err
	}
	b := &Base{Store: store, Engine: engine, Taken: time.Now().UTC()}
	b.ID = newID(b.Taken)
	if len(names) > 0 {
		b.LogsBefore = slices.MaxFunc(names, CompareLogNames)
	}
	pr, pw := io.Pipe()
	var info BaseInfo
	var takeErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		info, takeErr = take(pw)
		pw.CloseWithError(takeErr)
	}()
	s, err := r.SaveStream(ctx, pr, nil)
	pr.CloseWithError(errors.New("the repository stopped reading the base backup"))
	<-done
	if takeErr != nil {
		return nil, takeErr
	}
	if err != nil {
		return nil, err
	}
	b.Info, b.Chunks, b.Bytes, b.NewBytes, b.Took = info, s.Chunks, s.Bytes, s.NewBytes, time.Since(b.Taken)
	if err := save(ctx, r, lk, repo.KindBase, b.ID, b); err != nil {
		return nil, err
	}
	slog.Info("base: recorded", "id", b.ID, "store", store, "bytes", b.Bytes, "new_bytes", b.NewBytes, "start", b.Info.Start.String(), "took", b.Took)
	return b, nil
}
