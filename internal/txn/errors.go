package txn

import (
	"errors"
	"fmt"
)

var (
	// ErrConflict: the transaction met a concurrent one and was aborted, or
	// must be; running it again may succeed.
	ErrConflict = errors.New("transaction conflict")
	// ErrUnknownStatus: the commit decision may or may not have been
	// recorded. The caller must not assume either; verify reads the truth
	// once lazy recovery has run.
	ErrUnknownStatus = errors.New("transaction status unknown")
	// ErrNotTransactional: the table was not created for transactions.
	ErrNotTransactional = errors.New("table is not transactional")
	// ErrFinished: the transaction was already committed or aborted.
	ErrFinished = errors.New("transaction already finished")
	// ErrInvalidArgument: the operation itself is wrong (a missing key
	// column, a value of the wrong type, an unknown column).
	ErrInvalidArgument = errors.New("invalid argument")
)

// invalid marks an input error.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
}

// TxError carries a transaction's id and why it failed.
type TxError struct {
	TxID  string
	Kind  error // ErrConflict or ErrUnknownStatus
	Cause error
}

func (e *TxError) Error() string {
	if e.Cause == nil {
		return fmt.Sprintf("%v (transaction %s)", e.Kind, e.TxID)
	}
	return fmt.Sprintf("%v (transaction %s): %v", e.Kind, e.TxID, e.Cause)
}

func (e *TxError) Unwrap() []error { return []error{e.Kind, e.Cause} }

// Retriable reports whether running the transaction again may succeed.
func Retriable(err error) bool { return errors.Is(err, ErrConflict) }
