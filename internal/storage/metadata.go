package storage

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Order is a clustering order.
type Order int

const (
	Asc Order = iota
	Desc
)

func (o Order) String() string {
	if o == Desc {
		return "DESC"
	}
	return "ASC"
}

// Column is one column of a table, as scalardb.metadata records it.
type Column struct {
	Name string   `json:"name"`
	Type DataType `json:"type"`
}

// ClusteringKey names a clustering column and its order.
type ClusteringKey struct {
	Name  string `json:"name"`
	Order Order  `json:"order"`
}

// TableMetadata describes a table: its columns in ordinal order, keys and
// secondary indexes. It is what scalardb.metadata holds, row by row.
type TableMetadata struct {
	Namespace     string          `json:"namespace"`
	Table         string          `json:"table"`
	Columns       []Column        `json:"columns"`
	PartitionKey  []string        `json:"partition_key"`
	ClusteringKey []ClusteringKey `json:"clustering_key"`
	Indexes       []string        `json:"indexes"`
}

// UnmarshalJSON also reads the keys manifests written before the fields
// had snake_case names used (PartitionKey, ClusteringKey; the others
// match without regard to case).
func (m *TableMetadata) UnmarshalJSON(b []byte) error {
	type plain TableMetadata
	var legacy struct {
		plain
		OldPartitionKey  []string        `json:"PartitionKey"`
		OldClusteringKey []ClusteringKey `json:"ClusteringKey"`
	}
	if err := json.Unmarshal(b, &legacy); err != nil {
		return err
	}
	*m = TableMetadata(legacy.plain)
	if m.PartitionKey == nil {
		m.PartitionKey = legacy.OldPartitionKey
	}
	if m.ClusteringKey == nil {
		m.ClusteringKey = legacy.OldClusteringKey
	}
	return nil
}

// FullName is "namespace.table", the key scalardb.metadata uses.
func (m *TableMetadata) FullName() string { return m.Namespace + "." + m.Table }

// Column returns a column by name.
func (m *TableMetadata) Column(name string) (Column, bool) {
	for _, c := range m.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// ColumnType returns the type of a column, or an error naming table and column.
func (m *TableMetadata) ColumnType(name string) (DataType, error) {
	c, ok := m.Column(name)
	if !ok {
		return 0, fmt.Errorf("table %s has no column %q", m.FullName(), name)
	}
	return c.Type, nil
}

// KeyColumns are the partition key followed by the clustering key.
func (m *TableMetadata) KeyColumns() []string {
	keys := slices.Clone(m.PartitionKey)
	for _, c := range m.ClusteringKey {
		keys = append(keys, c.Name)
	}
	return keys
}

// IsKey reports whether a column is part of the primary key.
// KeyString shows a key as people read it: its columns in key order,
// column=value, strings quoted and bytes in hex (account_id=7, a="x").
func (m *TableMetadata) KeyString(k Key) string {
	parts := make([]string, 0, len(k))
	for _, c := range m.KeyColumns() {
		switch v := k[c].(type) {
		case string:
			parts = append(parts, fmt.Sprintf("%s=%q", c, v))
		case []byte:
			parts = append(parts, fmt.Sprintf("%s=0x%x", c, v))
		default:
			parts = append(parts, fmt.Sprintf("%s=%v", c, v))
		}
	}
	return strings.Join(parts, ", ")
}

func (m *TableMetadata) IsKey(name string) bool { return slices.Contains(m.KeyColumns(), name) }

// IsPartitionKey reports whether a column is part of the partition key.
func (m *TableMetadata) IsPartitionKey(name string) bool {
	return slices.Contains(m.PartitionKey, name)
}

// ClusteringOrder returns the order of a clustering column.
func (m *TableMetadata) ClusteringOrder(name string) (Order, bool) {
	for _, c := range m.ClusteringKey {
		if c.Name == name {
			return c.Order, true
		}
	}
	return Asc, false
}

// NonKeyColumns lists the columns outside the primary key, in ordinal order.
func (m *TableMetadata) NonKeyColumns() []Column {
	var out []Column
	for _, c := range m.Columns {
		if !m.IsKey(c.Name) {
			out = append(out, c)
		}
	}
	return out
}

// Validate checks the metadata is self-consistent, naming what is wrong.
func (m *TableMetadata) Validate() error {
	name := m.FullName()
	if err := checkIdentifier("namespace", m.Namespace); err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	if err := checkIdentifier("table name", m.Table); err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	if len(m.Columns) == 0 {
		return fmt.Errorf("table %s: no columns", name)
	}
	seen := map[string]bool{}
	for _, c := range m.Columns {
		if err := checkIdentifier("column name", c.Name); err != nil {
			return fmt.Errorf("table %s: %w", name, err)
		}
		if seen[c.Name] {
			return fmt.Errorf("table %s: column %q defined twice", name, c.Name)
		}
		if _, ok := typeNames[c.Type]; !ok {
			return fmt.Errorf("table %s: column %q has unknown type %v", name, c.Name, c.Type)
		}
		seen[c.Name] = true
	}
	if len(m.PartitionKey) == 0 {
		return fmt.Errorf("table %s: missing partition key (\"partition-key\" must name at least one column)", name)
	}
	keys := map[string]bool{}
	for _, k := range m.KeyColumns() {
		if !seen[k] {
			return fmt.Errorf("table %s: key column %q is not defined in \"columns\"", name, k)
		}
		if keys[k] {
			return fmt.Errorf("table %s: key column %q named twice", name, k)
		}
		keys[k] = true
	}
	for _, ix := range m.Indexes {
		if !seen[ix] {
			return fmt.Errorf("table %s: secondary index column %q is not defined in \"columns\"", name, ix)
		}
	}
	return nil
}

// MaxIdentifier is the longest name, in characters, any engine is asked
// to hold (MySQL's 64); engines declare their own limits (Limits).
const MaxIdentifier = 64

func checkIdentifier(what, s string) error {
	if n := utf8.RuneCountInString(s); n > MaxIdentifier {
		return fmt.Errorf("%s %q is %d characters, more than the %d any engine holds: shorten it", what, s, n, MaxIdentifier)
	}
	if !validIdentifier(s) {
		return fmt.Errorf("%s %q: names may hold letters of any script, digits, spaces and punctuation such as - and _, but not quotes (\" ' `), dots, slashes, control characters or spaces at either end", what, s)
	}
	return nil
}

// validIdentifier accepts what ScalarDB accepts (it quotes every name)
// except what breaks it or us: quotes, which ScalarDB does not escape;
// dots, which separate namespace and table; slashes, which would make an
// embedded namespace's file name a path; and names an engine trims.
func validIdentifier(s string) bool {
	if s == "" || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || strings.ContainsRune("\"'`./\\", r) {
			return false
		}
	}
	return true
}

// SplitFullName splits "namespace.table".
func SplitFullName(full string) (namespace, table string, err error) {
	ns, tbl, ok := strings.Cut(full, ".")
	if !ok || ns == "" || tbl == "" || strings.Contains(tbl, ".") {
		return "", "", fmt.Errorf("%q is not a table name of the form namespace.table", full)
	}
	return ns, tbl, nil
}

// MarshalText writes ASC or DESC.
func (o Order) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads ASC or DESC.
func (o *Order) UnmarshalText(b []byte) error {
	switch string(b) {
	case "ASC":
		*o = Asc
	case "DESC":
		*o = Desc
	default:
		return fmt.Errorf("clustering order %q: want ASC or DESC", b)
	}
	return nil
}
