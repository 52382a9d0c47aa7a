package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// anomalyPeriod is the season of the test series: one day of hourly points.
const anomalyPeriod = 24

// injectedAnomalies are the deviations added to the test series, by index.
var injectedAnomalies = map[int]float64{100: 25, 250: -25, 400: 30}

// anomalyStart is the first timestamp of the test series.
var anomalyStart = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)

// writeAnomalySeries writes an hourly seasonal series with Gaussian noise
// (fixed seed) and the injected anomalies as CSV, with timestamps when
// withTimes.
func writeAnomalySeries(t *testing.T, n int, withTimes bool) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	var b strings.Builder
	if withTimes {
		b.WriteString("timestamp,value\n")
	} else {
		b.WriteString("value\n")
	}
	for i := range n {
		v := 100 + 10*math.Sin(2*math.Pi*float64(i)/anomalyPeriod) + 1.5*rng.NormFloat64() + injectedAnomalies[i]
		if withTimes {
			fmt.Fprintf(&b, "%s,", anomalyStart.Add(time.Duration(i)*time.Hour).Format(time.RFC3339))
		}
		fmt.Fprintf(&b, "%.4f\n", v)
	}
	p := filepath.Join(t.TempDir(), "series.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type anomaliesJSONOut struct {
	Input     string  `json:"input"`
	Column    string  `json:"column"`
	Points    int     `json:"points"`
	Method    string  `json:"method"`
	Period    int     `json:"period"`
	Model     string  `json:"model"`
	Order     *[3]int `json:"order"`
	Anomalies []struct {
		Index    int      `json:"index"`
		Time     *string  `json:"time"`
		Value    *float64 `json:"value"`
		Expected *float64 `json:"expected"`
		Score    *float64 `json:"score"`
	} `json:"anomalies"`
}

func runAnomaliesJSON(t *testing.T, args ...string) anomaliesJSONOut {
	t.Helper()
	out, err := runCLI(t, append([]string{"anomalies", "-o", "json"}, args...)...)
	if err != nil {
		t.Fatalf("anomalies %v: %v\n%s", args, err, out)
	}
	var res anomaliesJSONOut
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return res
}

func TestAnomaliesCLIFindsInjected(t *testing.T) {
	const n = 20 * anomalyPeriod
	in := writeAnomalySeries(t, n, true)
	for _, tc := range []struct {
		name string
		args []string
		want []int // injected indices that must be reported
		not  []int // injected indices that must not be
	}{
		{"residual", []string{"--period", "24"}, []int{100, 250, 400}, nil},
		{"residual non-seasonal", nil, []int{100, 250, 400}, nil},
		{"shesd", []string{"--method", "shesd", "--period", "24"}, []int{100, 250, 400}, nil},
		{"shesd up", []string{"--method", "shesd", "--period", "24", "--direction", "up"}, []int{100, 400}, []int{250}},
		{"residual down", []string{"--period", "24", "--direction", "down"}, []int{250}, []int{100, 400}},
		{"residual threshold", []string{"--period", "24", "--threshold", "15"}, []int{400}, []int{100, 250}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runAnomaliesJSON(t, append([]string{"--input", in}, tc.args...)...)
			if res.Input != in || res.Column != "value" || res.Points != n {
				t.Errorf("input %q column %q points %d", res.Input, res.Column, res.Points)
			}
			var got []int
			for _, a := range res.Anomalies {
				got = append(got, a.Index)
				if a.Value == nil || a.Expected == nil || a.Score == nil || !(*a.Score > 0) {
					t.Errorf("anomaly %d lacks value, expected or score: %+v", a.Index, a)
					continue
				}
				if d, ok := injectedAnomalies[a.Index]; ok && math.Abs(*a.Value-*a.Expected-d) > 10 {
					t.Errorf("at %d value %v expected %v, injected %+v", a.Index, *a.Value, *a.Expected, d)
				}
				wantTime := anomalyStart.Add(time.Duration(a.Index) * time.Hour).Format(time.RFC3339)
				if a.Time == nil || *a.Time != wantTime {
					t.Errorf("anomaly %d: time %v, want %s", a.Index, a.Time, wantTime)
				}
			}
			for _, i := range tc.want {
				if !slices.Contains(got, i) {
					t.Errorf("injected anomaly at %d not reported; got %v", i, got)
				}
			}
			for _, i := range tc.not {
				if slices.Contains(got, i) {
					t.Errorf("anomaly at %d reported against --direction or --threshold; got %v", i, got)
				}
			}
			// A spike may disturb the next one-step predictions, so allow a
			// few neighbours, but not a flood.
			if len(got) > len(tc.want)+3 {
				t.Errorf("%d anomalies reported: %v", len(got), got)
			}
		})
	}
}

func TestAnomaliesCLIJSON(t *testing.T) {
	in := writeAnomalySeries(t, 20*anomalyPeriod, true)
	out, err := runCLI(t, "anomalies", "--input", in, "--period", "24", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, k := range []string{"input", "column", "points", "method", "period", "anomalies", "model", "order", "seasonal"} {
		if _, ok := res[k]; !ok {
			t.Errorf("json lacks %q", k)
		}
	}
	if res["method"] != "residual" || res["period"] != 24.0 {
		t.Errorf("method %v period %v", res["method"], res["period"])
	}
	an, _ := res["anomalies"].([]any)
	if len(an) == 0 {
		t.Fatalf("no anomalies: %s", out)
	}
	for _, k := range []string{"index", "time", "value", "expected", "score"} {
		if _, ok := an[0].(map[string]any)[k]; !ok {
			t.Errorf("anomaly lacks %q: %v", k, an[0])
		}
	}

	// S-H-ESD has no model; a file without timestamps gives no times.
	plain := writeAnomalySeries(t, 20*anomalyPeriod, false)
	es := runAnomaliesJSON(t, "--input", plain, "--method", "shesd", "--period", "24")
	if es.Method != "shesd" || es.Model != "" || es.Order != nil {
		t.Errorf("shesd: method %q model %q order %v", es.Method, es.Model, es.Order)
	}
	if len(es.Anomalies) == 0 {
		t.Fatal("shesd: no anomalies without timestamps")
	}
	for _, a := range es.Anomalies {
		if a.Time != nil {
			t.Errorf("anomaly %d has time %q without timestamps in the file", a.Index, *a.Time)
		}
	}
}

func TestAnomaliesCLITable(t *testing.T) {
	in := writeAnomalySeries(t, 20*anomalyPeriod, true)
	out, err := runCLI(t, "anomalies", "--input", in, "--method", "shesd", "--period", "24")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "INDEX") || !strings.Contains(lines[0], "SCORE") {
		t.Errorf("header: %q", lines[0])
	}
	wantTime := anomalyStart.Add(250 * time.Hour).Format(time.RFC3339)
	if !slices.ContainsFunc(lines[1:], func(l string) bool {
		f := strings.Fields(l)
		return len(f) == 5 && f[0] == "250" && f[1] == wantTime
	}) {
		t.Errorf("no row for index 250 at %s:\n%s", wantTime, out)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, fmt.Sprintf("anomalies in %d points of value", 20*anomalyPeriod)) {
		t.Errorf("summary: %q", last)
	}
}

func TestAnomaliesCLIBadFlags(t *testing.T) {
	in := writeAnomalySeries(t, 20*anomalyPeriod, true)
	badCSV := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(badCSV, []byte("timestamp,value\n2024-05-01T00:00:00Z,1\n2024-05-01T01:00:00Z,abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--input: required"},
		{[]string{"--input", in, "--method", "stl"}, "--method"},
		{[]string{"--input", in, "--direction", "sideways"}, "--direction"},
		{[]string{"--input", in, "-o", "yaml"}, "-o"},
		{[]string{"--input", in, "--period", "-1"}, "--period"},
		{[]string{"--input", in, "--period", "6000"}, "--period"},
		{[]string{"--input", in, "--threshold", "0"}, "--threshold"},
		{[]string{"--input", in, "--threshold", "-2"}, "--threshold"},
		{[]string{"--input", in, "--max-anomalies", "1.5"}, "--max-anomalies"},
		{[]string{"--input", in, "--max-anomalies", "-0.1"}, "--max-anomalies"},
		{[]string{"--input", in, "--alpha", "0.01"}, "--alpha"},
		{[]string{"--input", in, "--window", "100"}, "--window"},
		{[]string{"--input", in, "--method", "shesd"}, "--period"},
		{[]string{"--input", in, "--method", "shesd", "--period", "1"}, "--period"},
		{[]string{"--input", in, "--method", "shesd", "--period", "24", "--threshold", "3"}, "--threshold"},
		{[]string{"--input", in, "--method", "shesd", "--period", "24", "--alpha", "1"}, "--alpha"},
		{[]string{"--input", in, "--method", "shesd", "--period", "24", "--alpha", "0"}, "--alpha"},
		{[]string{"--input", in, "--method", "shesd", "--period", "24", "--max-anomalies", "0.6"}, "--max-anomalies"},
		{[]string{"--input", in, "--method", "shesd", "--period", "24", "--window", "-5"}, "--window"},
		{[]string{"--input", in, "--column", "nope"}, "nope"},
		{[]string{"--input", filepath.Join(t.TempDir(), "missing.csv")}, "missing.csv"},
		{[]string{"--input", badCSV}, "line 3"},
	} {
		out, err := runCLI(t, append([]string{"anomalies"}, bad.args...)...)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("anomalies %v: %v, want an error containing %q\n%s", bad.args, err, bad.want, out)
		}
	}
}
