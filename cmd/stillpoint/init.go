package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/config"
)

type initReport struct {
	Repository string `json:"repository"`
	ID         string `json:"id"`
	Encrypted  bool   `json:"encrypted"`
}

func newInitCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a repository for backups (encrypted when a key is given)",
		Long: `Creates an empty repository at --repo (a directory, created if missing, or
s3://bucket/prefix). With a key (--key-file, repository_key_file in the config,
or $STILLPOINT_REPO_KEY) everything in it is encrypted and authenticated, and
the key is needed to read it: keep the key apart from the repository, and keep
a copy. Without a key the repository is checksummed but not encrypted.

An existing repository, or a location that holds anything else, is refused.
Every other command refuses a repository that does not exist (a mistyped
--repo never starts a new one); backup create --init creates it on first use.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(g.configFile, g.dataDir)
			if err != nil {
				return err
			}
			r, err := rf.open(cmd.Context(), cfg, repoCreate)
			if err != nil {
				return err
			}
			rep := initReport{Repository: r.String(), ID: r.ID(), Encrypted: r.Encrypted()}
			return g.print(cmd.OutOrStdout(), rep, func(w io.Writer) {
				if rep.Encrypted {
					fmt.Fprintf(w, "created encrypted repository %s (id %s): keep its key safe, it cannot be read without it\n", rep.Repository, rep.ID)
				} else {
					fmt.Fprintf(w, "created repository %s (id %s), not encrypted: give a key to init to encrypt one\n", rep.Repository, rep.ID)
				}
				fmt.Fprintf(w, "back up into it: %s\n", nextCommand(cmd, "backup", "create"))
			})
		},
	}
	rf.add(cmd)
	return cmd
}
