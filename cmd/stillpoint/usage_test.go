package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageCase is one way to call a command wrongly.
type usageCase struct {
	name string
	args []string
	// fix: words the message must hold, so it says what to do.
	fix []string
}

// usageCases are the wrong calls of cmd: an unknown flag, a bad value for
// each bounded flag, a missing or extra argument, and for a group an
// unknown or missing subcommand.
func usageCases(cmd *cobra.Command) []usageCase {
	path := strings.Fields(cmd.CommandPath())[1:]
	at := func(extra ...string) []string { return append(append([]string{}, path...), extra...) }
	help := cmd.CommandPath() + " --help"
	cases := []usageCase{{"unknown flag", at("--no-such-flag"), []string{"unknown flag: --no-such-flag", help}}}
	if cmd.HasSubCommands() {
		if len(path) > 0 {
			cases = append(cases, usageCase{"missing subcommand", path, []string{"missing subcommand", help}})
		}
		return append(cases,
			usageCase{"unknown subcommand", at("nosuch"), []string{`unknown command "nosuch"`, help}},
			usageCase{"misspelt subcommand", at(cmd.Commands()[0].Name() + "x"), []string{"did you mean " + cmd.Commands()[0].Name()}},
		)
	}
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		switch f.Value.Type() {
		case "int", "int64", "duration", "bool":
			cases = append(cases, usageCase{"bad value of --" + f.Name, at("--" + f.Name + "=x"), []string{`invalid argument "x" for "--` + f.Name + `"`, help}})
		}
	})
	if words := strings.Fields(cmd.Use)[1:]; len(words) > 0 {
		cases = append(cases, usageCase{"missing argument", at(), []string{"takes " + strings.Join(words, " "), help}})
	} else {
		cases = append(cases, usageCase{"extra argument", at("extra"), []string{"takes no arguments", help}})
	}
	return cases
}

// TestUsageErrors: every command and subcommand called wrongly exits 2 with
// a message that says how to call it, before it touches anything.
func TestUsageErrors(t *testing.T) {
	var visit func(*cobra.Command)
	commands := 0
	visit = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		commands++
		for _, tc := range usageCases(c) {
			t.Run(strings.Join(append([]string{c.CommandPath()}, tc.name), "/"), func(t *testing.T) {
				dir := t.TempDir()
				root := newRootCmd()
				root.SetArgs(append(tc.args, "--data-dir", dir+"/data", "--config", ""))
				var out, errb bytes.Buffer
				root.SetOut(&out)
				root.SetErr(&errb)
				err := root.ExecuteContext(context.Background())
				var msg bytes.Buffer
				if code := exitCode(&msg, err); code != exitUsage {
					t.Fatalf("stillpoint %s: exit %d (%v), want %d", strings.Join(tc.args, " "), code, err, exitUsage)
				}
				for _, want := range tc.fix {
					if !strings.Contains(msg.String(), want) {
						t.Errorf("stillpoint %s: %q does not say %q", strings.Join(tc.args, " "), msg.String(), want)
					}
				}
			})
		}
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(newRootCmd())
	if commands < 20 {
		t.Fatalf("visited %d commands; the walk missed some", commands)
	}
}

// demo makes everything under its --dir; a --data-dir or --config meant for
// it is refused, not silently ignored, and nothing is created.
func TestDemoRefusesStoreFlags(t *testing.T) {
	for _, flag := range []string{"--data-dir", "--config"} {
		dir := filepath.Join(t.TempDir(), "demo")
		root := newRootCmd()
		root.SetArgs([]string{"demo", "--dir", dir, flag, filepath.Join(t.TempDir(), "x")})
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		var msg bytes.Buffer
		if code := exitCode(&msg, root.ExecuteContext(context.Background())); code != exitUsage || !strings.Contains(msg.String(), "under --dir") {
			t.Errorf("demo %s: exit %d, %q; want a usage error naming --dir", flag, code, msg.String())
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("demo %s created %s", flag, dir)
		}
	}
}
