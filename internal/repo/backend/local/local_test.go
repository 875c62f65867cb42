package local

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestUnwritableLocation: a location that cannot be written gives an error
// naming the path and saying what to fix. chmod does not stop root (CI
// runs as root), so as root the repository path is placed under a regular
// file instead, which fails for everyone.
func TestUnwritableLocation(t *testing.T) {
	ctx := context.Background()
	if os.Geteuid() != 0 {
		t.Run("read-only directory", func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ro")
			if err := os.Mkdir(dir, 0o555); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o755) })
			be, err := Open(dir)
			if err != nil {
				t.Fatalf("Open of an existing read-only directory: %v (reading must still work)", err)
			}
			err = be.Put(ctx, "data/ab/abcd", []byte("x"))
			if err == nil {
				t.Fatal("Put into a read-only directory succeeded")
			}
			for _, want := range []string{dir, "not writable", "data/ab/abcd"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("error %v does not wrap the permission error", err)
			}
		})
	}
	t.Run("path under a regular file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(file, "repo")
		_, err := Open(path)
		if err == nil {
			t.Fatal("Open of a path under a regular file succeeded")
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("error %q does not name %s or say it is not a directory", err, path)
		}
	})
	t.Run("path is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(file)
		if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("Open of a file: %v; want an error naming it", err)
		}
	})
	t.Run("directory replaced by a file after Open", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "repo")
		be, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		err = be.Put(ctx, "config", []byte("x"))
		if err == nil || !strings.Contains(err.Error(), dir) || !errors.Is(err, syscall.ENOTDIR) {
			t.Fatalf("Put: %v; want an ENOTDIR error naming %s", err, dir)
		}
	})
}

// TestWriteErrorHints: errors that cannot be provoked without privileges
// (a full disk, a read-only mount) still get a location and a fix.
func TestWriteErrorHints(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{syscall.ENOSPC, "disk holding the repository is full"},
		{syscall.EDQUOT, "full (or over quota)"},
		{syscall.EROFS, "read-only filesystem"},
		{syscall.EACCES, "not writable"},
		{syscall.ENOTDIR, "is a file, not a directory"},
		{syscall.EIO, "writing data/ab/abcd"},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			in := &fs.PathError{Op: "write", Path: "/backups/sp/data/ab/.tmp-abcd-1", Err: c.err}
			err := WriteError("/backups/sp", "data/ab/abcd", in)
			for _, want := range []string{"/backups/sp", "data/ab/abcd", c.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%q does not mention %q", err, want)
				}
			}
			if !errors.Is(err, c.err) {
				t.Errorf("%v does not wrap %v", err, c.err)
			}
		})
	}
}

func TestTempFilesNotListed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	be, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Put(ctx, "data/ab/abcd", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A crash between writing and renaming leaves such a file behind.
	if err := os.WriteFile(filepath.Join(dir, "data", "ab", ".tmp-abce-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	names, err := be.List(ctx, "data/")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"data/ab/abcd"}) {
		t.Fatalf("List = %v, want only data/ab/abcd", names)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "data", "ab"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("a successful Put left files behind: %v", entries)
	}
	fi, err := os.Stat(filepath.Join(dir, "data", "ab", "abcd"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("object mode %v, want 0600 (backups hold database contents)", fi.Mode().Perm())
	}
}
