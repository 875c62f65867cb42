package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/restic/chunker"
	"golang.org/x/crypto/scrypt"
)

// Object names.
const (
	configName = "config"
	dataPrefix = "data/"
	backupsDir = "backups/"
	secretName = "config#secret" // additional data of the sealed config part

	// repoVersion is the newest format this binary reads. Format 2: the
	// chunks of encrypted repositories are named by a keyed hash
	// (chunkIDKeyInfo); new unencrypted repositories stay format 1, which
	// is the same for them. Encrypted format 1 repositories, whose chunks
	// are named by the plain SHA-256, are still read and written as they
	// are.
	repoVersion    = 2
	keyedIDVersion = 2

	keyCheck = "stillpoint repository key check v1"
)

// Chunking. Content-defined chunks (Rabin fingerprints, github.com/
// restic/chunker) are cut where the rolling hash over a 64-byte window has
// its low AverageBits bits zero, but never before MinSize nor after
// MaxSize bytes. With MinSize 256 KiB and 20 bits the mean chunk is about
// 1.25 MiB (MinSize + 1 MiB).
//
// Why not restic's 512 KiB..8 MiB: the average stays restic's (~1 MiB, a
// good balance between dedupe granularity and object count on S3), the
// smaller minimum lets an edit near a short table's boundaries re-share
// sooner, and the 4 MiB maximum halves the chunker's buffer (one per
// stream) and bounds zstd's window (object.go). The parameters
// are stored in the config, so they can change for new repositories
// without breaking old ones.
const (
	DefaultMinChunk    = 256 << 10
	DefaultMaxChunk    = 4 << 20
	DefaultAverageBits = 20
)

// Key derivation: scrypt(user key, random 32-byte salt, N=2^15, r=8, p=1)
// gives a 32-byte master key (the user key may be a passphrase of any
// length); HKDF-SHA256(master, info "stillpoint repository v1 data key")
// gives the AES-256-GCM key for every object, and HKDF-SHA256(master, info
// "stillpoint repository v2 chunk id key") the HMAC-SHA256 key that names
// chunks, so equal content under two keys gets unrelated names and a
// guessed content cannot be confirmed from a listing.
const (
	defaultScryptN = 1 << 15
	defaultScryptR = 8
	defaultScryptP = 1
	dataKeyInfo    = "stillpoint repository v1 data key"
	chunkIDKeyInfo = "stillpoint repository v2 chunk id key"
)

// ChunkerParams are the content-defined chunking parameters of a
// repository.
type ChunkerParams struct {
	Polynomial  chunker.Pol `json:"polynomial"`
	MinSize     uint        `json:"min_size"`
	MaxSize     uint        `json:"max_size"`
	AverageBits int         `json:"average_bits"`
}

func (p ChunkerParams) validate() error {
	switch {
	case !p.Polynomial.Irreducible() || p.Polynomial.Deg() != 53:
		return fmt.Errorf("chunker polynomial %v is not an irreducible polynomial of degree 53", p.Polynomial)
	case p.MinSize < 64 || p.MaxSize < p.MinSize || p.MaxSize > 64<<20:
		return fmt.Errorf("chunk sizes %d..%d out of range", p.MinSize, p.MaxSize)
	case p.AverageBits < 10 || p.AverageBits > 26:
		return fmt.Errorf("chunker average bits %d out of range", p.AverageBits)
	}
	return nil
}

type kdfParams struct {
	Name string `json:"name"` // "scrypt"
	N    int    `json:"n"`
	R    int    `json:"r"`
	P    int    `json:"p"`
	Salt []byte `json:"salt"`
}

// configFile is the JSON in the "config" object (framed, never encrypted,
// so it can be read before the key is known).
type configFile struct {
	Version   int       `json:"version"`
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	Encrypted bool      `json:"encrypted"`
	// Chunker is set in unencrypted repositories; encrypted ones keep it
	// in Secret (the polynomial shapes chunk boundaries, and with them
	// object sizes, so it is kept secret like restic does).
	Chunker *ChunkerParams `json:"chunker,omitempty"`
	KDF     *kdfParams     `json:"kdf,omitempty"`
	// Secret is a frame (see object.go) encrypted with the data key,
	// holding secretConfig. Opening it checks the key.
	Secret []byte `json:"secret,omitempty"`
}

type secretConfig struct {
	Check   string        `json:"check"`
	ID      string        `json:"id"`
	Chunker ChunkerParams `json:"chunker"`
	// Version is the format (absent in format 1), sealed so that it cannot
	// be lowered unnoticed.
	Version int `json:"version,omitempty"`
}

// keys are what a user key opens.
type keys struct {
	aead    cipher.AEAD
	chunkID []byte // HMAC key of chunk names
}

// deriveKeys turns the user key into the repository's keys.
func deriveKeys(userKey []byte, k *kdfParams) (keys, error) {
	if k == nil || k.Name != "scrypt" {
		return keys{}, errors.New("unsupported key derivation function")
	}
	if k.N < 2 || k.N&(k.N-1) != 0 || k.N > 1<<22 || k.R < 1 || k.R > 64 || k.P < 1 || k.P > 16 || len(k.Salt) < 16 {
		return keys{}, fmt.Errorf("implausible scrypt parameters N=%d r=%d p=%d", k.N, k.R, k.P)
	}
	master, err := scrypt.Key(userKey, k.Salt, k.N, k.R, k.P, 32)
	if err != nil {
		return keys{}, err
	}
	dataKey, err := hkdf.Key(sha256.New, master, nil, dataKeyInfo, 32)
	if err != nil {
		return keys{}, err
	}
	idKey, err := hkdf.Key(sha256.New, master, nil, chunkIDKeyInfo, 32)
	if err != nil {
		return keys{}, err
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return keys{}, err
	}
	aead, err := cipher.NewGCM(block)
	return keys{aead: aead, chunkID: idKey}, err
}

func newKDF() (*kdfParams, error) {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	return &kdfParams{Name: "scrypt", N: defaultScryptN, R: defaultScryptR, P: defaultScryptP, Salt: salt}, nil
}

// encodeConfig returns the framed config object.
func encodeConfig(cfg *configFile) ([]byte, error) {
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	return (&codec{}).encode(configName, append(js, '\n'), false)
}
