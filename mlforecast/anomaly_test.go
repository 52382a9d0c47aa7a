package mlforecast

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A seasonal series with injected spikes and a dip: both detectors find
// them and flag little else.
func TestDetectorsFindInjectedAnomalies(t *testing.T) {
	m := 24
	y := simulateSARIMA(41, 24*30, ARIMA(1, 0, 0).WithConstant(true), coeffs{mean: 100, ar: []float64{0.5}}, 2)
	for i := range y {
		y[i] += 30 * math.Sin(2*math.Pi*float64(i)/float64(m))
	}
	injected := map[int]float64{150: 40, 333: -35, 600: 50}
	for i, d := range injected {
		y[i] += d
	}
	y[400] = math.NaN()
	check := func(name string, an []Anomaly) {
		found := 0
		for _, a := range an {
			if d, ok := injected[a.Index]; ok {
				found++
				if math.Abs(a.Value-a.Expected-d) > 15 {
					t.Errorf("%s: at %d value %v expected %v, injected %+v", name, a.Index, a.Value, a.Expected, d)
				}
			}
			if !(a.Score > 0) {
				t.Errorf("%s: score %v", name, a.Score)
			}
		}
		if found != len(injected) {
			t.Errorf("%s found %d of %d injected anomalies: %+v", name, found, len(injected), an)
		}
		if extra := len(an) - found; extra > 6 {
			t.Errorf("%s flagged %d other points", name, extra)
		}
	}
	spec := SARIMA(1, 0, 0, 0, 1, 1, m)
	rr, err := DetectResiduals(y, ResidualOptions{Spec: &spec})
	if err != nil {
		t.Fatal(err)
	}
	check("residuals", rr.Anomalies)
	es, err := DetectSHESD(y, ESDOptions{Period: m})
	if err != nil {
		t.Fatal(err)
	}
	check("S-H-ESD", es)
	up, err := DetectSHESD(y, ESDOptions{Period: m, Direction: DirectionUp})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range up {
		if a.Value < a.Expected {
			t.Errorf("DirectionUp flagged a dip: %+v", a)
		}
	}
}

func TestDetectorOptions(t *testing.T) {
	y := simulateSARIMA(42, 200, ARIMA(0, 0, 0), coeffs{}, 1)
	for _, o := range []ESDOptions{{MaxAnomalies: 0.6}, {Alpha: 1}, {Window: -1}, {Period: -1}, {Direction: 7}} {
		if _, err := DetectSHESD(y, o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	bad := ARIMA(-1, 0, 0)
	for _, o := range []ResidualOptions{{Threshold: -1}, {MaxAnomalies: 2}, {Spec: &bad}} {
		if _, err := DetectResiduals(y, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := DetectSHESD(y[:5], ESDOptions{}); !errors.Is(err, ErrSeriesTooShort) {
		t.Errorf("short: %v", err)
	}
	y[3] = math.Inf(-1)
	if _, err := DetectSHESD(y, ESDOptions{}); !errors.Is(err, ErrNonFinite) {
		t.Errorf("inf: %v", err)
	}
}

// labelledWindows maps each labelled NAB window to the index range it covers.
func labelledWindows(t testing.TB, file string, s *Series) [][2]int {
	b, err := os.ReadFile(filepath.Join(sharedData, "nab", "combined_windows.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string][][2]string
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	var out [][2]int
	for _, w := range all[file] {
		lo, err1 := time.Parse("2006-01-02 15:04:05.999999", w[0])
		hi, err2 := time.Parse("2006-01-02 15:04:05.999999", w[1])
		if err1 != nil || err2 != nil {
			t.Fatalf("window %v: %v %v", w, err1, err2)
		}
		r := [2]int{-1, -1}
		for i, ts := range s.Times {
			if !ts.Before(lo) && !ts.After(hi) {
				if r[0] < 0 {
					r[0] = i
				}
				r[1] = i
			}
		}
		if r[0] >= 0 {
			out = append(out, r)
		}
	}
	return out
}

// score returns the windows with at least one detection and the
// detections outside every window.
func score(an []Anomaly, windows [][2]int) (detected, falseAlarms int) {
	hit := make([]bool, len(windows))
	for _, a := range an {
		inside := false
		for j, w := range windows {
			if a.Index >= w[0] && a.Index <= w[1] {
				hit[j], inside = true, true
			}
		}
		if !inside {
			falseAlarms++
		}
	}
	for _, h := range hit {
		if h {
			detected++
		}
	}
	return detected, falseAlarms
}

// The report figures: detection rate (labelled windows with at least one
// detection) and false alarms per 1,000 points of both detectors on every
// NAB series. Only sanity is asserted.
func TestAnomalyDetectionNAB(t *testing.T) {
	type tally struct{ windows, detected, falseAlarms, points int }
	var tr, te tally
	t.Logf("%-55s %6s %4s | %-26s %9s %8s | %4s %9s %8s", "series", "points", "win", "residual model", "detected", "FA/1000", "m", "detected", "FA/1000")
	for _, f := range nabSeries(t) {
		s := loadNAB(t, f)
		windows := labelledWindows(t, f, s)
		period := int(24 * time.Hour / s.Step())
		if len(s.Values) < 3*period {
			period = 0
		}
		rr, err := DetectResiduals(s.Values, ResidualOptions{Auto: AutoOptions{MaxP: 2, MaxQ: 2}})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		es, err := DetectSHESD(s.Values, ESDOptions{Period: period})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		n := len(s.Values)
		d1, f1 := score(rr.Anomalies, windows)
		d2, f2 := score(es, windows)
		for _, x := range []struct {
			t    *tally
			d, f int
		}{{&tr, d1, f1}, {&te, d2, f2}} {
			x.t.windows += len(windows)
			x.t.detected += x.d
			x.t.falseAlarms += x.f
			x.t.points += n
		}
		t.Logf("%-55s %6d %4d | %-26s %4d/%-4d %8.2f | %4d %4d/%-4d %8.2f", f, n, len(windows),
			rr.Model.Spec, d1, len(windows), 1000*float64(f1)/float64(n), period, d2, len(windows), 1000*float64(f2)/float64(n))
	}
	for _, x := range []struct {
		name string
		t    tally
	}{{"forecast residuals", tr}, {"seasonal hybrid ESD", te}} {
		rate := float64(x.t.detected) / float64(x.t.windows)
		fa := 1000 * float64(x.t.falseAlarms) / float64(x.t.points)
		t.Logf("%s: detection rate %.3f (%d/%d windows), %.2f false alarms per 1,000 points", x.name, rate, x.t.detected, x.t.windows, fa)
		if x.t.windows > 0 && !(rate > 0.5) {
			t.Errorf("%s: detection rate %.3f", x.name, rate)
		}
		if fa > 50 {
			t.Errorf("%s: %.1f false alarms per 1,000 points", x.name, fa)
		}
	}
}
