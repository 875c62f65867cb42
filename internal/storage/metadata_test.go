package storage

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestKeyString(t *testing.T) {
	m := &TableMetadata{PartitionKey: []string{"p", "b"}, ClusteringKey: []ClusteringKey{{Name: "c"}}}
	for _, tc := range []struct {
		key  Key
		want string
	}{
		{Key{"p": int32(7), "b": []byte{0xca, 0xfe}, "c": `x "y"`}, `p=7, b=0xcafe, c="x \"y\""`},
		{Key{"c": 1.5, "p": int64(-1), "b": []byte{}}, `p=-1, b=0x, c=1.5`},
	} {
		if got := m.KeyString(tc.key); got != tc.want {
			t.Errorf("KeyString(%v) = %s, want %s", tc.key, got, tc.want)
		}
	}
}

// TestTableMetadataJSON: snake_case keys out, and manifests written with
// the old Go field names still read.
func TestTableMetadataJSON(t *testing.T) {
	want := &TableMetadata{Namespace: "bank_0", Table: "accounts", Columns: []Column{{Name: "account_id", Type: Int}},
		PartitionKey: []string{"account_id"}, ClusteringKey: []ClusteringKey{{Name: "at", Order: Desc}}, Indexes: []string{"owner"}}
	out, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	const snake = `{"namespace":"bank_0","table":"accounts","columns":[{"name":"account_id","type":"INT"}],"partition_key":["account_id"],"clustering_key":[{"name":"at","order":"DESC"}],"indexes":["owner"]}`
	if string(out) != snake {
		t.Errorf("JSON %s, want %s", out, snake)
	}
	for _, in := range []string{
		string(out),
		`{"Namespace":"bank_0","Table":"accounts","Columns":[{"Name":"account_id","Type":"INT"}],"PartitionKey":["account_id"],"ClusteringKey":[{"Name":"at","Order":"DESC"}],"Indexes":["owner"]}`,
	} {
		var got TableMetadata
		if err := json.Unmarshal([]byte(in), &got); err != nil || !reflect.DeepEqual(&got, want) {
			t.Errorf("decode %s = %+v, %v; want %+v", in, got, err, want)
		}
	}
}
