package main

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stillpoint/stillpoint/internal/config"
	"github.com/stillpoint/stillpoint/internal/schema"
	"github.com/stillpoint/stillpoint/internal/storage"
	"github.com/stillpoint/stillpoint/internal/storage/multistorage"
)

func newSchemaCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Create, show and drop tables from ScalarDB schema-loader files",
	}
	cmd.AddCommand(newSchemaLoadCmd(g), newSchemaShowCmd(g), newSchemaDropCmd(g))
	return cmd
}

// readSchemaFile parses a schema file by the loader rules of the ScalarDB
// version the flag names, else the configuration (scalardb_version).
func readSchemaFile(g *globals, path, flagVersion string) ([]schema.Table, error) {
	version := flagVersion
	if version == "" {
		cfg, err := config.Load(g.configFile, g.dataDir)
		if err != nil {
			return nil, err
		}
		version = cfg.ScalarDBVersion
	}
	v, err := schema.ParseVersion(version)
	if err != nil {
		return nil, usageError{err}
	}
	return schema.ReadFile(path, v)
}

func newSchemaLoadCmd(g *globals) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "load FILE",
		Short: "Create the namespaces and tables of a ScalarDB schema file, and the coordinator table",
		Long: `Reads a ScalarDB schema-loader JSON file unchanged and creates its tables in
the stores their namespaces map to. Transactional tables get the transaction
metadata and before-image columns; the coordinator table (coordinator.state)
is created in the coordinator store. Table metadata goes to scalardb.metadata.

Everything is checked before anything is created: types, keys, reserved column
names, that every namespace has a store and that every store answers. Tables
that already exist with the same layout are left alone.

The file is read as the schema loader of one ScalarDB version reads it
(--scalardb-version, else scalardb_version in the configuration, else the
newest 3.x): a table without "transaction" is transactional from 3.7 on and
not transactional up to 3.6.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tables, err := readSchemaFile(g, args[0], version)
			if err != nil {
				return err
			}
			st, err := g.storageCreating()
			if err != nil {
				return err
			}
			defer st.Close()
			st.Config().ScalarDBVersion = cmp.Or(version, st.Config().ScalarDBVersion) // the file's release is the DDL's too
			actions, err := schema.Create(cmd.Context(), st, tables)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), actions, func(w io.Writer) { printActions(w, actions) })
		},
	}
	versionFlag(cmd, &version)
	return cmd
}

func versionFlag(cmd *cobra.Command, version *string) {
	cmd.Flags().StringVar(version, "scalardb-version", "", "read the file as this ScalarDB version's schema loader does, e.g. 3.6 (default: scalardb_version in the configuration, else "+schema.Latest.String()+")")
}

func newSchemaDropCmd(g *globals) *cobra.Command {
	var yes, coordinator bool
	var version string
	cmd := &cobra.Command{
		Use:   "drop FILE",
		Short: "Drop the tables of a ScalarDB schema file, with their data",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tables, err := readSchemaFile(g, args[0], version)
			if err != nil {
				return err
			}
			if !yes {
				return usageError{fmt.Errorf("schema drop deletes %d tables and all their data: add --yes to confirm", len(tables))}
			}
			st, err := g.storage()
			if err != nil {
				return err
			}
			defer st.Close()
			actions, err := schema.Drop(cmd.Context(), st, tables, coordinator)
			if err == nil {
				for _, a := range actions {
					if ns, _, _ := storage.SplitFullName(a.Table); a.Outcome == "dropped" {
						if left, _ := st.Tables(cmd.Context(), ns); len(left) == 0 {
							err = st.RemoveEmbedded(ns)
						}
					}
				}
			}
			if perr := g.print(cmd.OutOrStdout(), actions, func(w io.Writer) { printActions(w, actions) }); err == nil {
				err = perr
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm that the tables and their data are to be deleted")
	cmd.Flags().BoolVar(&coordinator, "coordinator", false, "also drop coordinator.state (forgets every commit decision)")
	versionFlag(cmd, &version)
	return cmd
}

func printActions(w io.Writer, actions []schema.Action) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSTORE\tCOLUMNS\tOUTCOME")
	for _, a := range actions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", a.Table, a.Store, a.Columns, a.Outcome)
	}
	tw.Flush()
}

// tableView is how schema show prints a table.
type tableView struct {
	Table         string       `json:"table"`
	Store         string       `json:"store"`
	Engine        string       `json:"engine"`
	Transactional bool         `json:"transactional"`
	PartitionKey  []string     `json:"partition_key"`
	ClusteringKey []string     `json:"clustering_key,omitempty"`
	Indexes       []string     `json:"secondary_index,omitempty"`
	Columns       []columnView `json:"columns"`
}

type columnView struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func newSchemaShowCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "List the namespaces and tables in the stores, with their columns",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := g.storage()
			if err != nil {
				return err
			}
			defer st.Close()
			namespaces, err := st.Namespaces(ctx)
			if err != nil {
				return err
			}
			views := []tableView{}
			for _, ns := range namespaces {
				tables, err := st.Tables(ctx, ns)
				if err != nil {
					return err
				}
				for _, t := range tables {
					v, err := describe(cmd, st, ns, t, all)
					if err != nil {
						return err
					}
					views = append(views, v)
				}
			}
			return g.print(cmd.OutOrStdout(), views, func(w io.Writer) {
				if len(views) == 0 {
					fmt.Fprintln(w, "no tables: load a schema with 'stillpoint schema load FILE'")
				}
				for _, v := range views {
					kind := "non-transactional"
					if v.Transactional {
						kind = "transactional"
					}
					fmt.Fprintf(w, "%s  (store %s, %s, %s)\n", v.Table, v.Store, v.Engine, kind)
					fmt.Fprintf(w, "  partition key: %s\n", strings.Join(v.PartitionKey, ", "))
					if len(v.ClusteringKey) > 0 {
						fmt.Fprintf(w, "  clustering key: %s\n", strings.Join(v.ClusteringKey, ", "))
					}
					if len(v.Indexes) > 0 {
						fmt.Fprintf(w, "  secondary index: %s\n", strings.Join(v.Indexes, ", "))
					}
					for _, c := range v.Columns {
						fmt.Fprintf(w, "  %-24s %s\n", c.Name, c.Type)
					}
				}
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include the transaction metadata and before-image columns")
	return cmd
}

func describe(cmd *cobra.Command, st *multistorage.Storage, ns, table string, all bool) (tableView, error) {
	ctx := cmd.Context()
	store, err := st.StoreName(ns)
	if err != nil {
		return tableView{}, err
	}
	s, err := st.Store(ctx, store)
	if err != nil {
		return tableView{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return tableView{}, err
	}
	m, err := s.TableMetadata(ctx, ns, table)
	if err != nil || m == nil {
		return tableView{}, fmt.Errorf("table %s.%s: metadata vanished while reading: %w", ns, table, err)
	}
	v := tableView{
		Table: m.FullName(), Store: store, Engine: info.Engine + " " + info.Version,
		Transactional: schema.IsTransactional(m), PartitionKey: m.PartitionKey, Indexes: m.Indexes,
	}
	for _, c := range m.ClusteringKey {
		v.ClusteringKey = append(v.ClusteringKey, c.Name+" "+c.Order.String())
	}
	cols := schema.UserColumns(m)
	if all {
		cols = m.Columns
	}
	for _, c := range cols {
		v.Columns = append(v.Columns, columnView{Name: c.Name, Type: c.Type.String()})
	}
	return v, nil
}
