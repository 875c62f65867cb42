package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// TestLoadInBatches loads more rows than three LOAD DATA batches hold, which
// two connections load at once: every row arrives once; a failing row
// source (a damaged backup) fails the load with its own error, whatever the
// loads were doing; and a key repeated in a later batch, loaded on the other
// connection, fails it too.
func TestLoadInBatches(t *testing.T) {
	ctx := context.Background()
	st := open(t, testenv.MySQLDSN(t))
	const rows = 60_001 // batches of 25,000, 25,000 and 10,001
	damaged := errors.New("chunk data/ab/abcd is damaged")
	for _, tc := range []struct {
		name string
		row  func(i int) ([]any, error) // the i-th row; io.EOF after the last
		want string                     // in the error; "": the load succeeds
	}{
		{"every row once", func(i int) ([]any, error) { return []any{int32(i), fmt.Sprintf("v%d\t\\N", i)}, nil }, ""},
		{"the rows fail", func(i int) ([]any, error) {
			if i == 30_000 {
				return nil, damaged
			}
			return []any{int32(i), "v"}, nil
		}, damaged.Error()},
		{"a key repeated in a later batch", func(i int) ([]any, error) {
			if i == 40_000 {
				return []any{int32(7), "again"}, nil
			}
			return []any{int32(i), "v"}, nil
		}, "stored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &storage.TableMetadata{Namespace: testenv.UniqueName("load"), Table: "t", PartitionKey: []string{"id"},
				Columns: []storage.Column{{Name: "id", Type: storage.Int}, {Name: "v", Type: storage.Text}}}
			createTable(t, st, m)
			i := 0
			n, err := st.LoadRows(ctx, m, func() ([]any, error) {
				if i == rows {
					return nil, io.EOF
				}
				i++
				return tc.row(i - 1)
			})
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("load: %d rows, %v; want an error saying %q", n, err, tc.want)
				}
				if tc.want == damaged.Error() && !errors.Is(err, damaged) {
					t.Fatalf("load: %v; want the rows' own error", err)
				}
				return
			}
			var count, sum, text int64
			q := fmt.Sprintf("SELECT COUNT(*), SUM(id), SUM(v = CONCAT('v', id, '\\t\\\\N')) FROM `%s`.t", m.Namespace)
			if err := st.DB().QueryRowContext(ctx, q).Scan(&count, &sum, &text); err != nil {
				t.Fatal(err)
			}
			if err != nil || n != rows || count != rows || sum != rows*(rows-1)/2 || text != rows {
				t.Fatalf("loaded %d rows (%v); the table holds %d, ids summing to %d, %d values as sent; want %d, %d, %d", n, err, count, sum, text, rows, rows*(rows-1)/2, rows)
			}
		})
	}
}
