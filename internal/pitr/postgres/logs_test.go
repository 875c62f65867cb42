package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/stillpoint/stillpoint/internal/pitr"
)

// memLogs is a pitr.Logs in memory, keeping the contract's rules: the
// same content again is a no-op, other content under a name an error.
type memLogs struct {
	mu    sync.Mutex
	files map[string][]byte
}

func newMemLogs() *memLogs { return &memLogs{files: map[string][]byte{}} }

func (m *memLogs) Put(_ context.Context, name string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.files[name]; ok && !bytes.Equal(old, b) {
		return fmt.Errorf("%s is archived already with other content", name)
	}
	m.files[name] = b
	return nil
}

func (m *memLogs) Get(_ context.Context, name string, w io.Writer) error {
	m.mu.Lock()
	b, ok := m.files[name]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s: %w", name, pitr.ErrMissing)
	}
	_, err := w.Write(b)
	return err
}

func (m *memLogs) Names(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.files))
	for n := range m.files {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// without is a copy lacking the named files.
func (m *memLogs) without(names ...string) *memLogs {
	c := newMemLogs()
	for n, b := range m.files {
		if !slices.Contains(names, n) {
			c.files[n] = b
		}
	}
	return c
}
