// Package s3 is the repository backend for S3-compatible object storage
// (AWS S3, MinIO, ...), using github.com/minio/minio-go/v7.
//
// Location:
//
//	s3://BUCKET[/PREFIX][?endpoint=HOST:PORT&tls=false&region=REGION]
//
//	endpoint  host[:port] of the service (default s3.amazonaws.com)
//	tls       "false" for plain http (default true)
//	region    bucket region (default: asked from the service; buckets this
//	          backend creates are created in it, or in us-east-1)
//
// Object NAME is the key PREFIX/NAME. The bucket is created if missing.
//
// Credentials come from the environment: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if set), or else
// MINIO_ROOT_USER and MINIO_ROOT_PASSWORD. They never appear in messages.
//
// PutIfAbsent is a conditional PUT with "If-None-Match: *", which S3 and
// MinIO evaluate atomically.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/stillpoint/stillpoint/internal/repo/backend"
)

// Environment variables holding the credentials.
const (
	EnvAccessKey    = "AWS_ACCESS_KEY_ID"
	EnvSecretKey    = "AWS_SECRET_ACCESS_KEY"
	EnvSessionToken = "AWS_SESSION_TOKEN"
	EnvMinioUser    = "MINIO_ROOT_USER"
	EnvMinioPass    = "MINIO_ROOT_PASSWORD"
)

// Backend is a bucket (and key prefix) on S3-compatible storage.
type Backend struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or ending in "/"
	endpoint string
	location string // s3://bucket/prefix, for messages
}

// Location is a parsed s3:// location.
type Location struct {
	Bucket   string
	Prefix   string // without leading or trailing "/"
	Endpoint string
	TLS      bool
	Region   string
}

// ParseLocation parses an s3:// location (see the package documentation).
func ParseLocation(location string) (Location, error) {
	u, err := url.Parse(location)
	if err != nil {
		return Location{}, fmt.Errorf("repository location %q: %v", redact(location), err)
	}
	if u.Scheme != "s3" {
		return Location{}, fmt.Errorf("repository location %q: not an s3:// URL", redact(location))
	}
	if u.User != nil {
		return Location{}, fmt.Errorf("repository location %q: do not put credentials in the URL; set %s and %s", redact(location), EnvAccessKey, EnvSecretKey)
	}
	if u.Host == "" {
		return Location{}, fmt.Errorf("repository location %q: no bucket (use s3://BUCKET/PREFIX)", location)
	}
	l := Location{
		Bucket:   u.Host,
		Prefix:   strings.Trim(u.Path, "/"),
		Endpoint: "s3.amazonaws.com",
		TLS:      true,
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			if v == "" || strings.Contains(v, "/") {
				return Location{}, fmt.Errorf("repository location %q: endpoint must be HOST[:PORT], got %q", location, v)
			}
			l.Endpoint = v
		case "tls":
			switch strings.ToLower(v) {
			case "true", "1", "yes":
				l.TLS = true
			case "false", "0", "no":
				l.TLS = false
			default:
				return Location{}, fmt.Errorf("repository location %q: tls must be true or false, got %q", location, v)
			}
		case "region":
			l.Region = v
		default:
			return Location{}, fmt.Errorf("repository location %q: unknown parameter %q (known: endpoint, tls, region)", location, k)
		}
	}
	return l, nil
}

// redact hides any user info in a URL-ish string.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		return u.String()
	}
	return s
}

func init() {
	backend.Register("s3", func(ctx context.Context, location string) (backend.Backend, error) { return Open(ctx, location) })
}

// Open connects to the location, checks that it is reachable and the
// credentials work, and creates the bucket if it does not exist.
func Open(ctx context.Context, location string) (*Backend, error) {
	l, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	return OpenLocation(ctx, l)
}

// OpenLocation is Open for a parsed location.
func OpenLocation(ctx context.Context, l Location) (*Backend, error) {
	b := &Backend{
		bucket:   l.Bucket,
		endpoint: l.Endpoint,
		location: "s3://" + l.Bucket,
	}
	if l.Prefix != "" {
		b.prefix = l.Prefix + "/"
		b.location += "/" + l.Prefix
	}
	creds, err := envCredentials()
	if err != nil {
		return nil, fmt.Errorf("repository %s: %v", b, err)
	}
	transport, err := minio.DefaultTransport(l.TLS)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %v", b, err)
	}
	transport.ResponseHeaderTimeout = 2 * time.Minute
	b.client, err = minio.New(l.Endpoint, &minio.Options{
		Creds:      creds,
		Secure:     l.TLS,
		Region:     l.Region,
		Transport:  transport,
		MaxRetries: 5,
	})
	if err != nil {
		return nil, fmt.Errorf("repository %s: %v", b, err)
	}
	exists, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil {
		return nil, b.wrap("checking the bucket", "", err)
	}
	if !exists {
		region := l.Region
		if region == "" {
			region = "us-east-1"
		}
		err := b.client.MakeBucket(ctx, b.bucket, minio.MakeBucketOptions{Region: region})
		if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			err = nil // created concurrently
		}
		if err != nil {
			return nil, b.wrap("creating the bucket", "", err)
		}
	}
	return b, nil
}

func envCredentials() (*credentials.Credentials, error) {
	if id, secret := os.Getenv(EnvAccessKey), os.Getenv(EnvSecretKey); id != "" || secret != "" {
		if id == "" || secret == "" {
			return nil, fmt.Errorf("incomplete S3 credentials: set both %s and %s", EnvAccessKey, EnvSecretKey)
		}
		return credentials.NewStaticV4(id, secret, os.Getenv(EnvSessionToken)), nil
	}
	if id, secret := os.Getenv(EnvMinioUser), os.Getenv(EnvMinioPass); id != "" && secret != "" {
		return credentials.NewStaticV4(id, secret, ""), nil
	}
	return nil, fmt.Errorf("no S3 credentials: set %s and %s (or %s and %s)", EnvAccessKey, EnvSecretKey, EnvMinioUser, EnvMinioPass)
}

// String returns "s3://bucket/prefix (endpoint HOST)".
func (b *Backend) String() string {
	return b.location + " (endpoint " + b.endpoint + ")"
}

func (b *Backend) key(name string) (string, error) {
	if err := backend.ValidName(name); err != nil {
		return "", fmt.Errorf("repository %s: %w", b, err)
	}
	return b.prefix + name, nil
}

// wrap explains a failed request: what went wrong, where, and what to do.
func (b *Backend) wrap(op, name string, err error) error {
	what := op
	if name != "" {
		what += " " + name
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("repository %s: %s: %w", b, what, err)
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken":
		return fmt.Errorf("repository %s: %s: access denied (%s): check the credentials in %s/%s and the bucket's policy: %w",
			b, what, resp.Code, EnvAccessKey, EnvSecretKey, err)
	case "NoSuchBucket":
		return fmt.Errorf("repository %s: %s: the bucket %s does not exist (was it deleted?): %w", b, what, b.bucket, err)
	case "InvalidBucketName":
		return fmt.Errorf("repository %s: %s: %q is not a valid bucket name: %w", b, what, b.bucket, err)
	}
	if minio.IsNetworkOrHostDown(err, false) || resp.StatusCode == 0 && isTransport(err) {
		return fmt.Errorf("repository %s: %s: cannot reach the S3 endpoint %s: %w: check the endpoint= and tls= parameters of the location and that the service is running",
			b, what, b.endpoint, err)
	}
	return fmt.Errorf("repository %s: %s: %w", b, what, err)
}

func isTransport(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}

func isNotFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket"
}

// Put implements backend.Backend. An S3 PUT is atomic.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	_, err = b.client.PutObject(ctx, b.bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return b.wrap("writing", name, err)
	}
	return nil
}

// PutIfAbsent implements backend.Backend with a conditional PUT
// (If-None-Match: *).
func (b *Backend) PutIfAbsent(ctx context.Context, name string, data []byte) (bool, error) {
	key, err := b.key(name)
	if err != nil {
		return false, err
	}
	for attempt := 0; ; attempt++ {
		opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true}
		opts.SetMatchETagExcept("*")
		_, err = b.client.PutObject(ctx, b.bucket, key, bytes.NewReader(data), int64(len(data)), opts)
		if err == nil {
			return true, nil
		}
		resp := minio.ToErrorResponse(err)
		switch {
		case resp.Code == minio.PreconditionFailed || resp.StatusCode == http.StatusPreconditionFailed:
			return false, nil
		case (resp.Code == "ConditionalRequestConflict" || resp.StatusCode == http.StatusConflict) && attempt < 5:
			// A concurrent conditional write is in progress: ask again
			// once it is decided.
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
			}
		case resp.Code == "NotImplemented":
			return false, fmt.Errorf("repository %s: writing %s: the service does not support conditional writes (If-None-Match), which the repository lock needs: %w", b, name, err)
		default:
			return false, b.wrap("writing", name, err)
		}
	}
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, name string) ([]byte, error) {
	key, err := b.key(name)
	if err != nil {
		return nil, err
	}
	obj, err := b.client.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{})
	if err == nil {
		defer obj.Close()
		var data []byte
		data, err = io.ReadAll(obj)
		if err == nil {
			return data, nil
		}
	}
	if isNotFound(err) {
		return nil, backend.NotFound(b.String(), name)
	}
	return nil, b.wrap("reading", name, err)
}

// Exists implements backend.Backend.
func (b *Backend) Exists(ctx context.Context, name string) (bool, error) {
	key, err := b.key(name)
	if err != nil {
		return false, err
	}
	_, err = b.client.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	default:
		return false, b.wrap("checking", name, err)
	}
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	return backend.Names(b.ListInfo(ctx, prefix))
}

// ListInfo implements backend.Backend.
func (b *Backend) ListInfo(ctx context.Context, prefix string) ([]backend.ObjectInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine on an early return
	var out []backend.ObjectInfo
	for obj := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, b.wrap("listing", fmt.Sprintf("%q", prefix), obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, b.prefix)
		if name == "" || strings.HasSuffix(name, "/") {
			continue // a "directory" marker some tools create
		}
		out = append(out, backend.ObjectInfo{Name: name, Size: obj.Size})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, name string) error {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	if err := b.client.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return b.wrap("deleting", name, err)
	}
	return nil
}
