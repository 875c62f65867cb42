package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/pitr"
	"github.com/stillpoint/stillpoint/internal/restore"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/txn"
)

// pitrFlags choose a cut to restore by point-in-time recovery, and where.
type pitrFlags struct {
	toCut    string
	toTime   string
	toLatest bool
	targets  []string // STORE=DIR:PORT
}

func (f *pitrFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.toCut, "to-cut", "", "restore every store to this cut (a name, an id or a unique prefix of one) by point-in-time recovery")
	fl.StringVar(&f.toTime, "to-time", "", "restore to the latest cut taken at or before this time (RFC 3339, e.g. 2026-11-25T10:00:00Z)")
	fl.BoolVar(&f.toLatest, "to-latest", false, "restore to the latest cut")
	fl.StringArrayVar(&f.targets, "target", nil, "STORE=DIR:PORT: rebuild the store's server in the empty directory DIR and start it on 127.0.0.1:PORT (repeat per store)")
}

// set reports whether a point-in-time restore was asked for, refusing
// two choices of cut.
func (f *pitrFlags) set() (bool, error) {
	n := 0
	for _, b := range []bool{f.toCut != "", f.toTime != "", f.toLatest} {
		if b {
			n++
		}
	}
	if n > 1 {
		return false, usageError{errors.New("give one of --to-cut, --to-time and --to-latest")}
	}
	if n == 0 && len(f.targets) > 0 {
		return false, usageError{errors.New("--target is for point-in-time recovery: give --to-cut, --to-time or --to-latest")}
	}
	return n == 1, nil
}

func (f *pitrFlags) parseTargets() (map[string]pitr.Target, error) {
	out := map[string]pitr.Target{}
	for _, t := range f.targets {
		store, rest, ok1 := strings.Cut(t, "=")
		i := strings.LastIndex(rest, ":")
		port, err := strconv.Atoi(rest[i+1:])
		if !ok1 || i <= 0 || err != nil || port <= 0 || port > 65535 {
			return nil, usageError{fmt.Errorf("--target %q: want STORE=DIR:PORT, e.g. pg=/srv/restore/pg:5433", t)}
		}
		out[store] = pitr.Target{DataDir: rest[:i], Port: port}
	}
	return out, nil
}

// pick resolves the cut the flags name.
func (f *pitrFlags) pick(cuts []*pitr.Cut) (*pitr.Cut, error) {
	switch {
	case f.toCut != "":
		c, err := pitr.FindCut(cuts, f.toCut)
		if err != nil {
			return nil, usageError{err}
		}
		return c, nil
	case f.toTime != "":
		t, err := time.Parse(time.RFC3339, f.toTime)
		if err != nil {
			return nil, usageError{fmt.Errorf("--to-time %q: want RFC 3339, e.g. 2026-11-25T10:00:00Z", f.toTime)}
		}
		return pitr.CutAt(cuts, t)
	}
	if len(cuts) == 0 {
		return nil, errors.New("the repository holds no cut: mark one with stillpoint cut create")
	}
	return cuts[len(cuts)-1], nil
}

// restoreToCut rebuilds every store at a cut: each from its newest base
// consistent before it, replayed exactly to the cut's mark, into the
// --target directories, servers started; then the cut is finished by
// lazy recovery through the stores --config names (the restored servers).
// Everything is checked (cut, bases, targets, the archive's gaps) before
// any directory is written.
func restoreToCut(cmd *cobra.Command, g *globals, rf *repoFlags, f *pitrFlags) error {
	ctx := cmd.Context()
	targets, err := f.parseTargets()
	if err != nil {
		return err
	}
	st, err := g.storageCreating()
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := rf.open(ctx, st.Config(), repoExisting)
	if err != nil {
		return err
	}
	cuts, _, err := pitr.Cuts(ctx, r)
	if err != nil {
		return err
	}
	c, err := f.pick(cuts)
	if err != nil {
		return err
	}
	if err := targetsConfigured(st.Config(), targets); err != nil {
		return err
	}
	plan, err := pitr.PlanRestore(ctx, r, c)
	if err != nil {
		return err
	}
	out := struct {
		*pitr.Result
		Recovery txn.Settled `json:"recovery"`
	}{}
	out.Result, err = pitr.Restore(ctx, r, plan, targets, func(ctx context.Context) (err error) {
		out.Recovery, err = settleStores(ctx, st)
		return err
	})
	if err != nil {
		return err
	}
	res := out.Result
	return g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
		fmt.Fprintf(w, "restored every store to cut %s in %v\n", res.Cut, res.Took.Round(time.Millisecond))
		for _, s := range res.Stores {
			fmt.Fprintf(w, "  %s: base %s replayed to %s\n", s.Store, s.Base.ID, s.To)
		}
		if len(res.LogicalOnly) > 0 {
			fmt.Fprintf(w, "not restored (no point-in-time recovery; restore a logical backup): %s\n", strings.Join(res.LogicalOnly, ", "))
		}
		fmt.Fprintf(w, "cut finished: %d records rolled forward, %d rolled back\n", out.Recovery.RolledForward, out.Recovery.RolledBack)
	})
}

// targetsConfigured refuses a --config whose stores are not the servers
// the restore starts: finishing the cut runs lazy recovery through them,
// which on the live servers would roll back transactions in flight.
func targetsConfigured(cfg *config.Config, targets map[string]pitr.Target) error {
	for store, t := range targets {
		sc, ok := cfg.Stores[store]
		if !ok {
			return usageError{fmt.Errorf("--target %s: --config names no such store; give the configuration of the restored servers", store)}
		}
		port := strconv.Itoa(t.Port)
		if !strings.Contains(sc.DSN, ":"+port) && !strings.Contains(sc.DSN, "port="+port) {
			return usageError{fmt.Errorf("store %s: --config's DSN does not point at port %d, where the restore starts it: give the configuration of the restored servers (finishing the cut on the live ones would roll back their transactions in flight)", store, t.Port)}
		}
	}
	return nil
}

// settleStores finishes the cut in every transactional table of st's
// stores, as a logical restore does (restore.Settle).
func settleStores(ctx context.Context, st *multistorage.Storage) (txn.Settled, error) {
	namespaces, err := st.Namespaces(ctx)
	if err != nil {
		return txn.Settled{}, err
	}
	var tables []*storage.TableMetadata
	for _, ns := range namespaces {
		if ns == config.StillpointNamespace {
			continue
		}
		names, err := st.Tables(ctx, ns)
		if err != nil {
			return txn.Settled{}, err
		}
		for _, t := range names {
			m, err := st.TableMetadata(ctx, ns, t)
			if err != nil {
				return txn.Settled{}, err
			}
			if m != nil {
				tables = append(tables, m)
			}
		}
	}
	return restore.Settle(ctx, st, tables)
}
