package dynamodb

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// The attributes of ScalarDB's layout (DynamoOperation.PARTITION_KEY,
// CLUSTERING_KEY): the key columns, ordered-byte encoded and concatenated,
// are the table's hash and range keys; every column is also an attribute
// of its own (docs/dynamodb.md).
const (
	partitionAttr  = "concatenatedPartitionKey"
	clusteringAttr = "concatenatedClusteringKey"
)

// keyPart is one key column's value and order.
type keyPart struct {
	column string
	typ    storage.DataType
	value  any
	order  storage.Order
	// rawBlob: a BLOB as the last partition key column, written as its
	// bytes as ScalarDB does; other BLOB key columns (which ScalarDB
	// refuses) are escaped so they stay ordered and unambiguous.
	rawBlob bool
}

// encodeKey concatenates ScalarDB's order-preserving encodings
// (storage/dynamo/bytes/*BytesEncoder.java).
func encodeKey(parts []keyPart) ([]byte, error) {
	var b []byte
	for _, p := range parts {
		start := len(b)
		switch p.typ {
		case storage.Boolean:
			if p.value.(bool) {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		case storage.Int:
			b = appendUint32(b, uint32(p.value.(int32))^1<<31)
		case storage.BigInt:
			b = appendUint64(b, uint64(p.value.(int64))^1<<63)
		case storage.Float:
			u := math.Float32bits(p.value.(float32))
			u ^= uint32(int32(u)>>31) | 1<<31
			b = appendUint32(b, u)
		case storage.Double:
			u := math.Float64bits(p.value.(float64))
			u ^= uint64(int64(u)>>63) | 1<<63
			b = appendUint64(b, u)
		case storage.Text:
			s := p.value.(string)
			if strings.IndexByte(s, 0) >= 0 {
				return nil, fmt.Errorf("key column %q: a TEXT key value cannot hold the character U+0000 in ScalarDB's DynamoDB layout (it terminates the value)", p.column)
			}
			b = append(append(b, s...), 0)
		case storage.Blob:
			v := p.value.([]byte)
			if p.rawBlob {
				b = append(b, v...)
				break
			}
			// 0x00 is escaped as 0x00 0xFF and the value ends with 0x00 0x00.
			for _, c := range v {
				b = append(b, c)
				if c == 0 {
					b = append(b, 0xff)
				}
			}
			b = append(b, 0, 0)
		case storage.Date:
			b = appendUint32(b, uint32(int32(epochDay(p.value.(time.Time))))^1<<31)
		case storage.Time, storage.Timestamp, storage.TimestampTZ:
			b = appendUint64(b, uint64(numberOf(p.typ, p.value))^1<<63)
		default:
			return nil, fmt.Errorf("key column %q: type %v cannot be a key", p.column, p.typ)
		}
		if p.order == storage.Desc {
			for i := start; i < len(b); i++ {
				b[i] ^= 0xff
			}
		}
	}
	return b, nil
}

func appendUint32(b []byte, u uint32) []byte {
	return append(b, byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

func appendUint64(b []byte, u uint64) []byte {
	return appendUint32(appendUint32(b, uint32(u>>32)), uint32(u))
}

// nextPrefix is the smallest byte string greater than every string that
// starts with b, or nil when there is none (b is all 0xFF).
func nextPrefix(b []byte) []byte {
	n := bytes.Clone(b)
	for len(n) > 0 && n[len(n)-1] == 0xff {
		n = n[:len(n)-1]
	}
	if len(n) == 0 {
		return nil
	}
	n[len(n)-1]++
	return n
}

const day = 24 * time.Hour

func epochDay(t time.Time) int64 { return t.Unix() / int64(day/time.Second) }

// numberOf is the number ScalarDB stores for a temporal or numeric value
// (TimeRelatedColumnEncodingUtils): DATE epoch day, TIME nanosecond of the
// day, TIMESTAMP(TZ) "<epochSecond><millisecond>" with the millisecond
// complemented before 1970 so that the numbers keep their order.
func numberOf(t storage.DataType, v any) int64 {
	switch t {
	case storage.Date:
		return epochDay(v.(time.Time))
	case storage.Time:
		return int64(v.(time.Duration))
	case storage.Timestamp, storage.TimestampTZ:
		tm := v.(time.Time)
		enc := tm.Unix() * 1000
		ms := int64(tm.Nanosecond() / 1e6)
		if enc < 0 {
			return enc - (999 - ms)
		}
		return enc + ms
	}
	panic(fmt.Sprintf("dynamodb: numberOf %v", t))
}

// fromNumber inverts numberOf.
func fromNumber(t storage.DataType, n int64) any {
	switch t {
	case storage.Date:
		return time.Unix(n*int64(day/time.Second), 0).UTC()
	case storage.Time:
		return time.Duration(n)
	}
	sec, ms := n/1000, n%1000
	if n < 0 {
		ms += 999
	}
	return time.Unix(sec, ms*1e6).UTC()
}

// attrValue is a column value as ScalarDB's ValueBinder writes it; NULL is
// {NULL: true}.
func attrValue(t storage.DataType, v any) types.AttributeValue {
	if v == nil {
		return &types.AttributeValueMemberNULL{Value: true}
	}
	switch t {
	case storage.Boolean:
		return &types.AttributeValueMemberBOOL{Value: v.(bool)}
	case storage.Int:
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(int64(v.(int32)), 10)}
	case storage.BigInt:
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v.(int64), 10)}
	case storage.Float:
		return &types.AttributeValueMemberN{Value: strconv.FormatFloat(float64(v.(float32)), 'g', -1, 32)}
	case storage.Double:
		return &types.AttributeValueMemberN{Value: strconv.FormatFloat(v.(float64), 'g', -1, 64)}
	case storage.Text:
		return &types.AttributeValueMemberS{Value: v.(string)}
	case storage.Blob:
		return &types.AttributeValueMemberB{Value: v.([]byte)}
	}
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(numberOf(t, v), 10)}
}

// columnValue reads an attribute back; absent or NULL is nil.
func columnValue(t storage.DataType, column string, av types.AttributeValue) (any, error) {
	bad := func() error {
		return fmt.Errorf("column %q (%v) holds a DynamoDB %T, not what ScalarDB's layout writes for it", column, t, av)
	}
	switch x := av.(type) {
	case nil:
		return nil, nil
	case *types.AttributeValueMemberNULL:
		return nil, nil
	case *types.AttributeValueMemberBOOL:
		if t != storage.Boolean {
			return nil, bad()
		}
		return x.Value, nil
	case *types.AttributeValueMemberS:
		if t != storage.Text {
			return nil, bad()
		}
		return x.Value, nil
	case *types.AttributeValueMemberB:
		if t != storage.Blob {
			return nil, bad()
		}
		if x.Value == nil {
			return []byte{}, nil
		}
		return x.Value, nil
	case *types.AttributeValueMemberN:
		switch t {
		case storage.Float, storage.Double:
			bits := 64
			if t == storage.Float {
				bits = 32
			}
			f, err := strconv.ParseFloat(x.Value, bits)
			if err != nil {
				return nil, fmt.Errorf("column %q: number %q: %w", column, x.Value, err)
			}
			if t == storage.Float {
				return float32(f), nil
			}
			return f, nil
		case storage.Boolean, storage.Text, storage.Blob:
			return nil, bad()
		}
		n, err := strconv.ParseInt(x.Value, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("column %q: number %q: %w", column, x.Value, err)
		}
		switch t {
		case storage.Int:
			return int32(n), nil
		case storage.BigInt:
			return n, nil
		}
		return fromNumber(t, n), nil
	}
	return nil, bad()
}

// checkNumber refuses a DOUBLE that DynamoDB cannot hold: its numbers
// span 1E-130 to 9.99…E+125 in magnitude, and ScalarDB's layout stores a
// DOUBLE as a number (FLOAT always fits).
func checkNumber(m *storage.TableMetadata, column string, v any) error {
	x, ok := v.(float64)
	if !ok || x == 0 {
		return nil
	}
	if a := math.Abs(x); a < 1e-130 || a >= 1e126 {
		return fmt.Errorf("%s column %q: DOUBLE %g is outside the range of DynamoDB's numbers (1E-130 to 9.99E+125 in magnitude)", m.FullName(), column, x)
	}
	return nil
}
