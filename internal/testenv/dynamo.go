package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/stillpoint/stillpoint/internal/config"
)

// EnvDynamoEndpoint is dynalite's URL, written by scripts/testenv.sh up.
const EnvDynamoEndpoint = "STILLPOINT_TEST_DYNAMO_ENDPOINT"

var (
	dynamoOnce sync.Once
	dynamoErr  error
)

// DynamoEndpoint returns the URL of the dynalite server, starting one for
// this test binary (scripts/testenv.sh up-dynalite, with a watchdog that
// stops it when the binary exits) when the environment has none, as an
// environment started before dynalite was added does not.
func DynamoEndpoint(t testing.TB) string {
	t.Helper()
	dynamoOnce.Do(func() {
		if os.Getenv(EnvDynamoEndpoint) != "" {
			return
		}
		dir, err := runScript("up-dynalite", EnvDynamoEndpoint+" is unset")
		if err != nil {
			dynamoErr = err
			return
		}
		dynamoErr = exportFrom(dir, EnvDynamoEndpoint)
	})
	if dynamoErr != nil {
		t.Fatalf("testenv: no dynalite: %v", dynamoErr)
	}
	return os.Getenv(EnvDynamoEndpoint)
}

// DynamoDSN returns the DSN of a new, empty DynamoDB store on dynalite: a
// namespace prefix of its own (ScalarDB's scalar.db.dynamo.namespace.prefix)
// keeps its tables, metadata table included, apart from other tests'. Its
// tables are deleted in t.Cleanup.
func DynamoDSN(t testing.TB) string {
	t.Helper()
	endpoint := DynamoEndpoint(t)
	prefix := UniqueName("sp") + "_"
	t.Cleanup(func() {
		// dynalite deletes a table item by item: minutes for the
		// 1,000,000 items of internal/storage/dynamodb's benchmark.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if err := dropDynamoTables(ctx, endpoint, prefix); err != nil {
			t.Errorf("testenv: dropping the dynalite tables %s*: %v", prefix, err)
		}
	})
	return DynamoDSNFor(endpoint, prefix)
}

// DynamoDSNFor is the DSN of a store on endpoint with a namespace prefix.
// dynalite accepts any credentials.
func DynamoDSNFor(endpoint, prefix string) string {
	return "dynamodb://test:test@us-east-1?" + url.Values{"endpoint": {endpoint}, "namespace_prefix": {prefix}}.Encode()
}

// DynamoClient is a client of dynalite, for tests that write items
// directly (as ScalarDB would).
func DynamoClient(t testing.TB) *dynamodb.Client {
	return dynamoClient(DynamoEndpoint(t))
}

func dynamoClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

func dropDynamoTables(ctx context.Context, endpoint, prefix string) error {
	c := dynamoClient(endpoint)
	p := dynamodb.NewListTablesPaginator(c, &dynamodb.ListTablesInput{})
	var names []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, n := range page.TableNames {
			if strings.HasPrefix(n, prefix) {
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		if _, err := c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(n)}); err != nil {
			return fmt.Errorf("delete %s: %w", n, err)
		}
	}
	return nil
}

// Dynamo is a configuration whose namespaces and coordinator are all on a
// new DynamoDB store on dynalite (DynamoDSN).
func Dynamo(t testing.TB, namespaces ...string) *config.Config {
	t.Helper()
	cfg := &config.Config{
		DataDir:     t.TempDir(),
		Stores:      map[string]config.Store{"dy": {Engine: "dynamodb", DSN: DynamoDSN(t)}},
		Namespaces:  map[string]string{},
		Coordinator: "dy",
		Source:      "test",
	}
	for _, ns := range namespaces {
		cfg.Namespaces[ns] = "dy"
	}
	return cfg
}

// DynamoPostgres is DynamoDB plus PostgreSQL: the namespaces go
// alternately to a new DynamoDB store ("dy") and a fresh PostgreSQL
// database ("pg"); the coordinator is on DynamoDB.
func DynamoPostgres(t testing.TB, namespaces ...string) *config.Config {
	t.Helper()
	cfg := Dynamo(t)
	cfg.Stores["pg"] = config.Store{Engine: "postgres", DSN: PostgresDSN(t)}
	for i, ns := range namespaces {
		cfg.Namespaces[ns] = []string{"dy", "pg"}[i%2]
	}
	return cfg
}
