package dynamodb_test

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/dynamodb"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
	"github.com/stillpoint/stillpoint/internal/testenv"
	"github.com/stillpoint/stillpoint/internal/workload/bank"
)

// TestParseDSN: a DSN gives region, endpoint, prefix, credentials and the
// backup's scan options; a bad one is refused with what to write instead,
// never showing a secret.
func TestParseDSN(t *testing.T) {
	cases := []struct {
		dsn     string
		want    dynamodb.Config
		mention string // "" : valid
	}{
		{"", dynamodb.Config{}, ""},
		{"dynamodb://us-east-1", dynamodb.Config{Region: "us-east-1"}, ""},
		{"dynamodb://id:s3cret@eu-west-1?endpoint=http://127.0.0.1:4567&namespace_prefix=dev_",
			dynamodb.Config{Region: "eu-west-1", Endpoint: "http://127.0.0.1:4567", Prefix: "dev_", AccessKeyID: "id", Secret: "s3cret"}, ""},
		{"dynamodb://?endpoint=http://localhost:8000", dynamodb.Config{Endpoint: "http://localhost:8000"}, ""},
		{"postgres://us-east-1", dynamodb.Config{}, "dynamodb://"},
		{"dynamodb://id@us-east-1", dynamodb.Config{}, "ID:SECRET@"},
		{"dynamodb://id:s3cret@us-east-1?endpoint=localhost", dynamodb.Config{}, "endpoint"},
		{"dynamodb://id:s3cret@us-east-1?region=x", dynamodb.Config{}, `"region"`},
		{"dynamodb://us-east-1?scan_segments=32&spool_dir=/secure/spool", dynamodb.Config{Region: "us-east-1", ScanSegments: 32, SpoolDir: "/secure/spool"}, ""},
		{"dynamodb://us-east-1?scan_segments=0", dynamodb.Config{}, "scan_segments"},
		{"dynamodb://us-east-1?scan_segments=1000001", dynamodb.Config{}, "1 to 1000000"},
		{"dynamodb://us-east-1?scan_segments=eight", dynamodb.Config{}, "scan_segments"},
		{"dynamodb://us-east-1?spool_dir=spool", dynamodb.Config{}, "absolute"},
	}
	for _, c := range cases {
		t.Run(c.dsn, func(t *testing.T) {
			got, err := dynamodb.ParseDSN(c.dsn)
			if c.mention == "" {
				if err != nil || got != c.want {
					t.Fatalf("ParseDSN = %+v, %v; want %+v", got, err, c.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.mention) || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("ParseDSN error %v: want one naming %q, without the secret", err, c.mention)
			}
		})
	}
	if r := config.RedactDSN("dynamodb://id:s3cret@us-east-1"); strings.Contains(r, "s3cret") {
		t.Errorf("RedactDSN shows the secret: %s", r)
	}
}

// An unreachable endpoint fails at open, naming the endpoint.
func TestOpenUnreachable(t *testing.T) {
	_, err := dynamodb.Open(context.Background(), "dy", "dynamodb://id:s3cret@us-east-1?endpoint=http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open of an unreachable endpoint: %v; want an error naming it, without the secret", err)
	}
}

// A namespace or table DynamoDB cannot name is refused before anything is
// created, saying which characters it takes.
func TestTableNames(t *testing.T) {
	ctx := context.Background()
	st, err := dynamodb.Open(ctx, "dy", testenv.DynamoDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"naïve", "with space"} {
		m := &storage.TableMetadata{Namespace: ns, Table: "t", Columns: []storage.Column{{Name: "id", Type: storage.Int}}, PartitionKey: []string{"id"}}
		if err := st.CreateTable(ctx, m); err == nil || !strings.Contains(err.Error(), "a-z, A-Z, 0-9") {
			t.Errorf("CreateTable(%s.t): %v; want a refusal naming the characters DynamoDB takes", ns, err)
		}
		if got, err := st.TableMetadata(ctx, ns, "t"); got != nil || err != nil {
			t.Errorf("TableMetadata after the refusal: %+v, %v", got, err)
		}
	}
}

// TestScanOptionsReachTheBackup: the DSN's scan_segments and spool_dir are
// how a fence backup reads the store; a spool directory that is not there
// fails the backup naming it, and nothing is listed.
func TestScanOptionsReachTheBackup(t *testing.T) {
	ctx := context.Background()
	_, _, pgDSN, dyDSN := newBank(t, bank.Setup{Namespaces: []string{"bank_0", "bank_1"}, Accounts: 30, InitialBalance: 100})
	missing := filepath.Join(t.TempDir(), "missing")
	cases := []struct {
		dsn, point, fails string
	}{
		{"", "30 records, 8 segments each", ""},
		{"&scan_segments=3", "30 records, 3 segments each", ""},
		{"&spool_dir=" + url.QueryEscape(missing), "", missing},
	}
	for _, c := range cases {
		t.Run(c.dsn, func(t *testing.T) {
			r := newRepo(t)
			bst := multistorage.New(bankConfig(t.TempDir(), pgDSN, dyDSN+c.dsn))
			defer bst.Close()
			man, err := backup.Create(ctx, bst, r, backup.Options{Mode: backup.Fence, FenceMaxHold: time.Minute})
			if c.fails != "" {
				if list, lerr := r.ListManifests(ctx); err == nil || !strings.Contains(err.Error(), c.fails) || lerr != nil || len(list) != 0 {
					t.Fatalf("backup: %v, listed %v (%v); want a failure naming %s, nothing listed", err, list, lerr, c.fails)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, sb := range man.Stores {
				if sb.Name == "dy" && !strings.Contains(sb.CutPoint, c.point) {
					t.Errorf("DynamoDB's cut point %q; want it to say %q", sb.CutPoint, c.point)
				}
			}
		})
	}
}
