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
	// Version is the ScalarDB release whose layout the table gets.
	Version Version
}

// Layout is the table as stored: with transaction columns when transactional.
func (t Table) Layout() *storage.TableMetadata {
	if t.Transactional {
		return TransactionalAs(t.User, t.Version)
	}
	return t.User
}

// Version is the ScalarDB 3.x release whose rules apply (scalardb_version).
type Version = storage.ScalarDBVersion

// Latest is the newest ScalarDB release whose rules were checked; it is
// the default.
var Latest = storage.LatestScalarDB

// ParseVersion reads "3.N" (the newest patch of 3.N) or "3.N.P"; "" is
// Latest.
func ParseVersion(s string) (Version, error) { return storage.ParseScalarDBVersion(s) }

// Options of ScalarDB's schema loader that concern other storages
// (Cassandra, Cosmos DB, DynamoDB); accepted so a file loads unchanged.
var foreignOptions = []string{"compaction-strategy", "ru", "replication-factor", "network-strategy"}

// ReadFile parses a ScalarDB schema-loader JSON file by the rules of
// ScalarDB version v's loader.
func ReadFile(path string, v Version) ([]Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read schema file: %w", err)
	}
	tables, err := Parse(data, v)
	if err != nil {
		return nil, fmt.Errorf("schema file %s: %w", path, err)
	}
	return tables, nil
}

// Parse reads schema-loader JSON by the rules of ScalarDB version v's
// loader. Every table is checked and every problem reported, naming the
// table and column, before anything is created.
func Parse(data []byte, v Version) ([]Table, error) {
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
		t, err := parseTable(full, raw, v)
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

func parseTable(full string, raw json.RawMessage, v Version) (Table, error) {
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
	cols, err := orderedColumns(full, def.Columns, v)
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
	transactional := v.TransactionDefault()
	if def.Transaction != nil {
		transactional = *def.Transaction
	}
	if transactional {
		// Checked against the full layout, so a user column is refused
		// exactly when reading the table back would take it for
		// transaction metadata (ScalarDB would hide it from the user).
		layout := TransactionalAs(m, v)
		for _, c := range m.Columns {
			if IsReserved(layout, c.Name) {
				return Table{}, fmt.Errorf("table %s: column %q is reserved by the transaction layout: the tx_* and before_tx_* columns, and before_<x> where the table has a column <x> (its before image); rename it", full, c.Name)
			}
		}
	}
	seenIndex := map[string]bool{}
	for _, ix := range m.Indexes {
		if seenIndex[ix] {
			return Table{}, fmt.Errorf("table %s: secondary index on %q listed twice", full, ix)
		}
		seenIndex[ix] = true
	}
	if err := m.Validate(); err != nil {
		return Table{}, err
	}
	return Table{User: m, Transactional: transactional, Version: v}, nil
}

// orderedColumns keeps the file's column order, which becomes the ordinal
// position in scalardb.metadata.
func orderedColumns(full string, raw json.RawMessage, v Version) ([]storage.Column, error) {
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
		t, err := columnType(typ, v)
		if err != nil {
			return nil, fmt.Errorf("table %s: column %q: %w", full, name, err)
		}
		cols = append(cols, storage.Column{Name: name.(string), Type: t})
	}
	return cols, nil
}

// columnType reads a column's type as version v's loader does.
func columnType(typ string, v Version) (storage.DataType, error) {
	if f := strings.Fields(typ); len(f) == 2 && strings.EqualFold(f[1], "ENCRYPTED") {
		return 0, fmt.Errorf("type %q asks for an encrypted column (Transparent Data Encryption), which only ScalarDB Enterprise provides: ScalarDB's open-source loader refuses it too, and Stillpoint does not encrypt columns; declare it as %q only if the values may be stored in plain text", typ, f[0])
	}
	t, err := storage.ParseDataType(typ)
	if err != nil {
		return 0, fmt.Errorf("%w; ScalarDB's loader refuses it too", err)
	}
	if slices.Contains(timeTypes, t) && v.Minor < timeTypesSince {
		return 0, fmt.Errorf("type %s came with ScalarDB 3.%d, and the loader of ScalarDB %s (scalardb_version) refuses it: use a ScalarDB %s type, or set scalardb_version to 3.%d or later", t, timeTypesSince, v, v, timeTypesSince)
	}
	return t, nil
}

// The date and time types, which ScalarDB's loader knows from 3.15.
var timeTypes = []storage.DataType{storage.Date, storage.Time, storage.Timestamp, storage.TimestampTZ}

const timeTypesSince = 15

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
