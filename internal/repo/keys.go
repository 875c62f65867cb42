package repo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// EnvKey is the environment variable holding the repository key when no
// key file is given. Its value is used as is (any length; it is stretched
// with scrypt). Keys are never printed or logged.
const EnvKey = "STILLPOINT_REPO_KEY"

// LoadKey reads a key file. Any content of any length works (it is
// stretched with scrypt); trailing newlines ("\n", "\r\n") are removed so
// that `echo secret > keyfile` and STILLPOINT_REPO_KEY=secret give the same
// key. An empty file is an error, and so is a file that its group or
// others may read (as ssh refuses such a private key): whoever can read
// the key can read every backup.
func LoadKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading the repository key file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("repository key file %s is open to its group or others (mode %04o): run `chmod 600 %s` (in Kubernetes, mount the secret with defaultMode 0400)",
			path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the repository key file: %w", err)
	}
	key := bytes.TrimRight(data, "\r\n")
	if len(key) == 0 {
		return nil, fmt.Errorf("repository key file %s is empty", path)
	}
	return key, nil
}

// KeyFromEnv returns the key in STILLPOINT_REPO_KEY (trailing newlines
// removed), or nil when it is unset or empty.
func KeyFromEnv() []byte {
	key := bytes.TrimRight([]byte(os.Getenv(EnvKey)), "\r\n")
	if len(key) == 0 {
		return nil
	}
	return key
}

// ResolveKey returns the key from keyFile when it is not empty, else from
// STILLPOINT_REPO_KEY, else nil (an unencrypted repository).
func ResolveKey(keyFile string) ([]byte, error) {
	if keyFile != "" {
		return LoadKey(keyFile)
	}
	return KeyFromEnv(), nil
}

var errEmptyKey = errors.New("the repository key is empty")
