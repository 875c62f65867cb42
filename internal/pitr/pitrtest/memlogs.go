// Package pitrtest holds what the PITR engines' tests share.
package pitrtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/stillpoint/stillpoint/internal/pitr"
)

// MemLogs is a pitr.Logs in memory that keeps the contract's rules (the
// same content again is a no-op, other content under a stored name an
// error) and counts every Put, so a test sees a file stored twice. Tests
// may plant or damage Files directly.
type MemLogs struct {
	mu    sync.Mutex
	Files map[string][]byte
	puts  map[string]int
}

func NewMemLogs() *MemLogs { return &MemLogs{Files: map[string][]byte{}, puts: map[string]int{}} }

func (m *MemLogs) Put(_ context.Context, name string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts[name]++
	if old, ok := m.Files[name]; ok && !bytes.Equal(old, b) {
		return fmt.Errorf("%s is archived already with other content", name)
	}
	m.Files[name] = b
	return nil
}

func (m *MemLogs) Get(_ context.Context, name string, w io.Writer) error {
	m.mu.Lock()
	b, ok := m.Files[name]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s: %w", name, pitr.ErrMissing)
	}
	_, err := w.Write(b)
	return err
}

func (m *MemLogs) Names(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.Files)), nil
}

// Without is a copy lacking the named files.
func (m *MemLogs) Without(names ...string) *MemLogs {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMemLogs()
	for n, b := range m.Files {
		if !slices.Contains(names, n) {
			c.Files[n] = b
		}
	}
	return c
}

// PutCounts says how many times each file was Put.
func (m *MemLogs) PutCounts() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.puts)
}
