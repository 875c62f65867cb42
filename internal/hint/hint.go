// Package hint carries "what to run next" from the library to the CLI.
// A library cannot know which flags named the stores, the repository or
// the servers a command acted on; the CLI can. So an error whose fix is
// another stillpoint command says so with a *Error, and the CLI prints
// that command with the same flags (cmd/stillpoint/hint.go): a hint
// copied as printed never acts on other data.
package hint

import "strings"

// Error is an error whose fix is running a stillpoint command.
type Error struct {
	Err error
	// Args are the command's words after "stillpoint", e.g. restore ID.
	Args []string
	// Render, when set by the CLI, spells the command in full.
	Render func(args []string) string
}

// Run wraps err with the command that fixes it.
func Run(err error, args ...string) error { return &Error{Err: err, Args: args} }

func (e *Error) Error() string {
	cmd := "stillpoint " + strings.Join(e.Args, " ")
	if e.Render != nil {
		cmd = e.Render(e.Args)
	}
	return e.Err.Error() + "; run: " + cmd
}

func (e *Error) Unwrap() error { return e.Err }

// Rendered sets render on every hint in err's tree (errors.Join included).
func Rendered(err error, render func(args []string) string) error {
	if h, ok := err.(*Error); ok {
		h.Render = render
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		Rendered(u.Unwrap(), render)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			Rendered(e, render)
		}
	}
	return err
}
