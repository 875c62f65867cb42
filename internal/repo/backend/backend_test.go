package backend_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/repo/backend"
	"github.com/stillpoint/stillpoint/internal/repo/backend/local"
	"github.com/stillpoint/stillpoint/internal/repo/backend/mem"
	"github.com/stillpoint/stillpoint/internal/repo/backend/s3"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// kinds are the backends every conformance test runs against.
var kinds = []struct {
	name string
	open func(t *testing.T) backend.Backend
}{
	{"mem", func(t *testing.T) backend.Backend { return mem.New() }},
	{"local", func(t *testing.T) backend.Backend {
		be, err := backend.Open(context.Background(), filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return be
	}},
	{"s3", func(t *testing.T) backend.Backend {
		be, err := backend.Open(context.Background(), testenv.S3URL(t))
		if err != nil {
			t.Fatal(err)
		}
		return be
	}},
	{"s3-prefix", func(t *testing.T) backend.Backend {
		be, err := backend.Open(context.Background(), withPrefix(t, testenv.S3URL(t), "some/prefix"))
		if err != nil {
			t.Fatal(err)
		}
		return be
	}},
}

func withPrefix(t *testing.T, loc, prefix string) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + prefix
	return u.String()
}

func forEachKind(t *testing.T, f func(t *testing.T, be backend.Backend)) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { f(t, k.open(t)) })
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustGet(t *testing.T, be backend.Backend, name string) []byte {
	t.Helper()
	got, err := be.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	return got
}

func TestConformancePutGet(t *testing.T) {
	forEachKind(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		cases := []struct {
			name string
			data []byte
		}{
			{"config", []byte("hello")},
			{"empty", []byte{}},
			{"data/ab/abcdef", randBytes(5 << 20)},
			{"backups/2026-11-24T21.00.00Z", []byte("manifest")},
		}
		for _, c := range cases {
			if err := be.Put(ctx, c.name, c.data); err != nil {
				t.Fatalf("Put(%s): %v", c.name, err)
			}
		}
		for _, c := range cases {
			if got := mustGet(t, be, c.name); !bytes.Equal(got, c.data) {
				t.Errorf("Get(%s) returned %d bytes that differ from the %d put", c.name, len(got), len(c.data))
			}
			if ok, err := be.Exists(ctx, c.name); err != nil || !ok {
				t.Errorf("Exists(%s) = %v, %v; want true", c.name, ok, err)
			}
		}
		// Put replaces.
		if err := be.Put(ctx, "config", []byte("replaced")); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, be, "config"); string(got) != "replaced" {
			t.Errorf("after a second Put, Get = %q, want %q", got, "replaced")
		}
	})
}

func TestConformanceMissing(t *testing.T) {
	forEachKind(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		_, err := be.Get(ctx, "data/00/nothere")
		if !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("Get of a missing object: %v, want an error matching ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), "data/00/nothere") {
			t.Errorf("error %q does not name the object", err)
		}
		if ok, err := be.Exists(ctx, "data/00/nothere"); err != nil || ok {
			t.Errorf("Exists of a missing object = %v, %v", ok, err)
		}
		if err := be.Delete(ctx, "data/00/nothere"); err != nil {
			t.Errorf("Delete of a missing object: %v, want nil", err)
		}
		if names, err := be.List(ctx, "data/"); err != nil || len(names) != 0 {
			t.Errorf("List of an empty backend = %v, %v", names, err)
		}
	})
}

func TestConformanceListDelete(t *testing.T) {
	forEachKind(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		objs := map[string]int{
			"config":         3,
			"data/aa/aa01":   10,
			"data/aa/aa02":   11,
			"data/ab/ab01":   12,
			"backups/b1":     4,
			"backups/b2":     5,
			"locks/reposito": 1,
		}
		for name, n := range objs {
			if err := be.Put(ctx, name, make([]byte, n)); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			prefix string
			want   []string
		}{
			{"data/", []string{"data/aa/aa01", "data/aa/aa02", "data/ab/ab01"}},
			{"data/aa/", []string{"data/aa/aa01", "data/aa/aa02"}},
			{"data/a", []string{"data/aa/aa01", "data/aa/aa02", "data/ab/ab01"}},
			{"data/aa/aa0", []string{"data/aa/aa01", "data/aa/aa02"}},
			{"backups/", []string{"backups/b1", "backups/b2"}},
			{"nothing/", nil},
			{"", []string{"backups/b1", "backups/b2", "config", "data/aa/aa01", "data/aa/aa02", "data/ab/ab01", "locks/reposito"}},
		}
		for _, c := range cases {
			got, err := be.List(ctx, c.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", c.prefix, err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("List(%q) = %v, want %v", c.prefix, got, c.want)
			}
		}
		infos, err := be.ListInfo(ctx, "data/")
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			if in.Size != int64(objs[in.Name]) {
				t.Errorf("ListInfo: %s has size %d, want %d", in.Name, in.Size, objs[in.Name])
			}
		}
		if err := be.Delete(ctx, "data/aa/aa01"); err != nil {
			t.Fatal(err)
		}
		if _, err := be.Get(ctx, "data/aa/aa01"); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("Get after Delete: %v, want ErrNotFound", err)
		}
		if got, _ := be.List(ctx, "data/"); !slices.Equal(got, []string{"data/aa/aa02", "data/ab/ab01"}) {
			t.Errorf("List after Delete = %v", got)
		}
	})
}

func TestConformanceInvalidNames(t *testing.T) {
	forEachKind(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		for _, name := range []string{"", "/abs", "a//b", "../escape", "a/../b", "a/./b", "trailing/", `back\slash`} {
			if err := be.Put(ctx, name, []byte("x")); err == nil {
				t.Errorf("Put(%q) succeeded, want an invalid-name error", name)
			}
			if _, err := be.Get(ctx, name); err == nil || errors.Is(err, backend.ErrNotFound) {
				t.Errorf("Get(%q) = %v, want an invalid-name error", name, err)
			}
		}
	})
}

func TestConformancePutIfAbsent(t *testing.T) {
	forEachKind(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		created, err := be.PutIfAbsent(ctx, "locks/repository", []byte("first"))
		if err != nil || !created {
			t.Fatalf("first PutIfAbsent = %v, %v; want created", created, err)
		}
		created, err = be.PutIfAbsent(ctx, "locks/repository", []byte("second"))
		if err != nil || created {
			t.Fatalf("second PutIfAbsent = %v, %v; want not created, no error", created, err)
		}
		if got := mustGet(t, be, "locks/repository"); string(got) != "first" {
			t.Fatalf("PutIfAbsent on an existing object changed it to %q", got)
		}
		if err := be.Delete(ctx, "locks/repository"); err != nil {
			t.Fatal(err)
		}
		created, err = be.PutIfAbsent(ctx, "locks/repository", []byte("third"))
		if err != nil || !created {
			t.Fatalf("PutIfAbsent after Delete = %v, %v; want created", created, err)
		}
	})
}

// TestConformancePutIfAbsentRace: of 8 concurrent creators exactly one
// wins, and the object holds the winner's complete content.
func TestConformancePutIfAbsentRace(t *testing.T) {
	forEachKind(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		for round := range 3 {
			name := fmt.Sprintf("locks/race%d", round)
			const n = 8
			var wg sync.WaitGroup
			created := make([]bool, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					created[i], errs[i] = be.PutIfAbsent(ctx, name, bytes.Repeat([]byte{byte('a' + i)}, 64<<10))
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("round %d: PutIfAbsent #%d: %v", round, i, errs[i])
				}
				if created[i] {
					if winner >= 0 {
						t.Fatalf("round %d: both #%d and #%d created %s", round, winner, i, name)
					}
					winner = i
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: nobody created %s", round, name)
			}
			if got := mustGet(t, be, name); !bytes.Equal(got, bytes.Repeat([]byte{byte('a' + winner)}, 64<<10)) {
				t.Fatalf("round %d: %s does not hold the winner's (#%d) complete content", round, name, winner)
			}
		}
	})
}

// TestConformancePutAtomic: a reader racing with writers only ever sees a
// complete version of the object.
func TestConformancePutAtomic(t *testing.T) {
	forEachKind(t, func(t *testing.T, be backend.Backend) {
		ctx := context.Background()
		versions := [][]byte{bytes.Repeat([]byte{1}, 2<<20), bytes.Repeat([]byte{2}, 2<<20), bytes.Repeat([]byte{3}, 1<<20)}
		if err := be.Put(ctx, "data/x/obj", versions[0]); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				for i := range 10 {
					if err := be.Put(ctx, "data/x/obj", versions[(w+i)%len(versions)]); err != nil {
						t.Errorf("Put: %v", err)
						return
					}
				}
			})
		}
		reads := 0
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
	loop:
		for {
			select {
			case <-done:
				break loop
			default:
			}
			got, err := be.Get(ctx, "data/x/obj")
			if err != nil {
				t.Fatalf("Get during Puts: %v", err)
			}
			if !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, got) }) {
				t.Fatalf("Get during Puts returned %d bytes that are no complete version", len(got))
			}
			reads++
		}
		if names, _ := be.List(ctx, ""); !slices.Equal(names, []string{"data/x/obj"}) {
			t.Fatalf("after the Puts, List = %v (temporary objects visible?)", names)
		}
		t.Logf("%d consistent reads during 20 Puts", reads)
	})
}

func TestS3PrefixesAreIsolated(t *testing.T) {
	ctx := context.Background()
	loc := testenv.S3URL(t)
	root, err := backend.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	a, err := backend.Open(ctx, withPrefix(t, loc, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := backend.Open(ctx, withPrefix(t, loc, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "config", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Exists(ctx, "config"); ok {
		t.Fatal("an object under prefix a is visible under prefix b")
	}
	if names, _ := root.List(ctx, ""); !slices.Equal(names, []string{"a/config"}) {
		t.Fatalf("bucket root lists %v, want [a/config]", names)
	}
	if names, _ := a.List(ctx, ""); !slices.Equal(names, []string{"config"}) {
		t.Fatalf("prefix a lists %v, want [config]", names)
	}
}

func TestOpenLocations(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s3loc := testenv.S3URL(t)
	cases := []struct {
		loc     string
		kind    string // "local", "s3" or "" for an error
		wantErr string
	}{
		{dir + "/plain", "local", ""},
		{"file://" + dir + "/url", "local", ""},
		{s3loc, "s3", ""},
		{"", "", "no repository location"},
		{"ftp://host/x", "", `scheme "ftp" is not supported`},
		{"file://otherhost/x", "", "local path"},
		{"s3://", "", "no bucket"},
		{withPrefix(t, s3loc, "p") + "&color=blue", "", `unknown parameter "color"`},
		{"s3://user:secretpw@bucket/x", "", "do not put credentials in the URL"},
	}
	for _, c := range cases {
		t.Run(c.loc, func(t *testing.T) {
			be, err := backend.Open(ctx, c.loc)
			if c.kind == "" {
				if err == nil {
					t.Fatalf("Open(%q) succeeded, want an error containing %q", c.loc, c.wantErr)
				}
				if !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Open(%q): %v; want it to contain %q", c.loc, err, c.wantErr)
				}
				if strings.Contains(err.Error(), "secretpw") {
					t.Fatalf("error reveals the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", c.loc, err)
			}
			switch c.kind {
			case "local":
				if _, ok := be.(*local.Backend); !ok {
					t.Fatalf("Open(%q) = %T, want *local.Backend", c.loc, be)
				}
			case "s3":
				if _, ok := be.(*s3.Backend); !ok {
					t.Fatalf("Open(%q) = %T, want *s3.Backend", c.loc, be)
				}
			}
		})
	}
}

func TestS3Errors(t *testing.T) {
	ctx := context.Background()
	loc := testenv.S3URL(t)
	u, _ := url.Parse(loc)
	secret := os.Getenv("AWS_SECRET_ACCESS_KEY")

	t.Run("missing credentials", func(t *testing.T) {
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} {
			t.Setenv(k, "")
		}
		_, err := backend.Open(ctx, loc)
		if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") || !strings.Contains(err.Error(), "s3://"+u.Host) {
			t.Fatalf("Open without credentials: %v; want an error naming the location and AWS_ACCESS_KEY_ID", err)
		}
	})
	t.Run("minio fallback credentials", func(t *testing.T) {
		t.Setenv("MINIO_ROOT_USER", os.Getenv("AWS_ACCESS_KEY_ID"))
		t.Setenv("MINIO_ROOT_PASSWORD", secret)
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		if _, err := backend.Open(ctx, loc); err != nil {
			t.Fatalf("Open with MINIO_ROOT_USER/PASSWORD: %v", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
		_, err := backend.Open(ctx, loc)
		if err == nil || !strings.Contains(err.Error(), "access denied") || !strings.Contains(err.Error(), "s3://"+u.Host) {
			t.Fatalf("Open with a wrong secret: %v; want an access-denied error naming the location", err)
		}
		if strings.Contains(err.Error(), "not-the-secret") || strings.Contains(err.Error(), secret) {
			t.Fatalf("error reveals a secret: %v", err)
		}
	})
	t.Run("unreachable endpoint", func(t *testing.T) {
		q := u.Query()
		q.Set("endpoint", "127.0.0.1:1")
		u2 := *u
		u2.RawQuery = q.Encode()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		start := time.Now()
		_, err := backend.Open(ctx, u2.String())
		if err == nil || !strings.Contains(err.Error(), "cannot reach the S3 endpoint 127.0.0.1:1") || !strings.Contains(err.Error(), "s3://"+u.Host) {
			t.Fatalf("Open of an unreachable endpoint: %v; want a cannot-reach error naming the location", err)
		}
		t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	})
	t.Run("bucket created", func(t *testing.T) {
		u2 := *u
		u2.Host = u.Host + "-new"
		t.Cleanup(func() {
			_ = testenv.S3Client(t).RemoveBucket(context.Background(), u2.Host)
		})
		be, err := backend.Open(ctx, u2.String())
		if err != nil {
			t.Fatalf("Open of a missing bucket: %v", err)
		}
		if err := be.Put(ctx, "config", []byte("x")); err != nil {
			t.Fatal(err)
		}
		_ = be.Delete(ctx, "config")
		if strings.Contains(be.String(), secret) {
			t.Fatalf("String() reveals the secret: %s", be)
		}
	})
}
