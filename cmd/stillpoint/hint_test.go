package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/hint"
)

func TestHintCarriesTheFlagsThatNameTheData(t *testing.T) {
	for _, tc := range []struct {
		command, argv []string
		want          string
	}{
		{[]string{"restore"}, []string{"restore", "X"}, "stillpoint verify"},
		{[]string{"restore"}, []string{"--data-dir", "./restored1", "restore", "X"}, "stillpoint verify --data-dir ./restored1"},
		{[]string{"restore"}, []string{"restore", "X", "--repo", "s3://b/p?endpoint=h:9000", "--data-dir", "a dir"}, "stillpoint verify --data-dir 'a dir' --repo 's3://b/p?endpoint=h:9000'"},
		{[]string{"restore"}, []string{"--config", "/etc/sp.yaml", "restore", "--key-file", "it's", "X", "--parallel", "2"}, `stillpoint verify --config /etc/sp.yaml --key-file 'it'\''s'`},
		{[]string{"admin", "pause"}, []string{"admin", "pause", "-a", "h1:1,h2:2", "--token", "s3cret", "--tls"}, "stillpoint verify --addresses h1:1,h2:2 --tls=true"},
	} {
		root := newRootCmd()
		var got string
		run := func(cmd *cobra.Command, _ []string) error {
			// The hint reaches the user through an error, as the library's do.
			err := hint.Rendered(fmt.Errorf("wrapped: %w", errors.Join(errors.New("other"), hint.Run(errors.New("x"), "verify"))),
				func(args []string) string { return nextCommand(cmd, args...) })
			var h *hint.Error
			if !errors.As(err, &h) {
				t.Fatalf("no hint in %v", err)
			}
			got = h.Render(h.Args)
			return nil
		}
		target, _, err := root.Find(tc.command)
		if err != nil {
			t.Fatal(err)
		}
		target.RunE = run
		root.SetArgs(tc.argv)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", tc.argv, err)
		}
		if got != tc.want {
			t.Errorf("%v: hint %q, want %q", tc.argv, got, tc.want)
		}
	}
}
