package sqlstore_test

import (
	"context"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/mysql"
	"github.com/stillpoint/stillpoint/internal/storage/postgres"
	"github.com/stillpoint/stillpoint/internal/storage/sqlite"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
	"github.com/stillpoint/stillpoint/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// roundTripTable has a column of every type.
func roundTripTable(ns string) *storage.TableMetadata {
	m := &storage.TableMetadata{Namespace: ns, Table: "every_type", PartitionKey: []string{"id"}, Columns: []storage.Column{{Name: "id", Type: storage.Int}}}
	for _, t := range storage.AllTypes() {
		m.Columns = append(m.Columns, storage.Column{Name: "c_" + t.String(), Type: t})
	}
	return m
}

// roundTripRows are edge values of every type each engine holds (no NUL
// in TEXT: PostgreSQL refuses it), in key order, and a row of NULLs.
func roundTripRows() [][]any {
	ts := time.UnixMilli(1_700_000_000_123).UTC()
	day := time.Date(1969, 7, 20, 0, 0, 0, 0, time.UTC)
	return [][]any{
		{int32(1), true, int32(math.MinInt32), int64(-(1<<53 - 1)), float32(-1.5), 0.1, "tab\there\nnewline\\N \\ \r é 😀", []byte{0, '\t', '\n', '\\', 'N', 0xff}, day, 23*time.Hour + 59*time.Minute + 59*time.Second + 999999*time.Microsecond, ts, ts},
		{int32(2), false, int32(math.MaxInt32), int64(1<<53 - 1), float32(3.4028235e38), 1e308, "", []byte{}, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), time.Duration(0), time.UnixMilli(0).UTC(), ts},
		{int32(3), true, int32(0), int64(0), float32(1.1754944e-38), -2.2250738585072014e-308, `\N`, []byte(`\N`), day, time.Microsecond, ts, ts},
		{int32(4), nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
	}
}

// loaders load rows as Go values (LoadRows) and in typed slots
// (LoadValues, what a restore uses).
var loaders = []struct {
	name string
	load func(st *sqlstore.Store, m *storage.TableMetadata, rows [][]any) (int64, error)
}{
	{"rows", func(st *sqlstore.Store, m *storage.TableMetadata, rows [][]any) (int64, error) {
		i := 0
		return st.LoadRows(context.Background(), m, func() ([]any, error) {
			if i == len(rows) {
				return nil, io.EOF
			}
			i++
			return rows[i-1], nil
		})
	}},
	{"typed slots", func(st *sqlstore.Store, m *storage.TableMetadata, rows [][]any) (int64, error) {
		i, v := 0, sqlstore.NewValues(m.Columns)
		return st.LoadValues(context.Background(), m, func() (*sqlstore.Values, error) {
			if i == len(rows) {
				return nil, io.EOF
			}
			for c, x := range rows[i] {
				v.Null[c] = x == nil
				if x != nil {
					if err := v.Set(c, x); err != nil {
						return nil, err
					}
				}
			}
			i++
			return v, nil
		})
	}},
}

// TestLoadRowsRoundTrip loads rows of every type through each engine's
// bulk path (COPY on PostgreSQL; LOAD DATA LOCAL INFILE on MariaDB, or
// INSERTs where the server has local_infile OFF; INSERTs on SQLite), as
// Go values and in typed slots, and reads them back: every value is as
// loaded.
func TestLoadRowsRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		open func(t *testing.T) *sqlstore.Store
		// loads is how many LOAD DATA statements the load must run on
		// MariaDB (-1: not MariaDB).
		loads int
	}{
		{"sqlite", func(t *testing.T) *sqlstore.Store {
			return must(t)(sqlite.Open(ctx, "lite", filepath.Join(t.TempDir(), "db")))
		}, -1},
		{"postgres", func(t *testing.T) *sqlstore.Store {
			return must(t)(postgres.Open(ctx, "pg", testenv.PostgresDSN(t)))
		}, -1},
		{"mariadb, local_infile ON", func(t *testing.T) *sqlstore.Store {
			return must(t)(mysql.Open(ctx, "maria", testenv.MySQLDSN(t)))
		}, 1},
		{"mariadb, local_infile OFF", func(t *testing.T) *sqlstore.Store {
			own, _ := testenv.PITRMariaDB(t) // our own server: never reconfigure the shared one
			st := must(t)(mysql.Open(ctx, "maria", own.DSN))
			if _, err := st.DB().ExecContext(ctx, "SET GLOBAL local_infile = 0"); err != nil {
				t.Fatal(err)
			}
			return st
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.open(t)
			defer st.Close()
			for _, via := range loaders {
				t.Run(via.name, func(t *testing.T) {
					ns := testenv.UniqueName("load")
					m := roundTripTable(ns)
					if err := st.CreateNamespace(ctx, ns); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() {
						st.DropTable(ctx, ns, m.Table)
						st.DropNamespace(ctx, ns)
					})
					if err := st.CreateTable(ctx, m); err != nil {
						t.Fatal(err)
					}
					before := loadStatements(t, st, tc.loads)
					want := roundTripRows()
					n, err := via.load(st, m, want)
					if err != nil || n != int64(len(want)) {
						t.Fatalf("load: %d rows, %v; want %d", n, err, len(want))
					}
					if tc.loads >= 0 {
						if got := loadStatements(t, st, tc.loads) - before; got < tc.loads || tc.loads == 0 && got != 0 {
							t.Fatalf("the load ran %d LOAD DATA statements, want %d", got, tc.loads)
						}
					}
					var got [][]any
					if err := st.ReadRows(ctx, st.DB(), m, func(row []any) error {
						got = append(got, append([]any{}, row...))
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					if len(got) != len(want) {
						t.Fatalf("read back %d rows, want %d", len(got), len(want))
					}
					for r := range want {
						for c, col := range m.Columns {
							if !reflect.DeepEqual(got[r][c], want[r][c]) {
								t.Errorf("row %d column %s: read back %#v, loaded %#v", r, col.Name, got[r][c], want[r][c])
							}
						}
					}
				})
			}
		})
	}
}

// loadStatements is the server's count of LOAD DATA statements (on the
// shared server it counts other tests' too, so only its growth says
// anything), or 0 where loads < 0 (not MariaDB).
func loadStatements(t *testing.T, st *sqlstore.Store, loads int) int {
	if loads < 0 {
		return 0
	}
	var name string
	var n int
	if err := st.DB().QueryRow("SHOW GLOBAL STATUS LIKE 'Com_load'").Scan(&name, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func must(t *testing.T) func(*sqlstore.Store, error) *sqlstore.Store {
	return func(st *sqlstore.Store, err error) *sqlstore.Store {
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
}
