package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/stillpoint/stillpoint/internal/storage"
)

// Table is one table of a schema file.
type Table struct {
	// User is the table as the file declares it, without transaction columns.
	User          *storage.TableMetadata
	Transactional bool
}

// Layout is the table as stored: with transaction columns when transactional.
func (t Table) Layout() *storage.TableMetadata {
	if t.Transactional {
		return Transactional(t.User)
	}
	return t.User
}

// Options of ScalarDB's schema loader that concern other storages
// (Cassandra, Cosmos DB, DynamoDB); accepted so a file loads unchanged.
var foreignOptions = []string{"compaction-strategy", "ru", "replication-factor", "network-strategy"}

// ReadFile parses a ScalarDB schema-loader JSON file.
func ReadFile(path string) ([]Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read schema file: %w", err)
	}
	tables, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("schema file %s: %w", path, err)
	}
	return tables, nil
}

// Parse reads schema-loader JSON. Every table is checked and every problem
// reported, naming the table and column, before anything is created.
func Parse(data []byte) ([]Table, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := expectDelim(dec, '{', "the file must be a JSON object mapping \"namespace.table\" to a table definition"); err != nil {
		return nil, err
	}
	var tables []Table
	var errs []error
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(data, dec, err)
		}
		full := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(data, dec, err)
		}
		if seen[full] {
			errs = append(errs, fmt.Errorf("table %s: defined twice", full))
			continue
		}
		seen[full] = true
		t, err := parseTable(full, raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tables = append(tables, t)
	}
	if _, err := dec.Token(); err != nil {
		return nil, syntaxError(data, dec, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(tables) == 0 {
		return nil, errors.New("no tables defined")
	}
	return tables, nil
}

func parseTable(full string, raw json.RawMessage) (Table, error) {
	ns, tbl, err := storage.SplitFullName(full)
	if err != nil {
		return Table{}, fmt.Errorf("table %s: %w", full, err)
	}
	if ns == CoordinatorNamespace || ns == "scalardb" {
		return Table{}, fmt.Errorf("table %s: namespace %q is reserved for Stillpoint's own tables", full, ns)
	}
	var def struct {
		Transaction    *bool           `json:"transaction"`
		PartitionKey   []string        `json:"partition-key"`
		ClusteringKey  []string        `json:"clustering-key"`
		Columns        json.RawMessage `json:"columns"`
		SecondaryIndex []string        `json:"secondary-index"`
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return Table{}, fmt.Errorf("table %s: the definition must be a JSON object: %w", full, err)
	}
	for k := range keys {
		switch {
		case slices.Contains([]string{"transaction", "partition-key", "clustering-key", "columns", "secondary-index"}, k):
		case slices.Contains(foreignOptions, k):
		default:
			slog.Warn("schema: ignoring unknown option", "table", full, "option", k)
		}
	}
	if err := json.Unmarshal(raw, &def); err != nil {
		return Table{}, fmt.Errorf("table %s: %w", full, err)
	}
	m := &storage.TableMetadata{Namespace: ns, Table: tbl, PartitionKey: def.PartitionKey, Indexes: def.SecondaryIndex}
	if len(def.Columns) == 0 {
		return Table{}, fmt.Errorf("table %s: missing \"columns\"", full)
	}
	cols, err := orderedColumns(full, def.Columns)
	if err != nil {
		return Table{}, err
	}
	m.Columns = cols
	for _, ck := range def.ClusteringKey {
		f := strings.Fields(ck)
		if len(f) == 0 || len(f) > 2 {
			return Table{}, fmt.Errorf("table %s: clustering key %q must be a column name, optionally followed by ASC or DESC", full, ck)
		}
		order := storage.Asc
		if len(f) == 2 {
			switch strings.ToUpper(f[1]) {
			case "ASC":
			case "DESC":
				order = storage.Desc
			default:
				return Table{}, fmt.Errorf("table %s: clustering key %q: order must be ASC or DESC", full, ck)
			}
		}
		m.ClusteringKey = append(m.ClusteringKey, storage.ClusteringKey{Name: f[0], Order: order})
	}
	// ScalarDB's schema loader makes a table transactional unless told not to.
	transactional := def.Transaction == nil || *def.Transaction
	if transactional {
		for _, c := range m.Columns {
			if IsReserved(c.Name) {
				return Table{}, fmt.Errorf("table %s: column %q is reserved by the transaction layout (tx_* metadata columns and before_* image columns); rename it", full, c.Name)
			}
		}
	}
	if err := m.Validate(); err != nil {
		return Table{}, err
	}
	return Table{User: m, Transactional: transactional}, nil
}

// orderedColumns keeps the file's column order, which becomes the ordinal
// position in scalardb.metadata.
func orderedColumns(full string, raw json.RawMessage) ([]storage.Column, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := expectDelim(dec, '{', "\"columns\" must map column names to types"); err != nil {
		return nil, fmt.Errorf("table %s: %w", full, err)
	}
	var cols []storage.Column
	for dec.More() {
		name, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("table %s: columns: %w", full, err)
		}
		var typ string
		if err := dec.Decode(&typ); err != nil {
			return nil, fmt.Errorf("table %s: column %q: the type must be a string such as \"INT\"", full, name)
		}
		t, err := storage.ParseDataType(typ)
		if err != nil {
			return nil, fmt.Errorf("table %s: column %q: %w", full, name, err)
		}
		cols = append(cols, storage.Column{Name: name.(string), Type: t})
	}
	return cols, nil
}

func expectDelim(dec *json.Decoder, want json.Delim, msg string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s: %w", msg, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return errors.New(msg)
	}
	return nil
}

// syntaxError points at the line of a JSON syntax error.
func syntaxError(data []byte, dec *json.Decoder, err error) error {
	off := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if errors.Is(err, io.EOF) {
		return errors.New("unexpected end of file: the JSON is incomplete")
	}
	line := 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n"))
	return fmt.Errorf("invalid JSON near line %d: %w", line, err)
}
