// Command stillpoint runs transactions across databases and backs them up
// and restores them at transactionally consistent cuts.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/stillpoint/stillpoint/internal/backup"
	"github.com/stillpoint/stillpoint/internal/hint"
)

// Exit codes mean the same thing in every command.
const (
	exitOK        = 0
	exitError     = 1 // the command failed; the message says why
	exitUsage     = 2 // bad flags or arguments
	exitViolation = 3 // a check ran and found a violation
	// exitInterrupted: SIGINT or SIGTERM stopped the command, as a shell
	// reports a process killed by SIGINT (128+2).
	exitInterrupted = 130
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// violationError marks a check that ran and failed.
type violationError struct{ error }

func (e violationError) Unwrap() error { return e.error }

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	stopSignals := cancelOnSignal(cancel, os.Stderr)
	cmd, err := newRootCmd().ExecuteContextC(ctx)
	stopCPUProfile()
	interrupted := ctx.Err() != nil
	stopSignals()
	cancel()
	if err != nil && interrupted {
		// The command has unwound (locks released, nothing recorded); what
		// it was doing when the signal came is detail.
		fmt.Fprintf(os.Stderr, "stillpoint: interrupted (%v)\n", err)
		os.Exit(exitInterrupted)
	}
	// Hints name the same stores, repository and servers as the command.
	err = hint.Rendered(err, func(args []string) string { return nextCommand(cmd, args...) })
	os.Exit(exitCode(os.Stderr, err))
}

// cancelOnSignal cancels the command's context at the first SIGINT or
// SIGTERM, so it unwinds (unpauses servers, releases locks, records
// nothing), and gives the signals back to their default action: a second
// one ends the process at once, for the operator who cannot wait for that
// clean-up (a target that does not answer can hold it for its timeout).
func cancelOnSignal(cancel context.CancelFunc, w io.Writer) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			signal.Stop(sigs)
			fmt.Fprintf(w, "stillpoint: %v: stopping cleanly; send it again to stop at once without cleaning up\n", s)
			cancel()
		case <-done:
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

// exitCode prints err (if any) to w and returns the exit code it means.
func exitCode(w io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(w, "stillpoint:", err)
	var u usageError
	var v violationError
	switch {
	case errors.As(err, &u), backup.IsRefError(err):
		return exitUsage
	case errors.As(err, &v):
		return exitViolation
	}
	return exitError
}
