package dynamodb_test

import (
	"bytes"
	"math"
	"testing"

	"github.com/stillpoint/stillpoint/internal/storage/dynamodb"
	"github.com/stillpoint/stillpoint/internal/storage/storagetest"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		Engine: "dynamodb",
		// A namespace prefix of its own per test: namespaces need no
		// unique names.
		Database: func(t *testing.T) string { return testenv.DynamoDSN(t) },
		Open:     storagetest.Opener(dynamodb.Open),
		Refuses:  refuses,
	})
}

// refuses: DynamoDB's numbers stop short of a double's range, and an empty
// BLOB partition key would be an empty key attribute (docs/dynamodb.md).
func refuses(column string, v any) bool {
	switch x := v.(type) {
	case float64:
		return x != 0 && (math.Abs(x) < 1e-130 || math.Abs(x) >= 1e126)
	case []byte:
		return column == "p" && bytes.Equal(x, []byte{})
	}
	return false
}
