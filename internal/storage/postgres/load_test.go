package postgres_test

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/postgres"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

// keyedTable has a partition key, a descending clustering key (so the
// clustering-order unique index too) and a secondary index.
func keyedTable(ns string) *storage.TableMetadata {
	return &storage.TableMetadata{Namespace: ns, Table: "t", PartitionKey: []string{"p"}, ClusteringKey: []storage.ClusteringKey{{Name: "c", Order: storage.Desc}},
		Indexes: []string{"v"},
		Columns: []storage.Column{{Name: "p", Type: storage.Int}, {Name: "c", Type: storage.Text}, {Name: "v", Type: storage.BigInt}}}
}

// captured is keyedTable's definition as a user's catalog could have it:
// key options, a deferrable unique constraint, a check, a partial and an
// expression index.
func captured() *storage.TableDefinition {
	return &storage.TableDefinition{Engine: "postgres",
		Body: `("p" integer NOT NULL, "c" character varying(10485760) NOT NULL, "v" bigint, CONSTRAINT "t_pkey" PRIMARY KEY ("p", "c") INCLUDE ("v"),` +
			` CONSTRAINT "v_unique" UNIQUE ("v") DEFERRABLE INITIALLY DEFERRED, CONSTRAINT "v_positive" CHECK (("v" > 0)))`,
		Indexes: []storage.IndexDefinition{
			{Name: "c_lower", Def: `USING btree (lower(("c")::text) DESC NULLS LAST) WITH (fillfactor='80')`},
			{Name: "v_partial", Unique: true, Def: `USING btree ("v") WHERE ("v" > 10)`},
		}}
}

// catalogOf is everything the catalog says of a table, its schema's name
// replaced by NS: columns, constraints and indexes with their definitions
// and flags, the table's options.
func catalogOf(t *testing.T, db *sql.DB, ns string) []string {
	t.Helper()
	queries := []string{
		`SELECT column_name, ordinal_position, data_type, character_maximum_length, collation_name, is_nullable, column_default FROM information_schema.columns WHERE table_schema = $1 AND table_name = 't'`,
		`SELECT a.attname, a.attnum, a.attnotnull FROM pg_attribute a WHERE a.attrelid = format('%I.t', $1::text)::regclass AND a.attnum > 0`,
		`SELECT conname, contype, condeferrable, condeferred, convalidated, pg_get_constraintdef(k.oid), obj_description(k.oid, 'pg_constraint') FROM pg_constraint k WHERE k.conrelid = format('%I.t', $1::text)::regclass`,
		`SELECT ic.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary, i.indimmediate, i.indisclustered, i.indisvalid, i.indisreplident, i.indnullsnotdistinct, ic.reloptions, ic.reltablespace, obj_description(i.indexrelid, 'pg_class')
		 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = format('%I.t', $1::text)::regclass`,
		`SELECT relkind, relpersistence, relreplident, reloptions, relhasindex FROM pg_class WHERE oid = format('%I.t', $1::text)::regclass`,
	}
	var out []string
	for _, q := range queries {
		rows, err := db.Query(q, ns)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			dest := make([]any, len(vals))
			for i := range vals {
				dest[i] = &vals[i]
			}
			if err := rows.Scan(dest...); err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.ReplaceAll(fmt.Sprint(vals), ns, "NS"))
		}
		rows.Close()
	}
	slices.Sort(out)
	return out
}

// indexOIDs are a table's indexes' object ids: new ones once they were
// built again.
func indexOIDs(t *testing.T, db *sql.DB, ns string) string {
	var s string
	if err := db.QueryRow(`SELECT coalesce(string_agg(indexrelid::text, ',' ORDER BY indexrelid), '') FROM pg_index WHERE indrelid = format('%I.t', $1::text)::regclass`, ns).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func openStore(t *testing.T) *sqlstore.Store {
	st, err := postgres.Open(context.Background(), "pg", testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func errorSays(t *testing.T, err error, says ...string) {
	t.Helper()
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// rowCount is how many rows table t of a schema holds.
func rowCount(t *testing.T, db *sql.DB, ns string) int {
	var n int
	if err := db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM %q.t`, ns)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func rowsOf(rows [][]any) func() ([]any, error) {
	i := 0
	return func() ([]any, error) {
		if i == len(rows) {
			return nil, io.EOF
		}
		i++
		return rows[i-1], nil
	}
}

// TestLoadBuildsKeysAfterTheHeap: a load drops a table's keys and indexes
// and builds them after the rows are in, and the table's catalog is then
// exactly that of the same table created and left empty: for Stillpoint's
// DDL and for a captured definition with key options, constraints and
// indexes of every kind. A table whose keys could not be made again
// exactly (a comment on its key, options on its key's index) keeps them through the load. A duplicate
// key fails the load, naming the table and the key, and leaves the table
// empty as created.
func TestLoadBuildsKeysAfterTheHeap(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	db := st.DB()
	created := func(m *storage.TableMetadata) error { return st.CreateTable(ctx, m) }
	rows := [][]any{{int32(1), "b", int64(20)}, {int32(1), "a", int64(30)}, {int32(2), "a", int64(5)}}
	for _, tc := range []struct {
		name   string
		create func(m *storage.TableMetadata) error
		extra  string // SQL run on each table after its creation (NS: its schema)
		rows   [][]any
		// rebuilt: the keys are new objects after the load; err: what the
		// load's error says (the table then stays empty).
		rebuilt bool
		err     []string
	}{
		{name: "Stillpoint's DDL", create: created, rows: rows, rebuilt: true},
		{name: "captured DDL", create: func(m *storage.TableMetadata) error { return st.CreateTableFrom(ctx, m, captured()) }, rows: rows, rebuilt: true},
		{name: "a comment on the key", create: created, extra: `COMMENT ON INDEX "NS"."t_pkey" IS 'kept'`, rows: rows},
		// pg_get_constraintdef leaves out the key's index options.
		{name: "options on the key", create: created, extra: `ALTER INDEX "NS"."t_pkey" SET (fillfactor = 70)`, rows: rows},
		{name: "duplicate key", create: created, rows: append(rows, []any{int32(2), "a", int64(7)}),
			err: []string{".t", "build t_pkey", "more than one row with one key", "(p, c)=(2, a)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			empty, loaded := keyedTable(testenv.UniqueName("empty")), keyedTable(testenv.UniqueName("loaded"))
			for _, m := range []*storage.TableMetadata{empty, loaded} {
				if err := tc.create(m); err != nil {
					t.Fatal(err)
				}
				if tc.extra != "" {
					if _, err := db.Exec(strings.ReplaceAll(tc.extra, "NS", m.Namespace)); err != nil {
						t.Fatal(err)
					}
				}
			}
			before := indexOIDs(t, db, loaded.Namespace)
			n, err := st.LoadRows(ctx, loaded, rowsOf(tc.rows))
			switch {
			case tc.err != nil:
				if err == nil {
					t.Fatalf("loaded %d rows, want an error", n)
				}
				errorSays(t, err, tc.err...)
			case err != nil || n != int64(len(tc.rows)):
				t.Fatalf("load: %d rows, %v", n, err)
			}
			if got, want := catalogOf(t, db, loaded.Namespace), catalogOf(t, db, empty.Namespace); !slices.Equal(got, want) {
				t.Errorf("catalog after the load:\n%s\nas created:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if rebuilt := indexOIDs(t, db, loaded.Namespace) != before; rebuilt != tc.rebuilt {
				t.Errorf("keys built again: %v, want %v", rebuilt, tc.rebuilt)
			}
			if count, want := rowCount(t, db, loaded.Namespace), map[bool]int{true: 0, false: len(tc.rows)}[tc.err != nil]; count != want {
				t.Errorf("the table holds %d rows, want %d", count, want)
			}
		})
	}
}

// TestLoadColumnTypesOfCapturedDDL: a captured definition can give a
// storage type another column type than Stillpoint's DDL (REAL for FLOAT,
// VARCHAR, BIGINT for INT, or one the encoder has no case for: SMALLINT, NUMERIC, CHAR,
// a domain); every value loads as it would through an INSERT, and a value
// the column cannot hold fails naming the column.
func TestLoadColumnTypesOfCapturedDDL(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	if _, err := st.DB().Exec(`CREATE DOMAIN positive AS bigint CHECK (VALUE > 0)`); err != nil {
		t.Fatal(err)
	}
	ns := testenv.UniqueName("types")
	m := &storage.TableMetadata{Namespace: ns, Table: "t", PartitionKey: []string{"id"}, Columns: []storage.Column{
		{Name: "id", Type: storage.Int}, {Name: "f", Type: storage.Float}, {Name: "k", Type: storage.Text}, {Name: "s", Type: storage.Int},
		{Name: "n", Type: storage.Double}, {Name: "ch", Type: storage.Text}, {Name: "d", Type: storage.BigInt}, {Name: "tm", Type: storage.Time}, {Name: "i8", Type: storage.Int}}}
	def := &storage.TableDefinition{Engine: "postgres", Body: `("id" integer NOT NULL, "f" real, "k" varchar(20), "s" smallint, "n" numeric(12,2), "ch" char(3), "d" positive, "tm" time(3), "i8" bigint, CONSTRAINT "t_pkey" PRIMARY KEY ("id"))`}
	if err := st.CreateTableFrom(ctx, m, def); err != nil {
		t.Fatal(err)
	}
	want := [][]any{
		{int32(1), float32(1.5), "key", int32(-32768), 12.5, "abc", int64(1), time.Second + 250*time.Millisecond, int32(-7)},
		{int32(2), float32(3.4028235e38), "", int32(32767), -0.25, "a  ", int64(1 << 53), time.Duration(0), int32(2147483647)},
		{int32(3), nil, nil, nil, nil, nil, nil, nil, nil},
	}
	if n, err := st.LoadRows(ctx, m, rowsOf(want)); err != nil || n != int64(len(want)) {
		t.Fatalf("load: %d rows, %v", n, err)
	}
	var got [][]any
	if err := st.ReadRows(ctx, st.DB(), m, func(row []any) error {
		got = append(got, slices.Clone(row))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %v, loaded %v", got, want)
	}

	for _, tc := range []struct {
		name string
		row  []any
		says []string
	}{
		{"out of SMALLINT's range", []any{int32(9), nil, nil, int32(40000), nil, nil, nil, nil, nil}, []string{"column s", "int2"}},
		{"against the domain's check", []any{int32(9), nil, nil, nil, nil, nil, int64(-1), nil, nil}, []string{"positive"}},
		{"a value of the wrong Go type", []any{int32(9), 1.5, nil, nil, nil, nil, nil, nil, nil}, []string{"column f", "float64", "float32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := *m
			other.Namespace = testenv.UniqueName("types")
			if err := st.CreateTableFrom(ctx, &other, def); err != nil {
				t.Fatal(err)
			}
			_, err := st.LoadRows(ctx, &other, rowsOf([][]any{tc.row}))
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			errorSays(t, err, tc.says...)
		})
	}
}

// TestLoadStreamFails: a row stream that fails part way (a damaged chunk)
// fails the load with the stream's own error, not COPY's report of it, and
// leaves the table empty with its keys, whether the failure comes before
// the first row is sent or after many.
func TestLoadStreamFails(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	damaged := errors.New("chunk 1234 does not match its name")
	for _, after := range []int{0, 50_000} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			m := keyedTable(testenv.UniqueName("fails"))
			if err := st.CreateTable(ctx, m); err != nil {
				t.Fatal(err)
			}
			before := indexOIDs(t, st.DB(), m.Namespace)
			i := 0
			_, err := st.LoadRows(ctx, m, func() ([]any, error) {
				if i == after {
					return nil, damaged
				}
				i++
				return []any{int32(i), "c", int64(i)}, nil
			})
			if !errors.Is(err, damaged) {
				t.Fatalf("load = %v, want the stream's error", err)
			}
			if count := rowCount(t, st.DB(), m.Namespace); count != 0 {
				t.Fatalf("the table holds %d rows, want none", count)
			}
			if indexOIDs(t, st.DB(), m.Namespace) != before {
				t.Error("the failed load changed the table's keys")
			}
		})
	}
}

// TestKeysBuildWithMoreMemory: the key builds after a load run with
// maintenance_work_mem raised to 256MB for the load's transaction, or with
// the server's setting where that is larger; the session keeps its own.
// An index on a function that fails unless the setting is the one wanted
// sees the setting of its build.
func TestKeysBuildWithMoreMemory(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ server, want string }{{"", "256MB"}, {"1GB", "1GB"}} {
		t.Run(tc.want, func(t *testing.T) {
			dsn := testenv.PostgresDSN(t)
			if tc.server != "" {
				db, err := sql.Open("pgx", dsn)
				if err != nil {
					t.Fatal(err)
				}
				_, err = db.Exec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET maintenance_work_mem = %L', current_database(), '` + tc.server + `'); END $$`)
				db.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			st, err := postgres.Open(ctx, "pg", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.DB().Exec(`CREATE FUNCTION built_with(v bigint) RETURNS bigint IMMUTABLE LANGUAGE plpgsql AS $$
				BEGIN
					IF current_setting('maintenance_work_mem') <> '` + tc.want + `' THEN
						RAISE EXCEPTION 'built with maintenance_work_mem %', current_setting('maintenance_work_mem');
					END IF;
					RETURN v;
				END $$`); err != nil {
				t.Fatal(err)
			}
			m := keyedTable(testenv.UniqueName("memory"))
			def := &storage.TableDefinition{Engine: "postgres",
				Body:    `("p" integer NOT NULL, "c" text NOT NULL, "v" bigint, CONSTRAINT "t_pkey" PRIMARY KEY ("p", "c"))`,
				Indexes: []storage.IndexDefinition{{Name: "v_memory", Def: `USING btree (public.built_with("v"))`}}}
			if err := st.CreateTableFrom(ctx, m, def); err != nil {
				t.Fatal(err)
			}
			if _, err := st.LoadRows(ctx, m, rowsOf([][]any{{int32(1), "a", int64(1)}})); err != nil {
				t.Fatalf("load: %v", err)
			}
			var session string
			if err := st.DB().QueryRow("SHOW maintenance_work_mem").Scan(&session); err != nil || session != cmp.Or(tc.server, "64MB") {
				t.Errorf("the sessions' maintenance_work_mem is %q (%v) after the load, want the server's", session, err)
			}
		})
	}
}
