package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidewatch/tidewatch/mlforecast"
)

// anomaliesOutput is what `tidewatch anomalies` reports; anomaliesJSON
// gives its JSON form.
type anomaliesOutput struct {
	Input     string
	Column    string
	Points    int
	Method    string
	Period    int
	Anomalies []anomalyOutput
	// Model is the ARIMA model of --method residual, nil for shesd.
	Model *mlforecast.Spec
}

type anomalyOutput struct {
	Index                  int
	Time                   string // empty without timestamps
	Value, Expected, Score float64
}

// anomalyFlags maps the option fields that Validate names to the flags
// that set them.
var anomalyFlags = map[string]string{
	"Period":       "--period",
	"Threshold":    "--threshold",
	"MaxAnomalies": "--max-anomalies",
	"Alpha":        "--alpha",
	"Window":       "--window",
	"Direction":    "--direction",
}

func newAnomaliesCommand() *cobra.Command {
	var (
		input, column, method, direction, output string
		period, window                           int
		threshold, maxAnomalies, alpha           float64
	)
	cmd := &cobra.Command{
		Use:   "anomalies --input FILE.csv",
		Short: "Find anomalous points in a series",
		Long: `Find anomalous points in one column of a CSV file.

--method residual (default) fits an ARIMA model (automatic order; --period m allows seasonal
models) and flags the points whose one-step-ahead prediction error has a robust z-score
(median and MAD of the standardised errors) above --threshold.

--method shesd runs the seasonal hybrid ESD test: the robust seasonal component of period
--period and the median are removed, and the generalised ESD test with median and MAD
picks the outliers at significance --alpha.

Both flag at most --max-anomalies of the points.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return errors.New("--input: required")
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("-o: must be table or json, got %q", output)
			}
			dir, err := parseDirection(direction)
			if err != nil {
				return err
			}
			if period < 0 {
				return fmt.Errorf("--period: must not be negative, got %d", period)
			}
			changed := cmd.Flags().Changed
			var run func(y []float64) ([]mlforecast.Anomaly, *mlforecast.Spec, error)
			switch method {
			case "residual":
				for _, f := range []string{"alpha", "window"} {
					if changed(f) {
						return fmt.Errorf("--%s: only with --method shesd", f)
					}
				}
				// Zero means the detector's default, so 0 cannot be passed through.
				if !(threshold > 0) || math.IsInf(threshold, 0) {
					return fmt.Errorf("--threshold: must be > 0, got %v", threshold)
				}
				opts := mlforecast.ResidualOptions{
					Auto: mlforecast.DefaultAutoOptions(), Threshold: threshold,
					MaxAnomalies: maxAnomalies, Direction: dir,
				}
				opts.Auto.Period = period
				if err := flagError(opts.Validate()); err != nil {
					return err
				}
				run = func(y []float64) ([]mlforecast.Anomaly, *mlforecast.Spec, error) {
					res, err := mlforecast.DetectResiduals(y, opts)
					if err != nil {
						return nil, nil, err
					}
					return res.Anomalies, &res.Model.Spec, nil
				}
			case "shesd":
				if changed("threshold") {
					return errors.New("--threshold: only with --method residual (shesd tests at --alpha)")
				}
				if period < 2 {
					return fmt.Errorf("--period: --method shesd needs the seasonal period (>= 2), got %d", period)
				}
				if !(alpha > 0 && alpha < 1) {
					return fmt.Errorf("--alpha: must be between 0 and 1, got %v", alpha)
				}
				opts := mlforecast.ESDOptions{
					Period: period, MaxAnomalies: maxAnomalies, Alpha: alpha, Window: window, Direction: dir,
				}
				if err := flagError(opts.Validate()); err != nil {
					return err
				}
				run = func(y []float64) ([]mlforecast.Anomaly, *mlforecast.Spec, error) {
					an, err := mlforecast.DetectSHESD(y, opts)
					return an, nil, err
				}
			default:
				return fmt.Errorf("--method: must be residual or shesd, got %q", method)
			}
			series, err := mlforecast.ReadCSVFile(input, mlforecast.CSVOptions{ValueColumn: column})
			if err != nil {
				return err
			}
			cmd.SilenceUsage = true
			found, model, err := run(series.Values)
			if err != nil {
				return err
			}
			out := anomaliesOutput{
				Input: input, Column: series.Name, Points: series.Len(), Method: method, Period: period,
				Anomalies: make([]anomalyOutput, 0, len(found)), Model: model,
			}
			for _, a := range found {
				ao := anomalyOutput{Index: a.Index, Value: a.Value, Expected: a.Expected, Score: a.Score}
				if a.Index < len(series.Times) {
					ao.Time = series.Times[a.Index].UTC().Format(time.RFC3339)
				}
				out.Anomalies = append(out.Anomalies, ao)
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), anomaliesJSON(out))
			}
			return printAnomalies(cmd.OutOrStdout(), out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&input, "input", "", "CSV file with a time column and value column(s)")
	f.StringVar(&column, "column", "", `value column (default "value", or the only non-time column)`)
	f.StringVar(&method, "method", "residual", "residual (ARIMA one-step errors) or shesd (seasonal hybrid ESD)")
	f.IntVar(&period, "period", 0, "seasonal period m (residual: allows seasonal models, 0: non-seasonal; shesd: required, >= 2)")
	f.StringVar(&direction, "direction", "both", "both, up (only values above the expectation) or down")
	f.Float64Var(&threshold, "threshold", 4, "robust z-score above which a point is anomalous (residual only)")
	f.Float64Var(&maxAnomalies, "max-anomalies", 0, "largest share of points flagged (0: 0.01 for residual, 0.02 for shesd)")
	f.Float64Var(&alpha, "alpha", 0.05, "significance level of each ESD step (shesd only)")
	f.IntVar(&window, "window", 0, "test pieces of this many points separately, for a drifting level (shesd only; 0: whole series)")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func parseDirection(s string) (mlforecast.Direction, error) {
	switch s {
	case "both":
		return mlforecast.DirectionBoth, nil
	case "up":
		return mlforecast.DirectionUp, nil
	case "down":
		return mlforecast.DirectionDown, nil
	}
	return 0, fmt.Errorf("--direction: must be both, up or down, got %q", s)
}

// flagError prefixes an invalid-option error with the flag that sets the
// field it names.
func flagError(err error) error {
	var oe *mlforecast.OptionError
	if errors.As(err, &oe) {
		if flag, ok := anomalyFlags[oe.Field]; ok {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	return err
}

// anomaliesJSON builds the JSON form, with non-finite numbers, which JSON
// cannot carry, as null.
func anomaliesJSON(o anomaliesOutput) any {
	fix := func(x float64) any {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	}
	list := make([]map[string]any, 0, len(o.Anomalies))
	for _, a := range o.Anomalies {
		m := map[string]any{"index": a.Index, "value": fix(a.Value), "expected": fix(a.Expected), "score": fix(a.Score)}
		if a.Time != "" {
			m["time"] = a.Time
		}
		list = append(list, m)
	}
	m := map[string]any{
		"input": o.Input, "column": o.Column, "points": o.Points, "method": o.Method, "period": o.Period,
		"anomalies": list,
	}
	if s := o.Model; s != nil {
		m["model"] = s.String()
		m["order"] = [3]int{s.P, s.D, s.Q}
		var seasonal *[4]int
		if s.Period > 1 {
			seasonal = &[4]int{s.SP, s.SD, s.SQ, s.Period}
		}
		m["seasonal"] = seasonal
	}
	return m
}

func printAnomalies(w io.Writer, o anomaliesOutput) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tVALUE\tEXPECTED\tSCORE")
	for _, a := range o.Anomalies {
		t := a.Time
		if t == "" {
			t = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%.6g\t%.6g\t%.2f\n", a.Index, t, a.Value, a.Expected, a.Score)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	how := fmt.Sprintf("seasonal hybrid ESD, period %d", o.Period)
	if o.Model != nil {
		how = "residuals of " + o.Model.String()
	}
	_, err := fmt.Fprintf(w, "%d anomalies in %d points of %s (%s); %s\n", len(o.Anomalies), o.Points, o.Column, o.Input, how)
	return err
}
