package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidewatch/tidewatch/supportlayer"
	"github.com/tidewatch/tidewatch/supportlayer/apiclient"
)

// clientFlags are the flags every command that talks to the daemon shares.
type clientFlags struct {
	server string
	config string
	output string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "daemon URL (default $TIDEWATCH_SERVER, else the listen address of --config, else http://127.0.0.1:8080)")
	pf.StringVar(&f.config, "config", "", "daemon config file to take the server address and token from")
	pf.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
}

func (f *clientFlags) client() (*apiclient.Client, error) {
	if f.output != "table" && f.output != "json" {
		return nil, fmt.Errorf("--output: must be table or json, got %q", f.output)
	}
	server, token := f.server, os.Getenv("TIDEWATCH_TOKEN")
	if server == "" {
		server = os.Getenv("TIDEWATCH_SERVER")
	}
	if server == "" || token == "" {
		opts, err := supportlayer.LoadOptions(f.config, os.Environ())
		if err != nil {
			return nil, err
		}
		if server == "" {
			server = "http://" + opts.Listen
		}
		if token == "" {
			token = opts.Auth.Token
		}
	}
	return apiclient.New(server, token, 90*time.Second)
}

func newJobCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{Use: "job", Short: "Submit, inspect and control jobs through the daemon"}
	cf.register(cmd)

	var wait bool
	var waitTimeout time.Duration
	submit := &cobra.Command{
		Use:   "submit FILE",
		Short: "Submit a job spec (YAML); with --wait, follow it until it runs or fails",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			spec, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			j, err := c.Submit(cmd.Context(), spec, args[0])
			if err != nil {
				return err
			}
			if !wait {
				return printJob(cmd.OutOrStdout(), cf.output, j)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "submitted %s as %s\n", j.Name, j.ID)
			return waitRunning(cmd.Context(), c, j.ID, waitTimeout, cmd.ErrOrStderr(), func(j supportlayer.JobView) error {
				return printJob(cmd.OutOrStdout(), cf.output, j)
			})
		},
	}
	submit.Flags().BoolVar(&wait, "wait", false, "show progress until the job is RUNNING (or has ended)")
	submit.Flags().DurationVar(&waitTimeout, "timeout", 2*time.Minute, "how long --wait waits")

	list := &cobra.Command{
		Use:   "list",
		Short: "List jobs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			jobs, err := c.Jobs(cmd.Context())
			if err != nil {
				return err
			}
			if cf.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"jobs": jobs})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tRESTARTS\tDEPLOYMENT\tAGE")
			for _, j := range jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Name, j.State, j.Restarts, deploymentSummary(j.Deployment), age(j.CreatedAt))
			}
			return tw.Flush()
		},
	}

	status := &cobra.Command{
		Use:   "status ID",
		Short: "Show a job (ID or a unique prefix of it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			j, err := c.Job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJob(cmd.OutOrStdout(), cf.output, j)
		},
	}

	action := func(name, short string) *cobra.Command {
		return &cobra.Command{
			Use:   name + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := cf.client()
				if err != nil {
					return err
				}
				j, err := c.Action(cmd.Context(), args[0], name)
				if err != nil {
					return err
				}
				return printJob(cmd.OutOrStdout(), cf.output, j)
			},
		}
	}

	var target string
	savepoint := &cobra.Command{
		Use:   "savepoint ID",
		Short: "Take a savepoint of a running job and print its location",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			loc, err := c.Savepoint(cmd.Context(), args[0], target)
			if err != nil {
				return err
			}
			if cf.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"location": loc})
			}
			fmt.Fprintln(cmd.OutOrStdout(), loc)
			return nil
		},
	}
	savepoint.Flags().StringVar(&target, "target", "", "directory for the savepoint (default: the job's savepoint directory)")

	var to, keyGroups string
	var waitMigration bool
	migrate := &cobra.Command{
		Use:   "migrate ID --to pebble|heap",
		Short: "Move a running job's keyed state between the heap and Pebble backends, without a restart",
		Long: `Move a running job's keyed state between the heap and Pebble backends. The job
keeps running: each window subtask moves one key group at a time between records.
With --wait, shows progress until the move completes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to != "heap" && to != "pebble" {
				return fmt.Errorf("--to: must be heap or pebble, got %q", to)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			st, err := c.Migrate(cmd.Context(), args[0], to, keyGroups)
			if err != nil {
				return err
			}
			for waitMigration && st.Status == "RUNNING" {
				if cf.output != "json" && st.KeyGroups != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "moving to %s: %d of %d key groups left, %d entries moved\n",
						st.Target, st.KeyGroups.Remaining, st.KeyGroups.Requested, st.EntriesMoved)
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(200 * time.Millisecond):
				}
				if st, err = c.Migration(cmd.Context(), args[0]); err != nil {
					return err
				}
			}
			if cf.output == "json" {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: to %s, %d entries moved in %.1f ms (longest step %.2f ms); key groups: %d heap, %d pebble\n",
				st.Status, st.Target, st.EntriesMoved, st.MovingMs, st.MaxStallMs, st.Backends["heap"], st.Backends["pebble"])
			return nil
		},
	}
	migrate.Flags().StringVar(&to, "to", "", "target backend: pebble or heap")
	migrate.Flags().StringVar(&keyGroups, "key-groups", "all", `key groups to move: "all" or ranges like 0-63,100`)
	migrate.Flags().BoolVar(&waitMigration, "wait", false, "wait until the move completes")

	deployments := &cobra.Command{
		Use:   "deployments ID",
		Short: "List a job's deployments (attempts)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			ds, err := c.Deployments(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if cf.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"deployments": ds})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ATTEMPT\tREASON\tSTATE\tWHERE\tSTARTED\tENDED\tDIAGNOSTICS")
			for _, d := range ds {
				ended := "-"
				if d.EndedAt != nil {
					ended = d.EndedAt.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Attempt, d.Reason, d.State, deploymentSummary(&d),
					d.StartedAt.Local().Format(time.DateTime), ended, d.Diagnostics)
			}
			return tw.Flush()
		},
	}

	var tail int64
	logs := &cobra.Command{
		Use:   "logs ID",
		Short: "Print the log of a job's current (or last) deployment",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			return c.Logs(cmd.Context(), args[0], tail, cmd.OutOrStdout())
		},
	}
	logs.Flags().Int64Var(&tail, "tail", 64<<10, "print at most the last N bytes (0 = all)")

	cmd.AddCommand(submit, list, status,
		action("stop", "Stop a job with a final savepoint"),
		action("cancel", "Cancel a job without a savepoint"),
		action("restart", "Restart a job from its latest checkpoint"),
		savepoint, migrate, deployments, logs)
	return cmd
}

func newEventsCommand() *cobra.Command {
	var cf clientFlags
	var limit int
	cmd := &cobra.Command{
		Use:   "events [JOB-ID]",
		Short: "List events, of all jobs or of one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			evs, err := c.Events(cmd.Context(), id, limit)
			if err != nil {
				return err
			}
			if cf.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"events": evs})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tJOB\tLEVEL\tTYPE\tMESSAGE")
			for _, e := range evs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), short(e.JobID), e.Level, e.Type, e.Message)
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().IntVar(&limit, "limit", 50, "how many events, newest first")
	return cmd
}

// waitRunning polls the job until it is RUNNING (success), or has ended.
func waitRunning(ctx context.Context, c *apiclient.Client, id string, timeout time.Duration, progress io.Writer, done func(supportlayer.JobView) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	start, last := time.Now(), ""
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			return err
		}
		if j.State != last {
			fmt.Fprintf(progress, "%6.1fs  %s%s\n", time.Since(start).Seconds(), j.State, suffix(j.Message))
			last = j.State
		}
		switch j.State {
		case supportlayer.StateRunning, supportlayer.StateFinished:
			return done(j)
		case supportlayer.StateFailed, supportlayer.StateCanceled, supportlayer.StateStopped:
			_ = done(j)
			return &exitError{code: 2, err: fmt.Errorf("job %s ended %s: %s", j.ID, j.State, j.Message)}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("job %s is still %s after %s", j.ID, j.State, timeout)
		case <-tick.C:
		}
	}
}

func printJob(w io.Writer, format string, j supportlayer.JobView) error {
	if format == "json" {
		return writeJSON(w, j)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", j.ID)
	fmt.Fprintf(tw, "Name:\t%s\n", j.Name)
	fmt.Fprintf(tw, "State:\t%s (desired %s)\n", j.State, j.DesiredState)
	if j.Message != "" {
		fmt.Fprintf(tw, "Message:\t%s\n", j.Message)
	}
	fmt.Fprintf(tw, "Restarts:\t%d\n", j.Restarts)
	fmt.Fprintf(tw, "Submitted:\t%s\n", j.CreatedAt.Local().Format(time.DateTime))
	if d := j.Deployment; d != nil {
		fmt.Fprintf(tw, "Deployment:\t%d (%s, %s)\n", d.Attempt, deploymentSummary(d), d.State)
		if d.Endpoint != "" {
			fmt.Fprintf(tw, "Job master:\t%s\n", d.Endpoint)
		}
		if d.LogPath != "" {
			fmt.Fprintf(tw, "Log:\t%s\n", d.LogPath)
		}
		if d.Diagnostics != "" {
			fmt.Fprintf(tw, "Diagnostics:\t%s\n", d.Diagnostics)
		}
	}
	return tw.Flush()
}

func deploymentSummary(d *supportlayer.DeploymentView) string {
	switch {
	case d == nil:
		return "-"
	case d.ApplicationID != "":
		return d.ApplicationID
	case d.PID != 0:
		return fmt.Sprintf("%s pid %d", d.Deployer, d.PID)
	}
	return d.Deployer
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func age(t time.Time) string {
	return time.Since(t).Round(time.Second).String()
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return " — " + strings.TrimSpace(msg)
}
