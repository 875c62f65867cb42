// Package wire converts between storage values and the transaction
// service's protobuf messages, in both directions, for server and client.
package wire

import (
	"fmt"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
	pb "github.com/stillpoint/stillpoint/proto/stillpoint/v1"
)

const day = 24 * time.Hour

// Value encodes a canonical value. A time.Time is sent as TIMESTAMPTZ
// milliseconds; the receiver normalizes it to the column's type.
func Value(v any) (*pb.Value, error) {
	switch x := v.(type) {
	case nil:
		return &pb.Value{}, nil
	case bool:
		return &pb.Value{Kind: &pb.Value_Boolean{Boolean: x}}, nil
	case int32:
		return &pb.Value{Kind: &pb.Value_Int{Int: x}}, nil
	case int:
		return &pb.Value{Kind: &pb.Value_Bigint{Bigint: int64(x)}}, nil
	case int64:
		return &pb.Value{Kind: &pb.Value_Bigint{Bigint: x}}, nil
	case float32:
		return &pb.Value{Kind: &pb.Value_Float{Float: x}}, nil
	case float64:
		return &pb.Value{Kind: &pb.Value_Double{Double: x}}, nil
	case string:
		return &pb.Value{Kind: &pb.Value_Text{Text: x}}, nil
	case []byte:
		return &pb.Value{Kind: &pb.Value_Blob{Blob: x}}, nil
	case time.Duration:
		return &pb.Value{Kind: &pb.Value_TimeMicros{TimeMicros: x.Microseconds()}}, nil
	case time.Time:
		return &pb.Value{Kind: &pb.Value_TimestamptzMillis{TimestamptzMillis: x.UnixMilli()}}, nil
	}
	return nil, fmt.Errorf("cannot send a %T value", v)
}

// TypedValue encodes a canonical value of a known column type, keeping
// DATE and TIMESTAMP apart from TIMESTAMPTZ.
func TypedValue(t storage.DataType, v any) (*pb.Value, error) {
	tm, ok := v.(time.Time)
	switch {
	case ok && t == storage.Date:
		return &pb.Value{Kind: &pb.Value_DateDays{DateDays: tm.Unix() / int64(day/time.Second)}}, nil
	case ok && t == storage.Timestamp:
		return &pb.Value{Kind: &pb.Value_TimestampMillis{TimestampMillis: tm.UnixMilli()}}, nil
	}
	return Value(v)
}

// Go decodes a value into a Go value that storage.Normalize accepts.
func Go(v *pb.Value) any {
	switch x := v.GetKind().(type) {
	case *pb.Value_Boolean:
		return x.Boolean
	case *pb.Value_Int:
		return x.Int
	case *pb.Value_Bigint:
		return x.Bigint
	case *pb.Value_Float:
		return x.Float
	case *pb.Value_Double:
		return x.Double
	case *pb.Value_Text:
		return x.Text
	case *pb.Value_Blob:
		return x.Blob
	case *pb.Value_DateDays:
		return time.Unix(x.DateDays*int64(day/time.Second), 0).UTC()
	case *pb.Value_TimeMicros:
		return time.Duration(x.TimeMicros) * time.Microsecond
	case *pb.Value_TimestampMillis:
		return time.UnixMilli(x.TimestampMillis).UTC()
	case *pb.Value_TimestamptzMillis:
		return time.UnixMilli(x.TimestamptzMillis).UTC()
	}
	return nil
}

// Values encodes a record or key.
func Values(m map[string]any) (map[string]*pb.Value, error) {
	out := make(map[string]*pb.Value, len(m))
	for k, v := range m {
		pv, err := Value(v)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", k, err)
		}
		out[k] = pv
	}
	return out, nil
}

// Record encodes a record read from a table, with its column types.
func Record(t *storage.TableMetadata, r storage.Record) (*pb.Record, error) {
	out := &pb.Record{Columns: make(map[string]*pb.Value, len(r))}
	for k, v := range r {
		ct, err := t.ColumnType(k)
		if err != nil {
			return nil, err
		}
		if out.Columns[k], err = TypedValue(ct, v); err != nil {
			return nil, fmt.Errorf("column %q: %w", k, err)
		}
	}
	return out, nil
}

// Map decodes values into a map of Go values.
func Map(m map[string]*pb.Value) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = Go(v)
	}
	return out
}
