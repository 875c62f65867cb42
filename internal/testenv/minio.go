package testenv

// S3-compatible storage for tests: the throwaway MinIO server started by
// scripts/testenv.sh up, which exports
//
//	STILLPOINT_TEST_S3_ENDPOINT    127.0.0.1:PORT (plain http)
//	STILLPOINT_TEST_S3_ACCESS_KEY  access key (root user)
//	STILLPOINT_TEST_S3_SECRET_KEY  secret key
//
// Like the databases, the server is started by the first helper call when
// the variables are unset (plain `go test`).

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Environment variables for the MinIO server (written by
// scripts/testenv.sh into DIR/env).
const (
	EnvS3Endpoint  = "STILLPOINT_TEST_S3_ENDPOINT"
	EnvS3AccessKey = "STILLPOINT_TEST_S3_ACCESS_KEY"
	EnvS3SecretKey = "STILLPOINT_TEST_S3_SECRET_KEY"
)

var (
	s3Once   sync.Once
	s3Err    error
	s3Client *minio.Client
)

// S3URL returns an s3:// repository location for a new, empty bucket on
// the shared MinIO server:
//
//	s3://BUCKET?endpoint=127.0.0.1:PORT&tls=false&region=us-east-1
//
// The bucket is removed with everything in it in t.Cleanup. The server's
// credentials are exported as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
// for the whole test binary (they are the same for every call, so tests
// using S3URL may run in parallel; a test that needs them unset can clear
// them with t.Setenv).
func S3URL(t testing.TB) string {
	t.Helper()
	client := s3Setup(t)
	bucket := strings.ReplaceAll(UniqueName("sp-test"), "_", "-")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("testenv: creating bucket %s on MinIO at %s: %v", bucket, os.Getenv(EnvS3Endpoint), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// ForceDelete: MinIO removes the objects too.
		if err := client.RemoveBucketWithOptions(ctx, bucket, minio.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Errorf("testenv: removing bucket %s: %v", bucket, err)
		}
	})
	return fmt.Sprintf("s3://%s?endpoint=%s&tls=false&region=us-east-1", bucket, os.Getenv(EnvS3Endpoint))
}

// S3Client returns a client for the shared MinIO server (for tests that
// inspect or damage objects directly).
func S3Client(t testing.TB) *minio.Client {
	t.Helper()
	return s3Setup(t)
}

func s3Setup(t testing.TB) *minio.Client {
	t.Helper()
	s3Once.Do(func() { s3Client, s3Err = s3Start() })
	if s3Err != nil {
		t.Fatalf("testenv: no MinIO server: %v", s3Err)
	}
	return s3Client
}

// s3Start makes sure the STILLPOINT_TEST_S3_* variables are set (starting
// the servers when needed), exports the credentials and checks that the
// server answers.
func s3Start() (*minio.Client, error) {
	if os.Getenv(EnvS3Endpoint) == "" {
		// The database helpers' setup starts all servers, MinIO included,
		// when their variables are unset too.
		if err := setup(); err != nil {
			return nil, err
		}
		if os.Getenv(EnvS3Endpoint) == "" && ownDir != "" {
			if err := exportS3From(ownDir); err != nil {
				return nil, err
			}
		}
		if os.Getenv(EnvS3Endpoint) == "" {
			// The databases came from the environment, MinIO did not.
			if err := startOwnS3(); err != nil {
				return nil, err
			}
		}
	}
	endpoint, access, secret := os.Getenv(EnvS3Endpoint), os.Getenv(EnvS3AccessKey), os.Getenv(EnvS3SecretKey)
	if endpoint == "" || access == "" || secret == "" {
		return nil, fmt.Errorf("%s, %s and %s must all be set", EnvS3Endpoint, EnvS3AccessKey, EnvS3SecretKey)
	}
	os.Setenv("AWS_ACCESS_KEY_ID", access)
	os.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	client, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(access, secret, ""),
		Region: "us-east-1",
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := client.ListBuckets(ctx); err != nil {
		return nil, fmt.Errorf("MinIO at %s=%s is not usable: %v", EnvS3Endpoint, endpoint, err)
	}
	return client, nil
}

func exportS3From(dir string) error {
	return exportFrom(dir, EnvS3Endpoint, EnvS3AccessKey, EnvS3SecretKey)
}

// startOwnS3 runs `scripts/testenv.sh up` for MinIO's sake when the
// database variables were given but the S3 ones were not. Those servers
// are stopped by the script's watchdog once this test binary exits.
func startOwnS3() error {
	dir, err := runUp(EnvS3Endpoint + " is unset")
	if err != nil {
		return err
	}
	return exportS3From(dir)
}
