package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo is what the binary knows of its build.
type versionInfo struct {
	Version  string `json:"version"`            // the module version, "(devel)" from a checkout
	Revision string `json:"revision,omitempty"` // the VCS commit it was built from
	Time     string `json:"revision_time,omitempty"`
	Modified bool   `json:"modified,omitempty"` // built from a checkout with changes
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit it was built from, and the Go version",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildVersion()
			return g.print(cmd.OutOrStdout(), v, func(w io.Writer) {
				fmt.Fprintf(w, "stillpoint %s", v.Version)
				if v.Revision != "" {
					fmt.Fprintf(w, " (commit %s", v.Revision)
					if v.Time != "" {
						fmt.Fprintf(w, ", %s", v.Time)
					}
					if v.Modified {
						fmt.Fprint(w, ", with local changes")
					}
					fmt.Fprint(w, ")")
				}
				fmt.Fprintf(w, " %s %s\n", v.Go, v.Platform)
			})
		},
	}
}
