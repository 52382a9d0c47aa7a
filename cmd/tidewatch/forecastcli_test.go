package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSeries writes a seasonal series with noise-free structure as CSV.
func writeSeries(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp,value,other\n")
	for i := range n {
		v := 100 + 10*math.Sin(2*math.Pi*float64(i)/24) + float64(i%7)
		fmt.Fprintf(&b, "2024-05-01 %02d:%02d:00,%.3f,1\n", (i/60)%24, i%60, v)
	}
	p := filepath.Join(t.TempDir(), "series.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestForecastCLI(t *testing.T) {
	in := writeSeries(t, 600)
	png := filepath.Join(t.TempDir(), "fc.png")
	out, err := runCLI(t, "forecast", "--input", in, "--column", "value", "--order", "1,0,1", "--seasonal", "0,1,1,24",
		"--horizon", "12", "-o", "json", "--plot", png)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, k := range []string{"order", "seasonal", "params", "loglik", "aic", "forecast", "lower", "upper"} {
		if _, ok := res[k]; !ok {
			t.Errorf("json lacks %q", k)
		}
	}
	fc, lo, hi := res["forecast"].([]any), res["lower"].([]any), res["upper"].([]any)
	if len(fc) != 12 || len(lo) != 12 || len(hi) != 12 {
		t.Fatalf("forecast lengths %d %d %d", len(fc), len(lo), len(hi))
	}
	for i := range fc {
		if !(lo[i].(float64) <= fc[i].(float64) && fc[i].(float64) <= hi[i].(float64)) {
			t.Errorf("step %d: %v not within [%v, %v]", i+1, fc[i], lo[i], hi[i])
		}
	}
	if fi, err := os.Stat(png); err != nil || fi.Size() < 1000 {
		t.Errorf("plot: %v", err)
	}
	if out, err := runCLI(t, "forecast", "--input", in, "--column", "value", "--auto", "--horizon", "3"); err != nil || !strings.Contains(out, "FORECAST") {
		t.Errorf("auto table: %v\n%s", err, out)
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--horizon", "3", "--order", "1,0,1"}, "--input"},
		{[]string{"--input", in, "--column", "value", "--order", "1,0", "--horizon", "3"}, "--order: want 3"},
		{[]string{"--input", in, "--column", "value", "--order", "1,0,x", "--horizon", "3"}, `"x" is not`},
		{[]string{"--input", in, "--column", "value", "--order", "1,0,1", "--horizon", "0"}, "--horizon"},
		{[]string{"--input", in, "--column", "value", "--horizon", "3"}, "either --order"},
		{[]string{"--input", in, "--column", "nope", "--order", "1,0,1", "--horizon", "3"}, "nope"},
		{[]string{"--input", in, "--column", "value", "--order", "1,0,1", "--horizon", "3", "--level", "2"}, "--level"},
	} {
		if _, err := runCLI(t, append([]string{"forecast"}, bad.args...)...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("forecast %v: %v, want an error containing %q", bad.args, err, bad.want)
		}
	}
}
