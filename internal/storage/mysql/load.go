package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// infileRows is how many rows one LOAD DATA statement (one transaction)
// carries: few statements, and a bounded undo log per transaction.
const infileRows = 100_000

// infileSeq names each load's reader handler uniquely (the driver's
// registry is process-wide).
var infileSeq atomic.Int64

// Copy loads rows with LOAD DATA LOCAL INFILE, fed by the driver's reader
// handler (no temporary file), where the server allows local_infile; with
// multi-row INSERTs where it does not (docs/performance.md).
func (d Dialect) Copy(ctx context.Context, s *sqlstore.Store, m *storage.TableMetadata, next func() ([]any, error)) (int64, error) {
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var allowed bool
	if err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.local_infile").Scan(&allowed); err != nil {
		return 0, err
	}
	if !allowed {
		slog.Info("load: the server has local_infile OFF; loading with INSERTs instead of LOAD DATA", "store", s.Name(), "table", m.FullName())
		return s.InsertRows(ctx, m, next)
	}
	// The defaults spelled out: what infileSource writes.
	stmt := "INTO TABLE " + s.Table(m.Namespace, m.Table) + ` CHARACTER SET binary FIELDS TERMINATED BY '\t' ENCLOSED BY '' ESCAPED BY '\\' LINES TERMINATED BY '\n' (` + sqlstore.ColumnList(d, m) + ")"
	var total int64
	for {
		src := &infileSource{m: m, next: next}
		if err := src.fill(1); err != nil || src.rows == 0 {
			return total, err
		}
		// One transaction per statement: a load that fails part way (the
		// rows' source, or the server) leaves nothing of its batch behind.
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return total, err
		}
		n, err := loadInfile(ctx, tx, src, stmt)
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		if err != nil {
			return total, err
		}
		total += n
		if src.done {
			return total, nil
		}
	}
}

// loadInfile runs one LOAD DATA statement fed by src, and checks that it
// stored every row as sent: LOAD DATA LOCAL turns bad values and duplicate
// keys into warnings, which here fail the load.
func loadInfile(ctx context.Context, tx *sql.Tx, src *infileSource, stmt string) (int64, error) {
	name := fmt.Sprintf("stillpoint-load-%d", infileSeq.Add(1))
	driver.RegisterReaderHandler(name, func() io.Reader { return src })
	defer driver.DeregisterReaderHandler(name)
	res, err := tx.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+"' "+stmt)
	if src.err != nil { // the rows' own error (a damaged backup), not the driver's account of it
		return 0, src.err
	}
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	var warnings []string
	rows, err := tx.QueryContext(ctx, "SHOW WARNINGS LIMIT 3")
	if err != nil {
		return n, err
	}
	defer rows.Close()
	for rows.Next() {
		var level, msg string
		var code int
		if err := rows.Scan(&level, &code, &msg); err != nil {
			return n, err
		}
		warnings = append(warnings, fmt.Sprintf("%s %d: %s", level, code, msg))
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	if n != src.rows || len(warnings) > 0 {
		return n, fmt.Errorf("LOAD DATA stored %d of %d rows as sent (%s)", n, src.rows, strings.Join(warnings, "; "))
	}
	return n, nil
}

// infileSource writes up to infileRows rows as LOAD DATA's default text
// format: tab-separated fields, one line per row, \N for NULL, backslash
// escapes for backslash, tab, newline and NUL.
type infileSource struct {
	m    *storage.TableMetadata
	next func() ([]any, error)
	buf  []byte
	rows int64
	done bool  // next said io.EOF
	err  error // next failed
}

// fill encodes rows until buf holds at least want bytes, the batch is
// full, or the rows end.
func (s *infileSource) fill(want int) error {
	for len(s.buf) < want && !s.done && s.err == nil && s.rows < infileRows {
		row, err := s.next()
		if errors.Is(err, io.EOF) {
			s.done = true
			break
		}
		if err != nil {
			s.err = err
			break
		}
		for i, c := range s.m.Columns {
			if i > 0 {
				s.buf = append(s.buf, '\t')
			}
			if s.buf, err = appendInfile(s.buf, c.Type, row[i]); err != nil {
				s.err = fmt.Errorf("column %s: %w", c.Name, err)
				break
			}
		}
		s.buf = append(s.buf, '\n')
		s.rows++
	}
	return s.err
}

func (s *infileSource) Read(p []byte) (int, error) {
	if err := s.fill(len(p)); err != nil {
		return 0, err
	}
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.buf)
	s.buf = s.buf[:copy(s.buf, s.buf[n:])]
	return n, nil
}

// appendInfile writes one value so that MariaDB reads back exactly it:
// floats in the shortest form that parses to the same double, times in
// UTC as the driver sends them.
func appendInfile(b []byte, t storage.DataType, v any) ([]byte, error) {
	if v == nil {
		return append(b, `\N`...), nil
	}
	switch x := v.(type) {
	case bool:
		if x {
			return append(b, '1'), nil
		}
		return append(b, '0'), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case float32:
		return strconv.AppendFloat(b, float64(x), 'g', -1, 64), nil
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64), nil
	case string:
		return appendEscaped(b, x), nil
	case []byte:
		return appendEscaped(b, string(x)), nil
	case time.Duration:
		return append(b, storage.FormatTimeOfDay(x)...), nil
	case time.Time:
		if t == storage.Date {
			return x.UTC().AppendFormat(b, "2006-01-02"), nil
		}
		return x.UTC().AppendFormat(b, "2006-01-02 15:04:05.000"), nil
	}
	return b, fmt.Errorf("cannot load %T as %v", v, t)
}

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '\t':
			b = append(b, `\t`...)
		case '\n':
			b = append(b, `\n`...)
		case 0:
			b = append(b, `\0`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// PreparedReads: a backup reads rows through the binary protocol
// (sqlstore.PreparedReader).
func (Dialect) PreparedReads() bool { return true }
