package repo_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stillpoint/stillpoint/internal/repo"
	"github.com/stillpoint/stillpoint/internal/repo/backend/mem"
)

// TestCheckLog: an archived log file whose chunk is missing is a problem
// with or without reading the data; one whose chunk is damaged only when
// read; a file never archived is a problem; an intact one is none.
func TestCheckLog(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		damage   func(t *testing.T, be *mem.Backend, chunk string)
		readData bool
		problem  bool
	}{
		{"intact", func(*testing.T, *mem.Backend, string) {}, false, false},
		{"intact, read", func(*testing.T, *mem.Backend, string) {}, true, false},
		{"a chunk missing", deleteObject, false, true},
		{"a chunk missing, read", deleteObject, true, true},
		{"a chunk damaged", flipByte, false, false},
		{"a chunk damaged, read", flipByte, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := mem.New()
			r := initRepo(t, be, nil)
			if _, err := r.PutLog(ctx, "pg", "000000010000000000000003", bytes.NewReader(testData(1, 3<<20))); err != nil {
				t.Fatal(err)
			}
			chunks, err := be.List(ctx, "logdata/pg/000000010000000000000003/")
			if err != nil || len(chunks) == 0 {
				t.Fatalf("chunks %v, %v", chunks, err)
			}
			tc.damage(t, be, chunks[len(chunks)/2])
			err = r.CheckLog(ctx, "pg", "000000010000000000000003", tc.readData)
			if got := repo.IsObjectProblem(err); got != tc.problem || (err != nil) != tc.problem {
				t.Fatalf("CheckLog = %v (a problem: %v), want a problem: %v", err, got, tc.problem)
			}
		})
	}
	t.Run("never archived", func(t *testing.T) {
		r := initRepo(t, mem.New(), nil)
		if err := r.CheckLog(ctx, "pg", "000000010000000000000009", false); !repo.IsObjectProblem(err) {
			t.Fatalf("CheckLog = %v, want a missing object", err)
		}
	})
}

func deleteObject(t *testing.T, be *mem.Backend, name string) {
	if err := be.Delete(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, be *mem.Backend, name string) {
	ctx := context.Background()
	b, err := be.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := be.Put(ctx, name, b); err != nil {
		t.Fatal(err)
	}
}
