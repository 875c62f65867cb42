package repo

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"
)

// checkWorkers is how many objects Check reads at once.
const checkWorkers = 4

// Check verifies the repository and returns one error per problem, each
// naming the object (a *CorruptError or a *MissingError), sorted by object
// name; the second result is for failures to check at all (the backend
// failing, ctx done).
//
// It always verifies the config (its frame and, when encrypted, the key),
// decodes every manifest, and checks that every chunk in referenced (the
// caller collects it from the manifests) exists. With readData it also
// reads every chunk under data/ and verifies its checksum and that its
// content matches its name. progress, if not nil, is called with the
// number of objects read so far and the total to read (the config, the
// manifests and, with readData, the chunks); calls are serialised, never
// concurrent.
func (r *Repository) Check(ctx context.Context, referenced map[string]bool, readData bool, progress func(done, total int)) ([]error, error) {
	var problems []error
	var mu sync.Mutex
	report := func(err error) {
		mu.Lock()
		problems = append(problems, err)
		mu.Unlock()
	}

	manifests, err := r.be.List(ctx, backupsDir)
	if err != nil {
		return nil, err
	}
	infos, err := r.be.ListInfo(ctx, dataPrefix)
	if err != nil {
		return nil, err
	}
	present := make(map[string]bool, len(infos))
	var chunkNames []string
	for _, in := range infos {
		if id := chunkIDFromName(in.Name); id != "" {
			present[id] = true
			chunkNames = append(chunkNames, in.Name)
		}
	}
	total := 1 + len(manifests)
	if readData {
		total += len(chunkNames)
	}
	done := 0
	var progressMu sync.Mutex // progress is called serially, done increasing
	step := func() {
		progressMu.Lock()
		defer progressMu.Unlock()
		done++
		if progress != nil {
			progress(done, total)
		}
	}

	// Config: frame, JSON, and (encrypted) the sealed part with our key.
	if cfg, err := readConfig(ctx, r.be); err != nil {
		if !isObjectProblem(err) {
			return nil, err
		}
		report(err)
	} else if err := r.verifyConfig(cfg); err != nil {
		report(err)
	}
	step()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(checkWorkers)
	for _, name := range manifests {
		g.Go(func() error {
			obj, err := r.be.Get(gctx, name)
			if errors.Is(err, errNotFound) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			if _, err := r.codec.decode(name, obj); err != nil {
				report(err)
			}
			step()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	missing := make([]string, 0)
	for id, ok := range referenced {
		if ok && !present[id] {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	for _, id := range missing {
		report(&MissingError{Repo: r.String(), Object: ChunkName(id)})
	}

	if readData {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(checkWorkers)
		for _, name := range chunkNames {
			g.Go(func() error {
				_, err := r.LoadChunk(gctx, chunkIDFromName(name))
				switch {
				case errors.Is(err, errNotFound):
					// Deleted since the listing: a problem only if
					// referenced.
					if referenced[chunkIDFromName(name)] {
						report(err)
					}
				case isObjectProblem(err):
					report(err)
				case err != nil:
					return err
				}
				step()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	sortErrors(problems)
	return problems, nil
}

func isObjectProblem(err error) bool {
	var ce *CorruptError
	var me *MissingError
	return errors.As(err, &ce) || errors.As(err, &me)
}

// verifyConfig checks a freshly read config against the one this
// Repository was opened with.
func (r *Repository) verifyConfig(cfg *configFile) error {
	if cfg.ID != r.cfg.ID || cfg.Encrypted != r.cfg.Encrypted {
		return r.codec.corrupt(configName, "changed since the repository was opened (id or encryption differ)")
	}
	params := cfg.Chunker
	if cfg.Encrypted {
		plain, err := r.codec.decode(secretName, cfg.Secret)
		if err != nil {
			return r.codec.corrupt(configName, "sealed part: %v", err)
		}
		var sec secretConfig
		if err := json.Unmarshal(plain, &sec); err != nil || sec.Check != keyCheck || sec.ID != cfg.ID {
			return r.codec.corrupt(configName, "sealed part does not belong to this repository")
		}
		params = &sec.Chunker
	}
	if params == nil || *params != r.chunk {
		return r.codec.corrupt(configName, "chunker parameters changed since the repository was opened")
	}
	return nil
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
