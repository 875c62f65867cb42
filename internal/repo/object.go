package repo

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// Object frame. Every object the repository stores (config, chunks,
// manifests) is one frame:
//
//	header   4  magic "SPOB"
//	         1  format version (1)
//	         1  flags: 0x01 payload is zstd-compressed, 0x02 body is encrypted
//	body     unencrypted: inner
//	         encrypted:   nonce (12, random) || AES-256-GCM(inner),
//	                      additional data = header (6) || object name
//	inner    8  plaintext length, big-endian
//	        32  SHA-256 of the plaintext
//	         *  payload: zstd frame of the plaintext, or the plaintext itself
//	            when compression would not make it smaller
//
// Decoding checks every part: the magic, version and flags, the GCM tag
// (which also binds the header and the object name, so objects cannot be
// swapped or have their flags altered), the length, and the SHA-256 of the
// decompressed plaintext; any mismatch is a *CorruptError naming the object.
const (
	frameMagic   = "SPOB"
	frameVersion = 1
	headerLen    = 6
	innerHdrLen  = 8 + sha256.Size
	nonceLen     = 12

	flagCompressed = 0x01
	flagEncrypted  = 0x02
	knownFlags     = flagCompressed | flagEncrypted

	// frameOverhead is what a frame adds to its payload at most: header,
	// nonce, inner header and GCM tag.
	frameOverhead = headerLen + nonceLen + innerHdrLen + 16

	// maxObjectSize bounds the plaintext of any object (manifests are the
	// largest), so a damaged length field cannot make us allocate wildly.
	maxObjectSize = 1 << 30
)

var (
	zstdEnc *zstd.Encoder
	zstdDec *zstd.Decoder
)

// Compression: zstd at SpeedFastest with a 1 MiB window. Each encoder (one
// per core) keeps a history buffer sized from the window (two windows
// without WithLowerEncoderMem, one with it): the 8 MiB default cost 16 MiB
// per encoder. Measured on a 1,000,000-row bank table (docs/performance.md,
// compression): SpeedFastest takes a quarter less of the backup's CPU than
// SpeedDefault and its chunks were no larger; a 1 MiB window stored the same
// bytes as 4 MiB. Only the compressed bytes depend on these settings:
// chunk names are of the plaintext, and every zstd frame decodes alike.
const encoderWindow = 1 << 20

func init() {
	var err error
	// EncodeAll and DecodeAll are safe for concurrent use.
	zstdEnc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(encoderWindow), zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic(err)
	}
	zstdDec, err = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxObjectSize), zstd.WithDecoderConcurrency(0))
	if err != nil {
		panic(err)
	}
}

// CorruptError reports a stored object whose content is damaged: it does
// not decode, its checksum or authentication tag does not match, or a
// chunk's content does not match its name.
type CorruptError struct {
	Repo   string // repository location
	Object string // object name, e.g. "data/ab/abcd..." or "backups/ID"
	Reason string // e.g. "checksum mismatch"
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s: %s: the repository object is damaged (repository %s)", e.Object, e.Reason, e.Repo)
}

// MissingError reports an object that should exist but does not. It
// matches backend.ErrNotFound.
type MissingError struct {
	Repo   string
	Object string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s: missing from repository %s", e.Object, e.Repo)
}

func (e *MissingError) Unwrap() error { return errNotFound }

// codec encodes and decodes frames for one repository.
type codec struct {
	repo string      // location, for errors
	aead cipher.AEAD // nil: unencrypted
}

func (c *codec) corrupt(name, format string, args ...any) error {
	return &CorruptError{Repo: c.repo, Object: name, Reason: fmt.Sprintf(format, args...)}
}

// encode frames plaintext as object name.
func (c *codec) encode(name string, plain []byte, compress bool) ([]byte, error) {
	return c.encodeTo(nil, name, plain, sha256.Sum256(plain), compress)
}

// encodeTo frames plaintext, whose SHA-256 is sum, as object name, appending
// the frame to dst[:0] (grown if its capacity is short): the payload is
// compressed straight after the inner header and encrypted in place, no
// intermediate copy (docs/performance.md, memory). A caller that has the
// sum already (a chunk named by it) does not hash the chunk twice.
func (c *codec) encodeTo(dst []byte, name string, plain []byte, sum [sha256.Size]byte, compress bool) ([]byte, error) {
	if len(plain) > maxObjectSize {
		return nil, fmt.Errorf("%s: object of %d bytes is larger than the limit of %d", name, len(plain), maxObjectSize)
	}
	var flags byte
	if c.aead != nil {
		flags |= flagEncrypted
	}
	out := append(dst[:0], frameMagic...)
	out = append(out, frameVersion, flags)
	if c.aead != nil {
		out = append(out, make([]byte, nonceLen)...)
	}
	innerAt := len(out)
	out = binary.BigEndian.AppendUint64(out, uint64(len(plain)))
	out = append(out, sum[:]...)
	payloadAt := len(out)
	if compress {
		out = zstdEnc.EncodeAll(plain, out)
		if len(out)-payloadAt < len(plain) {
			out[5] |= flagCompressed
		} else {
			out = out[:payloadAt]
		}
	}
	if out[5]&flagCompressed == 0 {
		out = append(out, plain...)
	}
	if c.aead == nil {
		return out, nil
	}
	out = slices.Grow(out, c.aead.Overhead()) // so Seal works in place
	nonce := out[headerLen:innerAt]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	inner := out[innerAt:]
	sealed := c.aead.Seal(inner[:0], nonce, inner, additionalData(out[:headerLen], name))
	return out[:innerAt+len(sealed)], nil
}

func additionalData(header []byte, name string) []byte {
	ad := make([]byte, 0, len(header)+len(name))
	ad = append(ad, header...)
	return append(ad, name...)
}

// decode verifies the frame of object name and returns its plaintext and
// the plaintext's SHA-256 (computed here to check the frame).
func (c *codec) decode(name string, obj []byte) ([]byte, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if len(obj) < headerLen {
		return nil, sum, c.corrupt(name, "truncated (%d bytes)", len(obj))
	}
	if string(obj[:4]) != frameMagic {
		return nil, sum, c.corrupt(name, "bad magic: not a Stillpoint repository object")
	}
	if obj[4] != frameVersion {
		return nil, sum, c.corrupt(name, "unknown object format version %d (damaged, or written by a newer Stillpoint)", obj[4])
	}
	flags := obj[5]
	if flags&^knownFlags != 0 {
		return nil, sum, c.corrupt(name, "unknown flags %#02x", flags)
	}
	encrypted := flags&flagEncrypted != 0
	if encrypted != (c.aead != nil) {
		return nil, sum, c.corrupt(name, "encryption flag does not match the repository")
	}
	inner := obj[headerLen:]
	if encrypted {
		if len(inner) < nonceLen+c.aead.Overhead() {
			return nil, sum, c.corrupt(name, "truncated (%d bytes)", len(obj))
		}
		nonce, sealed := inner[:nonceLen], inner[nonceLen:]
		var err error
		inner, err = c.aead.Open(nil, nonce, sealed, additionalData(obj[:headerLen], name))
		if err != nil {
			return nil, sum, c.corrupt(name, "authentication failed (checksum mismatch)")
		}
	}
	if len(inner) < innerHdrLen {
		return nil, sum, c.corrupt(name, "truncated (%d bytes)", len(obj))
	}
	size := binary.BigEndian.Uint64(inner)
	if size > maxObjectSize {
		return nil, sum, c.corrupt(name, "implausible length %d", size)
	}
	want, payload := inner[8:innerHdrLen], inner[innerHdrLen:]
	plain := payload
	if flags&flagCompressed != 0 {
		var err error
		plain, err = zstdDec.DecodeAll(payload, make([]byte, 0, size))
		if err != nil {
			return nil, sum, c.corrupt(name, "decompression failed (%v)", err)
		}
	}
	if uint64(len(plain)) != size {
		return nil, sum, c.corrupt(name, "length mismatch (%d bytes, header says %d)", len(plain), size)
	}
	if sum = sha256.Sum256(plain); !bytes.Equal(sum[:], want) {
		return nil, sum, c.corrupt(name, "checksum mismatch")
	}
	if flags&flagCompressed == 0 {
		plain = bytes.Clone(plain) // do not pin the whole object
	}
	return plain, sum, nil
}
