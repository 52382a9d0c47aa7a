package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidewatch/tidewatch/monitor"
	"github.com/tidewatch/tidewatch/monitor/rules"
)

// newRulesCommand is `tidewatch rules …`: checking rule files and replaying
// metric traces through them, without a daemon.
func newRulesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Check monitor rule files and try them on recorded metrics"}
	cmd.AddCommand(newRulesCheckCommand(), newRulesTestCommand())
	return cmd
}

func newRulesCheckCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "check FILE|DIR...",
		Short: "Parse and compile rule files; list every problem with its file, line and field",
		Long: `Parse and compile rule files (a directory stands for its *.yaml and *.yml files)
as the daemon would load them. Every problem is printed as FILE:LINE: FIELD: MESSAGE;
the exit status is 1 if there is any.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			set, err := rules.Load(args...)
			errs := rules.Errors(err)
			if err != nil && len(errs) == 0 {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				res := struct {
					OK     bool           `json:"ok"`
					Rules  []ruleSummary  `json:"rules"`
					Errors []errorSummary `json:"errors"`
				}{OK: err == nil, Rules: []ruleSummary{}, Errors: []errorSummary{}}
				if set != nil {
					for _, r := range set.Rules {
						res.Rules = append(res.Rules, summarize(r))
					}
				}
				for _, e := range errs {
					res.Errors = append(res.Errors, errorSummary{File: e.File, Line: e.Line, Column: e.Column, Field: e.Field, Message: e.Msg})
				}
				if werr := writeJSONTo(out, res); werr != nil {
					return werr
				}
			} else if err == nil {
				for _, f := range set.Files {
					n := 0
					for _, r := range set.Rules {
						if r.File == f {
							n++
						}
					}
					fmt.Fprintf(out, "%s: %d rules, OK\n", f, n)
				}
			} else {
				for _, e := range errs {
					fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
				}
			}
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("%s in the rule files", plural(len(errs), "problem"))}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func newRulesTestCommand() *cobra.Command {
	var (
		output, trace, format string
		until                 time.Duration
		lateness              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "test FILE|DIR... --trace TRACE",
		Short: "Replay a metric trace through rule files and print what fires",
		Long: `Replay a metric trace (JSONL, or CSV by the .csv extension; - reads standard input)
through the rules of FILE|DIR... in event time, as the monitor runs them live, and print
each firing (with its output fields and matched samples with -o json) and each resolution.
Without --until time stops at the trace's last event; --until 10m lets ten more minutes pass
so that windows close and quiet firings resolve. docs/RULES.md describes the trace format.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if trace == "" {
				return fmt.Errorf("--trace: required")
			}
			set, err := rules.Load(args...)
			if err != nil {
				for _, e := range rules.Errors(err) {
					fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
				}
				return &exitError{code: 1, err: fmt.Errorf("the rule files do not load")}
			}
			var in io.Reader = cmd.InOrStdin()
			name := "stdin"
			if trace != "-" {
				f, err := os.Open(trace)
				if err != nil {
					return err
				}
				defer f.Close()
				in, name = f, trace
			}
			tf := monitor.TraceFormatOf(name)
			if format != "" {
				tf = monitor.TraceFormat(format)
			}
			opts := monitor.DefaultEvalOptions()
			opts.AllowedLateness = lateness
			rp, err := monitor.NewReplayer(set, opts)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var last time.Time
			if err := monitor.ScanTrace(in, tf, name, func(ev monitor.Event) error {
				rp.Feed(ctx, ev)
				last = ev.Time
				return ctx.Err()
			}); err != nil {
				return err
			}
			var end time.Time
			if until > 0 {
				end = last.Add(until)
			}
			res := rp.Finish(ctx, end)
			if output == "json" {
				return writeJSONTo(cmd.OutOrStdout(), res)
			}
			printReplay(cmd.OutOrStdout(), res)
			return nil
		},
	}
	cmd.Flags().StringVar(&trace, "trace", "", "metric trace to replay (JSONL or CSV; - for standard input)")
	cmd.Flags().StringVar(&format, "format", "", "trace format, jsonl or csv (default: by the file's extension)")
	cmd.Flags().DurationVar(&until, "until", 0, "let this much event time pass after the last event")
	cmd.Flags().DurationVar(&lateness, "lateness", 0, "how far out of time order an event may be")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return fmt.Errorf("--output: must be table or json, got %q", o)
	}
	return nil
}

type ruleSummary struct {
	Name   string        `json:"name"`
	Level  rules.Level   `json:"level"`
	Scope  rules.Scope   `json:"scope"`
	File   string        `json:"file"`
	Line   int           `json:"line"`
	Events []string      `json:"events"`
	Within string        `json:"within,omitempty"`
	Action *rules.Action `json:"action,omitempty"`
}

func summarize(r *rules.Rule) ruleSummary {
	s := ruleSummary{Name: r.Name, Level: r.Level, Scope: r.Scope, File: r.File, Line: r.Line, Events: r.StageNames(), Action: r.Action}
	if r.Within > 0 {
		s.Within = r.Within.String()
	}
	return s
}

type errorSummary struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printReplay prints the notices of a replay as a table, then a summary.
func printReplay(w io.Writer, res monitor.ReplayResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tLEVEL\tRULE\tJOB\tWORKER\tDETAIL")
	for _, n := range res.Notices {
		switch {
		case n.Firing != nil:
			f := n.Firing
			detail := fields(f.Fields)
			if f.Action != nil {
				act := string(f.Action.Type)
				if f.Action.DryRun {
					act += " (dry run)"
				}
				detail = strings.TrimSpace(detail + " action=" + act)
			}
			fmt.Fprintf(tw, "%s\tFIRE\t%s\t%s\t%s\t%s\t%s\n", f.At.UTC().Format(time.RFC3339), f.Level, f.Rule, f.JobID, dash(f.TMID), detail)
		case n.Resolved != nil:
			r := n.Resolved
			fmt.Fprintf(tw, "%s\tRESOLVE\t\t%s\t%s\t%s\t%s\n", r.At.UTC().Format(time.RFC3339), r.Rule, r.JobID, dash(r.TMID), r.Reason)
		}
	}
	tw.Flush()
	fired := map[string]int{}
	for _, f := range res.Firings() {
		fired[f.Rule]++
	}
	names := make([]string, 0, len(fired))
	for n := range fired {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "\n%s, %s", plural(res.Events, "event"), plural(len(res.Firings()), "firing"))
	if len(names) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(names, ", "))
	}
	fmt.Fprintf(w, ", %d still active at %s\n", len(res.Active), res.End.UTC().Format(time.RFC3339))
}

func fields(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		switch k {
		case "jobID", "jobName", "tmID", "hostname", "metricsName":
			continue // in their own columns, or implied by the rule
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		v := m[k]
		if f, ok := v.(float64); ok {
			fmt.Fprintf(&b, "%s=%.4g", k, f)
		} else {
			fmt.Fprintf(&b, "%s=%v", k, v)
		}
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
