package testenv

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Each DynamoDSN has a prefix of its own, and the tables under it are gone
// once the test that asked for it has finished.
func TestDynamoDSNDroppedOnCleanup(t *testing.T) {
	ctx := context.Background()
	var prefixes []string
	for range 2 {
		t.Run("inner", func(t *testing.T) {
			u, err := url.Parse(DynamoDSN(t))
			if err != nil {
				t.Fatal(err)
			}
			prefix := u.Query().Get("namespace_prefix")
			prefixes = append(prefixes, prefix)
			_, err = DynamoClient(t).CreateTable(ctx, &dynamodb.CreateTableInput{
				TableName:            aws.String(prefix + "ns.t"),
				AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
				KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}},
				BillingMode:          types.BillingModePayPerRequest,
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	if prefixes[0] == prefixes[1] || !strings.HasPrefix(prefixes[0], "sp_") {
		t.Fatalf("prefixes %q: want two different ones from UniqueName(\"sp\")", prefixes)
	}
	c := DynamoClient(t)
	Await(t, "the tables of finished tests deleted", func() bool {
		for p := dynamodb.NewListTablesPaginator(c, &dynamodb.ListTablesInput{}); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range page.TableNames {
				if strings.HasPrefix(n, prefixes[0]) || strings.HasPrefix(n, prefixes[1]) {
					return false
				}
			}
		}
		return true
	})
}
