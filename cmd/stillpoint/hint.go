package main

import (
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// sameDataFlags name the stores, the repository and the servers a command
// acts on. Secrets (--token) are never among them: a printed hint must not
// leak one, and the environment variable serves both commands alike.
var sameDataFlags = []string{"config", "data-dir", "repo", "key-file", "addresses", "srv-name", "tls", "ca-cert", "tls-server-name"}

// nextCommand is the command line of another stillpoint command that acts on the
// same stores, repository and servers as cmd: it carries every flag of
// sameDataFlags that the user gave, so a hint copied as printed never lands
// on other data (the default ./stillpoint-data may be the live source of a
// restore). The flags follow the subcommand, where cobra accepts them all.
func nextCommand(cmd *cobra.Command, args ...string) string {
	words := []string{"stillpoint"}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	for _, name := range sameDataFlags {
		f := cmd.Flags().Lookup(name)
		switch {
		case f == nil || !f.Changed:
		case f.Value.Type() == "bool":
			words = append(words, "--"+name+"="+f.Value.String())
		default:
			words = append(words, "--"+name, shellQuote(f.Value.String()))
		}
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
