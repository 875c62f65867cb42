package storage

import "testing"

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
