package main

import (
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// sameDataFlags name the stores and the repository a command acts on.
var sameDataFlags = []string{"config", "data-dir", "repo", "key-file"}

// hint is the command line of another stillpoint command that acts on the
// same stores and repository as cmd: it carries every flag of sameDataFlags
// that the user gave, so a hint copied as printed never lands on other data
// (the default ./stillpoint-data may be the live source of a restore).
func hint(cmd *cobra.Command, args ...string) string {
	words := []string{"stillpoint"}
	for _, name := range sameDataFlags {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			words = append(words, "--"+name, shellQuote(f.Value.String()))
		}
	}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote makes s one word for a POSIX shell.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
