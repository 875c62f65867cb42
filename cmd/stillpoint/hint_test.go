package main

import (
	"testing"

	"github.com/spf13/cobra"
)

func TestHintCarriesTheFlagsThatNameTheData(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"restore", "X"}, "stillpoint verify"},
		{[]string{"--data-dir", "./restored1", "restore", "X"}, "stillpoint --data-dir ./restored1 verify"},
		{[]string{"restore", "X", "--repo", "s3://b/p?endpoint=h:9000", "--data-dir", "a dir"}, "stillpoint --data-dir 'a dir' --repo 's3://b/p?endpoint=h:9000' verify"},
		{[]string{"--config", "/etc/sp.yaml", "restore", "--key-file", "it's", "X", "--parallel", "2"}, `stillpoint --config /etc/sp.yaml --key-file 'it'\''s' verify`},
	} {
		root := newRootCmd()
		var got string
		restore, _, err := root.Find([]string{"restore"})
		if err != nil {
			t.Fatal(err)
		}
		restore.RunE = func(cmd *cobra.Command, _ []string) error { got = hint(cmd, "verify"); return nil }
		root.SetArgs(tc.argv)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", tc.argv, err)
		}
		if got != tc.want {
			t.Errorf("%v: hint %q, want %q", tc.argv, got, tc.want)
		}
	}
}
