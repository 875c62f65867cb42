package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/stillpoint/stillpoint/internal/config"
)

func newConfigCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration (file plus environment), passwords masked",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(g.configFile, g.dataDir)
			if err != nil {
				return err
			}
			r := cfg.Redacted()
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintf(w, "# from %s\n", r.Source)
				if r.Embedded {
					fmt.Fprintf(w, "# embedded default: each namespace is an SQLite file under %s\n", r.DataDir)
				}
				out, _ := yaml.Marshal(r)
				w.Write(out)
			})
		},
	}
}
