package main

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/tidewatch/tidewatch/mlforecast"
)

// forecastOutput is `tidewatch forecast -o json`.
type forecastOutput struct {
	Input    string             `json:"input"`
	Column   string             `json:"column"`
	Points   int                `json:"points"`
	Order    [3]int             `json:"order"`
	Seasonal *[4]int            `json:"seasonal"`
	Constant bool               `json:"constant"`
	Params   map[string]float64 `json:"params"`
	StdErr   map[string]float64 `json:"stdErr"`
	LogLik   float64            `json:"loglik"`
	AIC      float64            `json:"aic"`
	AICc     float64            `json:"aicc"`
	BIC      float64            `json:"bic"`
	Level    float64            `json:"level"`
	Forecast []float64          `json:"forecast"`
	Lower    []float64          `json:"lower"`
	Upper    []float64          `json:"upper"`
	Times    []string           `json:"times,omitempty"`
	Models   int                `json:"modelsTried,omitempty"`
}

func newForecastCommand() *cobra.Command {
	var (
		input, column, order, seasonal, plotPath, output string
		auto, constant                                   bool
		horizon, period                                  int
		level                                            float64
	)
	cmd := &cobra.Command{
		Use:   "forecast --input FILE.csv --horizon H",
		Short: "Fit a (seasonal) ARIMA model to a series and forecast it",
		Long: `Fit a (seasonal) ARIMA model to one column of a CSV file by exact maximum likelihood,
and forecast H steps with prediction intervals. Give the order with --order p,d,q (and
--seasonal P,D,Q,m), or let --auto choose it (KPSS and seasonal-strength tests, stepwise AICc
search; --period m allows seasonal models).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return errors.New("--input: required")
			}
			if horizon < 1 {
				return fmt.Errorf("--horizon: must be >= 1, got %d", horizon)
			}
			if !(level > 0 && level < 1) {
				return fmt.Errorf("--level: must be between 0 and 1, got %v", level)
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("-o: must be table or json, got %q", output)
			}
			if auto == (order != "") {
				return errors.New("give either --order p,d,q or --auto")
			}
			series, err := mlforecast.ReadCSVFile(input, mlforecast.CSVOptions{ValueColumn: column})
			if err != nil {
				return err
			}
			cmd.SilenceUsage = true
			var model *mlforecast.Model
			models := 0
			if auto {
				if seasonal != "" {
					return errors.New("--seasonal: not with --auto (use --period)")
				}
				opts := mlforecast.DefaultAutoOptions()
				opts.Period = period
				res, err := mlforecast.Auto(series.Values, opts)
				if err != nil {
					return err
				}
				model, models = res.Model, len(res.Log)
			} else {
				spec, err := parseOrder(order, seasonal)
				if err != nil {
					return err
				}
				spec.Constant = constant
				if model, err = mlforecast.Fit(series.Values, spec, nil); err != nil {
					return err
				}
			}
			fc, err := model.Forecast(horizon, level)
			if err != nil {
				return err
			}
			out := forecastOutput{
				Input: input, Column: series.Name, Points: series.Len(), Constant: model.Spec.Constant,
				Order:  [3]int{model.Spec.P, model.Spec.D, model.Spec.Q},
				Params: map[string]float64{}, StdErr: map[string]float64{},
				LogLik: model.LogLik, AIC: model.AIC, AICc: model.AICc, BIC: model.BIC,
				Level: level, Forecast: fc.Mean, Lower: fc.Lower, Upper: fc.Upper, Models: models,
			}
			if s := model.Spec; s.Period > 1 {
				out.Seasonal = &[4]int{s.SP, s.SD, s.SQ, s.Period}
			}
			for _, p := range model.Params {
				out.Params[p.Name] = p.Value
				if !math.IsNaN(p.StdErr) {
					out.StdErr[p.Name] = p.StdErr
				}
			}
			if step := series.Step(); step > 0 && len(series.Times) > 0 {
				last := series.Times[len(series.Times)-1]
				for i := range horizon {
					out.Times = append(out.Times, last.Add(step*time.Duration(i+1)).UTC().Format("2006-01-02T15:04:05Z07:00"))
				}
			}
			if plotPath != "" {
				if err := plotForecast(plotPath, series.Values, fc, model.Spec.String()); err != nil {
					return fmt.Errorf("--plot: %w", err)
				}
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), sanitizeJSON(out))
			}
			return printForecast(cmd.OutOrStdout(), out, model)
		},
	}
	f := cmd.Flags()
	f.StringVar(&input, "input", "", "CSV file with a time column and value column(s)")
	f.StringVar(&column, "column", "", `value column (default "value", or the only non-time column)`)
	f.StringVar(&order, "order", "", "p,d,q")
	f.StringVar(&seasonal, "seasonal", "", "P,D,Q,m")
	f.BoolVar(&constant, "constant", false, "include a mean (d+D=0) or drift (d+D=1)")
	f.BoolVar(&auto, "auto", false, "choose the order automatically")
	f.IntVar(&period, "period", 0, "seasonal period for --auto (0: non-seasonal)")
	f.IntVar(&horizon, "horizon", 0, "steps to forecast")
	f.Float64Var(&level, "level", 0.95, "prediction interval coverage")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.StringVar(&plotPath, "plot", "", "write a PNG of the history, forecast and interval")
	return cmd
}

// parseOrder reads "p,d,q" and optional "P,D,Q,m".
func parseOrder(order, seasonal string) (mlforecast.Spec, error) {
	ints := func(flag, s string, n int) ([]int, error) {
		parts := strings.Split(s, ",")
		if len(parts) != n {
			return nil, fmt.Errorf("%s: want %d comma-separated integers, got %q", flag, n, s)
		}
		out := make([]int, n)
		for i, p := range parts {
			v, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || v < 0 {
				return nil, fmt.Errorf("%s: %q is not a non-negative integer", flag, p)
			}
			out[i] = v
		}
		return out, nil
	}
	o, err := ints("--order", order, 3)
	if err != nil {
		return mlforecast.Spec{}, err
	}
	spec := mlforecast.ARIMA(o[0], o[1], o[2])
	if seasonal != "" {
		s, err := ints("--seasonal", seasonal, 4)
		if err != nil {
			return mlforecast.Spec{}, err
		}
		spec = mlforecast.SARIMA(o[0], o[1], o[2], s[0], s[1], s[2], s[3])
	}
	if err := spec.Validate(); err != nil {
		return mlforecast.Spec{}, err
	}
	return spec, nil
}

// sanitizeJSON replaces non-finite numbers, which JSON cannot carry, by nil.
func sanitizeJSON(o forecastOutput) any {
	fix := func(x float64) any {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	}
	m := map[string]any{
		"input": o.Input, "column": o.Column, "points": o.Points, "order": o.Order, "seasonal": o.Seasonal,
		"constant": o.Constant, "params": o.Params, "stdErr": o.StdErr, "loglik": fix(o.LogLik), "aic": fix(o.AIC),
		"aicc": fix(o.AICc), "bic": fix(o.BIC), "level": o.Level, "forecast": o.Forecast, "lower": o.Lower, "upper": o.Upper,
	}
	if o.Times != nil {
		m["times"] = o.Times
	}
	if o.Models > 0 {
		m["modelsTried"] = o.Models
	}
	return m
}

func printForecast(w io.Writer, o forecastOutput, m *mlforecast.Model) error {
	fmt.Fprintf(w, "model: %s on %d points of %s (%s)\n", m.Spec, o.Points, o.Column, o.Input)
	fmt.Fprintf(w, "loglik %.3f  AIC %.3f  AICc %.3f  BIC %.3f\n\n", o.LogLik, o.AIC, o.AICc, o.BIC)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARAM\tVALUE\tSTD ERR")
	for _, p := range m.Params {
		fmt.Fprintf(tw, "%s\t%.6g\t%.3g\n", p.Name, p.Value, p.StdErr)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "STEP\tTIME\tFORECAST\tLOWER %g%%\tUPPER %g%%\n", o.Level*100, o.Level*100)
	for i := range o.Forecast {
		t := "-"
		if i < len(o.Times) {
			t = o.Times[i]
		}
		fmt.Fprintf(tw, "%d\t%s\t%.6g\t%.6g\t%.6g\n", i+1, t, o.Forecast[i], o.Lower[i], o.Upper[i])
	}
	return tw.Flush()
}

// plotForecast draws the last part of the history, the forecast and its
// interval into a PNG.
func plotForecast(path string, y []float64, fc *mlforecast.Forecast, title string) error {
	h := len(fc.Mean)
	show := min(len(y), max(4*h, 200))
	start := len(y) - show
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	hist := make(plotter.XYs, 0, show)
	for i := start; i < len(y); i++ {
		if !math.IsNaN(y[i]) {
			hist = append(hist, plotter.XY{X: float64(i - len(y) + 1), Y: y[i]})
		}
	}
	mean, band := make(plotter.XYs, h), make(plotter.XYs, 0, 2*h)
	for i := range h {
		mean[i] = plotter.XY{X: float64(i + 1), Y: fc.Mean[i]}
		band = append(band, plotter.XY{X: float64(i + 1), Y: fc.Upper[i]})
	}
	for i := h - 1; i >= 0; i-- {
		band = append(band, plotter.XY{X: float64(i + 1), Y: fc.Lower[i]})
	}
	poly, err := plotter.NewPolygon(band)
	if err != nil {
		return err
	}
	poly.Color = color.NRGBA{R: 120, G: 160, B: 230, A: 90}
	poly.LineStyle.Width = 0
	hl, err := plotter.NewLine(hist)
	if err != nil {
		return err
	}
	ml, err := plotter.NewLine(mean)
	if err != nil {
		return err
	}
	ml.Color = color.RGBA{R: 20, G: 60, B: 200, A: 255}
	ml.Width = vg.Points(1.5)
	p.Add(poly, hl, ml)
	p.Legend.Add("history", hl)
	p.Legend.Add("forecast", ml)
	p.Legend.Add(fmt.Sprintf("%g%% interval", fc.Level*100), poly)
	return p.Save(9*vg.Inch, 4*vg.Inch, path)
}
