package main

import (
	"fmt"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// newSilenceCommand is `tidewatch silence add|list|expire`: silences of the
// daemon's notifier (OPERATIONS.md, "Alerts and notifications").
func newSilenceCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "silence",
		Short: "Add, list and expire alert silences",
	}
	cf.register(cmd)

	var duration time.Duration
	var comment, author string
	add := &cobra.Command{
		Use:   `add MATCHERS --duration 2h --comment TEXT`,
		Short: `Silence the alerts whose labels match, e.g. 'job="c5f0…", alertname=~"HEAP.*"'`,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if duration <= 0 {
				return fmt.Errorf("--duration: must be positive, got %s", duration)
			}
			if comment == "" {
				return fmt.Errorf("--comment: required (say why)")
			}
			if author == "" {
				if u, err := user.Current(); err == nil {
					author = u.Username
				}
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			s, err := c.AddSilence(cmd.Context(), args[0], duration, author, comment)
			if err != nil {
				return err
			}
			if cf.output == "json" {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s until %s\n", s.ID, s.Matchers, s.EndsAt.Local().Format(time.DateTime))
			return nil
		},
	}
	add.Flags().DurationVar(&duration, "duration", 2*time.Hour, "how long the silence lasts")
	add.Flags().StringVar(&comment, "comment", "", "why (required)")
	add.Flags().StringVar(&author, "author", "", "who (default: the current user)")

	var state string
	list := &cobra.Command{
		Use:   "list",
		Short: "List silences, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			ss, err := c.Silences(cmd.Context(), state)
			if err != nil {
				return err
			}
			if cf.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"silences": ss})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tMATCHERS\tENDS\tBY\tCOMMENT")
			now := time.Now()
			for _, s := range ss {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.State(now), s.Matchers, s.EndsAt.Local().Format(time.DateTime), s.CreatedBy, s.Comment)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "", "pending, active or expired")

	expire := &cobra.Command{
		Use:   "expire ID",
		Short: "End a silence now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			s, err := c.ExpireSilence(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if cf.output == "json" {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s expired\n", s.ID)
			return nil
		},
	}
	cmd.AddCommand(add, list, expire)
	return cmd
}
