// Package mem is a repository backend in memory, for tests: it passes the
// same conformance suite as the real backends, so repository tests can run
// on it without a disk or a server.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

var seq struct {
	sync.Mutex
	n int
}

// Backend is an in-memory object store.
type Backend struct {
	name    string
	mu      sync.Mutex
	objects map[string][]byte
}

// New returns an empty backend with a name unique in the process.
func New() *Backend {
	seq.Lock()
	seq.n++
	n := seq.n
	seq.Unlock()
	return &Backend{name: fmt.Sprintf("mem:%d", n), objects: map[string][]byte{}}
}

// String implements backend.Backend.
func (b *Backend) String() string { return b.name }

func (b *Backend) check(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.ValidName(name); err != nil {
		return fmt.Errorf("repository %s: %w", b.name, err)
	}
	return nil
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := b.check(ctx, name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objects[name] = bytes.Clone(data)
	return nil
}

// PutIfAbsent implements backend.Backend.
func (b *Backend) PutIfAbsent(ctx context.Context, name string, data []byte) (bool, error) {
	if err := b.check(ctx, name); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[name]; ok {
		return false, nil
	}
	b.objects[name] = bytes.Clone(data)
	return true, nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, name string) ([]byte, error) {
	if err := b.check(ctx, name); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.objects[name]
	if !ok {
		return nil, backend.NotFound(b.name, name)
	}
	return bytes.Clone(data), nil
}

// Exists implements backend.Backend.
func (b *Backend) Exists(ctx context.Context, name string) (bool, error) {
	if err := b.check(ctx, name); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.objects[name]
	return ok, nil
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	return backend.Names(b.ListInfo(ctx, prefix))
}

// ListInfo implements backend.Backend.
func (b *Backend) ListInfo(ctx context.Context, prefix string) ([]backend.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []backend.ObjectInfo
	for name, data := range b.objects {
		if strings.HasPrefix(name, prefix) {
			out = append(out, backend.ObjectInfo{Name: name, Size: int64(len(data))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := b.check(ctx, name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.objects, name)
	return nil
}
