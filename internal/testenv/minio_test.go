package testenv

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"os"
	"regexp"
	"testing"

	"github.com/minio/minio-go/v7"
)

func TestS3URLFreshBucketRemovedOnCleanup(t *testing.T) {
	ctx := context.Background()
	client := S3Client(t)
	var first, second string
	t.Run("inner", func(t *testing.T) {
		a, b := S3URL(t), S3URL(t)
		ua, err := url.Parse(a)
		if err != nil {
			t.Fatal(err)
		}
		ub, err := url.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		first, second = ua.Host, ub.Host
		if ua.Scheme != "s3" || first == second {
			t.Fatalf("S3URL gave %s and %s: want two s3:// URLs with different buckets", a, b)
		}
		if !regexp.MustCompile(`^sp-test-[a-z0-9]{8}$`).MatchString(first) {
			t.Fatalf("bucket %q is not a valid, unique S3 bucket name", first)
		}
		q := ua.Query()
		if q.Get("endpoint") != os.Getenv(EnvS3Endpoint) || q.Get("tls") != "false" {
			t.Fatalf("S3URL %s: want endpoint=%s&tls=false", a, os.Getenv(EnvS3Endpoint))
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") != os.Getenv(EnvS3AccessKey) || os.Getenv("AWS_SECRET_ACCESS_KEY") == "" {
			t.Fatal("S3URL did not export the credentials as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
		}
		for _, bucket := range []string{first, second} {
			ok, err := client.BucketExists(ctx, bucket)
			if err != nil || !ok {
				t.Fatalf("bucket %s: exists=%v err=%v", bucket, ok, err)
			}
			for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
				t.Fatalf("new bucket %s is not empty: %s (err %v)", bucket, o.Key, o.Err)
			}
		}
		// An object left behind must not keep the bucket from being removed.
		data := []byte("left behind")
		if _, err := client.PutObject(ctx, first, "x/y", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		obj, err := client.GetObject(ctx, first, "x/y", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %q, %v", got, err)
		}
		// The other bucket does not see it.
		if _, err := client.StatObject(ctx, second, "x/y", minio.StatObjectOptions{}); err == nil {
			t.Fatalf("object written to bucket %s is visible in bucket %s", first, second)
		}
	})
	for _, bucket := range []string{first, second} {
		ok, err := client.BucketExists(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			t.Fatalf("bucket %s still exists after the test that created it finished", bucket)
		}
	}
}
