package mysql

import (
	"bytes"
	"cmp"
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
	"golang.org/x/sync/errgroup"

	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/sqlstore"
)

// A batch is one LOAD DATA statement and one transaction: up to
// infileRows rows or infileBytes of text, whichever comes first. Batches
// are encoded whole, so that loadConns connections can load consecutive
// ones at once; the loadConns+1 batch buffers bound a table's memory.
const (
	infileRows  = 25_000
	infileBytes = 4 << 20
	// loadConns connections load one table at once: InnoDB stores
	// alternate batches from two connections in about 60% of the time
	// one takes (docs/performance.md, MariaDB restore).
	loadConns = 2
)

// infileSeq names each load's reader handler uniquely (the driver's
// registry is process-wide).
var infileSeq atomic.Int64

// Copy loads rows with LOAD DATA LOCAL INFILE, fed by the driver's reader
// handler (no temporary file), where the server allows local_infile; with
// multi-row INSERTs where it does not (docs/performance.md).
func (d Dialect) Copy(ctx context.Context, s *sqlstore.Store, m *storage.TableMetadata, next func() ([]any, error)) (int64, error) {
	v := sqlstore.NewValues(m.Columns)
	return d.CopyValues(ctx, s, m, func() (*sqlstore.Values, error) {
		row, err := next()
		if err != nil {
			return nil, err
		}
		return v, v.SetRow(row)
	})
}

// CopyValues is Copy of rows in typed slots, each value formatted from its
// slot (what a restore gives: no value boxed into an any on the way).
func (d Dialect) CopyValues(ctx context.Context, s *sqlstore.Store, m *storage.TableMetadata, next func() (*sqlstore.Values, error)) (int64, error) {
	var allowed bool
	if err := s.DB().QueryRowContext(ctx, "SELECT @@GLOBAL.local_infile").Scan(&allowed); err != nil {
		return 0, err
	}
	if !allowed {
		slog.Info("load: the server has local_infile OFF; loading with INSERTs instead of LOAD DATA", "store", s.Name(), "table", m.FullName())
		return s.InsertRows(ctx, m, sqlstore.Boxed(next))
	}
	// The defaults spelled out: what appendRow writes.
	stmt := "INTO TABLE " + s.Table(m.Namespace, m.Table) + ` CHARACTER SET binary FIELDS TERMINATED BY '\t' ENCLOSED BY '' ESCAPED BY '\\' LINES TERMINATED BY '\n' (` + sqlstore.ColumnList(d, m) + ")"
	free := make(chan *infileBatch, loadConns+1)
	for range loadConns + 1 {
		free <- &infileBatch{}
	}
	full := make(chan *infileBatch)
	g, gctx := errgroup.WithContext(ctx)
	var total atomic.Int64
	for range loadConns {
		g.Go(func() error {
			conn, err := s.DB().Conn(gctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			for b := range full {
				n, err := loadBatch(gctx, conn, b, stmt)
				if err != nil {
					return err
				}
				total.Add(n)
				free <- b
			}
			return nil
		})
	}
	rowsErr := encodeBatches(gctx, next, free, full)
	close(full)
	loadErr := g.Wait()
	// The rows' own error (a damaged backup) first, not the loads' account
	// of the stop it caused.
	return total.Load(), cmp.Or(rowsErr, loadErr, ctx.Err())
}

// infileBatch is the text of one LOAD DATA statement's rows.
type infileBatch struct {
	buf  []byte
	rows int64
}

// encodeBatches takes empty batches from free, fills each with the next
// rows, and sends it to full, until the rows end, fail (their error is
// returned), or ctx ends (a load failed).
func encodeBatches(ctx context.Context, next func() (*sqlstore.Values, error), free <-chan *infileBatch, full chan<- *infileBatch) error {
	for {
		var b *infileBatch
		select {
		case b = <-free:
		case <-ctx.Done():
			return nil
		}
		b.buf, b.rows = b.buf[:0], 0
		done := false
		for b.rows < infileRows && len(b.buf) < infileBytes {
			v, err := next()
			if errors.Is(err, io.EOF) {
				done = true
				break
			}
			if err != nil {
				return err
			}
			b.buf = appendRow(b.buf, v)
			b.rows++
		}
		if b.rows > 0 {
			select {
			case full <- b:
			case <-ctx.Done():
				return nil
			}
		}
		if done {
			return nil
		}
	}
}

// loadBatch runs one LOAD DATA statement of b's rows in its own
// transaction: a load that fails part way leaves nothing of its batch
// behind.
func loadBatch(ctx context.Context, conn *sql.Conn, b *infileBatch, stmt string) (int64, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	n, err := loadInfile(ctx, tx, b, stmt)
	if err == nil {
		err = tx.Commit()
	} else {
		tx.Rollback()
	}
	return n, err
}

// loadInfile runs one LOAD DATA statement of b's rows, and checks that it
// stored every row as sent: LOAD DATA LOCAL turns bad values and duplicate
// keys into warnings, which here fail the load.
func loadInfile(ctx context.Context, tx *sql.Tx, b *infileBatch, stmt string) (int64, error) {
	name := fmt.Sprintf("stillpoint-load-%d", infileSeq.Add(1))
	driver.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(b.buf) })
	defer driver.DeregisterReaderHandler(name)
	res, err := tx.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+"' "+stmt)
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
	if n != b.rows || len(warnings) > 0 {
		return n, fmt.Errorf("LOAD DATA stored %d of %d rows as sent (%s)", n, b.rows, strings.Join(warnings, "; "))
	}
	return n, nil
}

// appendRow writes one row as LOAD DATA's default text format so that
// MariaDB reads back exactly its values: fields separated by tabs, a
// newline after the row, \N for NULL, backslash escapes for backslash,
// tab, newline and NUL; floats in the shortest form that parses to the
// same double (a FLOAT's exact double), times in UTC as the driver sends
// them.
func appendRow(b []byte, v *sqlstore.Values) []byte {
	for i, c := range v.Cols {
		if i > 0 {
			b = append(b, '\t')
		}
		if v.Null[i] {
			b = append(b, `\N`...)
			continue
		}
		x := v.Int[i]
		switch c.Type {
		case storage.Boolean:
			b = append(b, byte('0'+x))
		case storage.Int, storage.BigInt:
			b = strconv.AppendInt(b, x, 10)
		case storage.Float, storage.Double:
			b = strconv.AppendFloat(b, v.Float[i], 'g', -1, 64)
		case storage.Text, storage.Blob:
			b = appendEscaped(b, v.Bytes[i])
		case storage.Date:
			b = time.Unix(x*86400, 0).UTC().AppendFormat(b, "2006-01-02")
		case storage.Time:
			b = append(b, storage.FormatTimeOfDay(time.Duration(x)*time.Microsecond)...)
		case storage.Timestamp, storage.TimestampTZ:
			b = time.UnixMicro(x).UTC().AppendFormat(b, "2006-01-02 15:04:05.000")
		}
	}
	return append(b, '\n')
}

func appendEscaped(b []byte, s []byte) []byte {
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
