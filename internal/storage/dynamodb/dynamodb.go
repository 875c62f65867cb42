// Package dynamodb is the engine over DynamoDB (and DynamoDB-compatible
// servers such as dynalite), in ScalarDB's DynamoDB layout: a table per
// "namespace.table", the key columns concatenated into ordered bytes, the
// metadata in the table "<metadata schema>.metadata" (docs/dynamodb.md).
package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/stillpoint/stillpoint/internal/cut"
	"github.com/stillpoint/stillpoint/internal/storage"
)

// Engine is the name the engine registers.
const Engine = "dynamodb"

func init() {
	storage.RegisterEngine(storage.Engine{Name: Engine, Limits: limits,
		Open: storage.Opener(func(ctx context.Context, name string, c storage.Connection) (*Store, error) {
			return open(ctx, name, c.DSN, c.Layout)
		})})
}

// limits: DynamoDB table names are at most 255 characters and hold
// "namespace.table"; index names too.
func limits(v storage.ScalarDBVersion) storage.Limits {
	return storage.Limits{MaxName: 255, ScalarDB: v}
}

// Store is one DynamoDB endpoint and region (an AWS account's tables, or a
// dynalite server).
type Store struct {
	name   string
	client *dynamodb.Client
	layout storage.Layout
	// prefix is ScalarDB's scalar.db.dynamo.namespace.prefix, put before
	// every namespace, the metadata's included.
	prefix string
	server string
	// scanOptions is how a backup reads the store (the DSN's scan_segments, spool_dir).
	scanOptions cut.ScanOptions

	mu       sync.Mutex
	metadata map[string]*storage.TableMetadata

	// noTransactions: the server answered TransactWriteItems with
	// UnknownOperationException (dynalite); Mutate falls back.
	noTransactions atomic.Bool

	// beforeWrite, when set (by tests), runs after a Mutate of several
	// records has read and checked them and before it writes.
	beforeWrite func()
}

// Config is what a store's DSN says:
//
//	dynamodb://[ACCESS_KEY_ID:SECRET_ACCESS_KEY@][REGION][?endpoint=URL&namespace_prefix=P&scan_segments=N&spool_dir=DIR]
//
// An empty region or absent credentials come from the usual AWS
// environment (AWS_REGION, AWS_ACCESS_KEY_ID, profiles, instance roles).
// scan_segments and spool_dir tune a backup's read of the store under the
// fence (cut.ScanOptions, docs/dynamodb.md).
type Config struct {
	Region, Endpoint, Prefix string
	AccessKeyID, Secret      string
	ScanSegments             int
	SpoolDir                 string
}

// maxSegments is DynamoDB's limit on a parallel scan's TotalSegments.
const maxSegments = 1_000_000

// ParseDSN reads a store's DSN; its errors never show the secret.
func ParseDSN(dsn string) (Config, error) {
	var c Config
	if dsn == "" {
		return c, nil
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "dynamodb" {
		return c, errors.New(`a dynamodb dsn is dynamodb://[ACCESS_KEY_ID:SECRET@][REGION][?endpoint=URL&namespace_prefix=P], e.g. "dynamodb://us-east-1" or "dynamodb://?endpoint=http://127.0.0.1:4567"`)
	}
	c.Region = u.Host
	if u.User != nil {
		c.AccessKeyID = u.User.Username()
		c.Secret, _ = u.User.Password()
		if c.Secret == "" {
			return c, errors.New("dynamodb dsn: credentials in the dsn need both the access key id and the secret (ID:SECRET@); or leave them out to use the AWS environment")
		}
	}
	for k, v := range u.Query() {
		switch k {
		case "endpoint":
			c.Endpoint = v[0]
			if e, err := url.Parse(c.Endpoint); err != nil || e.Scheme == "" || e.Host == "" {
				return c, fmt.Errorf("dynamodb dsn: endpoint %q is not a URL such as http://127.0.0.1:4567", c.Endpoint)
			}
		case "namespace_prefix":
			c.Prefix = v[0]
		case "scan_segments":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 || n > maxSegments {
				return c, fmt.Errorf("dynamodb dsn: scan_segments %q is not a number of segments from 1 to %d", v[0], maxSegments)
			}
			c.ScanSegments = n
		case "spool_dir":
			if !filepath.IsAbs(v[0]) {
				return c, fmt.Errorf("dynamodb dsn: spool_dir %q is not an absolute path (the directory that receives a backup's plain copy of the store)", v[0])
			}
			c.SpoolDir = v[0]
		default:
			return c, fmt.Errorf("dynamodb dsn: unknown parameter %q (known: endpoint, namespace_prefix, scan_segments, spool_dir)", k)
		}
	}
	return c, nil
}

// Open connects with ScalarDB's default layout.
func Open(ctx context.Context, name, dsn string) (*Store, error) {
	return open(ctx, name, dsn, storage.Layout{})
}

func open(ctx context.Context, name, dsn string, layout storage.Layout) (*Store, error) {
	c, err := ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s (dynamodb): %w", name, err)
	}
	opts := []func(*awsconfig.LoadOptions) error{}
	if c.Region != "" {
		opts = append(opts, awsconfig.WithRegion(c.Region))
	}
	if c.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.Secret, "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("store %s (dynamodb): AWS configuration: %w", name, err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("store %s (dynamodb): no region: put it in the dsn (dynamodb://REGION) or set AWS_REGION", name)
	}
	client := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
	})
	server := c.Endpoint
	if server == "" {
		server = "DynamoDB " + cfg.Region
	}
	s := &Store{name: name, client: client, layout: layout.WithDefaults(), prefix: c.Prefix, server: server,
		scanOptions: cut.ScanOptions{Segments: c.ScanSegments, SpoolDir: c.SpoolDir}, metadata: map[string]*storage.TableMetadata{}}
	// Reach the server now, so a wrong endpoint or credentials fail here.
	if _, err := client.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)}); err != nil {
		return nil, s.wrap(err, "connect to "+server)
	}
	return s, nil
}

// Close releases nothing: the SDK's HTTP client needs no closing.
func (s *Store) Close() error { return nil }

// Info names the server: DynamoDB has no version to ask for.
func (s *Store) Info(context.Context) (storage.EngineInfo, error) {
	return storage.EngineInfo{Engine: Engine, Version: s.server}, nil
}

// physicalNamespace maps the coordinator namespace, which the layers
// above always call "coordinator", and puts the prefix in front.
func (s *Store) physicalNamespace(namespace string) string {
	if namespace == storage.DefaultCoordinatorNamespace {
		namespace = s.layout.CoordinatorNamespace
	}
	return s.prefix + namespace
}

// tableName is the DynamoDB table of namespace.table (ScalarDbUtils.getFullTableName).
func (s *Store) tableName(namespace, table string) string {
	return s.physicalNamespace(namespace) + "." + table
}

func (s *Store) metadataTable() string { return s.prefix + s.layout.MetadataSchema + ".metadata" }

// wrap names the store and marks throttling and transaction conflicts
// retriable.
func (s *Store) wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	var throttled *types.ProvisionedThroughputExceededException
	var conflict *types.TransactionConflictException
	var inProgress *types.TransactionInProgressException
	var limit *types.RequestLimitExceeded
	var api smithy.APIError
	if errors.As(err, &throttled) || errors.As(err, &conflict) || errors.As(err, &inProgress) || errors.As(err, &limit) ||
		errors.As(err, &api) && api.ErrorCode() == "ThrottlingException" {
		return fmt.Errorf("store %s (dynamodb): %s: %w: %w", s.name, what, storage.ErrRetriable, err)
	}
	return fmt.Errorf("store %s (dynamodb): %s: %w", s.name, what, err)
}

func isNotFound(err error) bool {
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

func isConditionFailed(err error) bool {
	var cf *types.ConditionalCheckFailedException
	return errors.As(err, &cf)
}

func isUnknownOperation(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && strings.Contains(api.ErrorCode(), "UnknownOperation")
}

// notFound is the error of an operation on a table with no metadata.
func (s *Store) notFound(namespace, table string) error {
	return fmt.Errorf("store %s: %s.%s: %w", s.name, namespace, table, storage.ErrTableNotFound)
}
