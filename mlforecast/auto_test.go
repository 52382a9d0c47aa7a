package mlforecast

import (
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

func TestKPSS(t *testing.T) {
	noise := simulateSARIMA(21, 1000, ARIMA(0, 0, 0), coeffs{}, 1)
	walk := simulateSARIMA(22, 1000, ARIMA(0, 1, 0), coeffs{}, 1)
	k, err := KPSS(noise, -1, 0.05)
	if err != nil || k.Reject || k.Lags != int(3*math.Sqrt(1000)/13) {
		t.Errorf("white noise: %+v, %v", k, err)
	}
	k, err = KPSS(walk, -1, 0.05)
	if err != nil || !k.Reject {
		t.Errorf("random walk: %+v, %v", k, err)
	}
	if _, err := KPSS(noise, -1, 0.2); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("bad alpha: %v", err)
	}
}

func TestSeasonalStrengthAndDecompose(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, m := 480, 24
	seasonal := make([]float64, n)
	noise := make([]float64, n)
	for i := range seasonal {
		e := rng.NormFloat64()
		seasonal[i] = 10*math.Sin(2*math.Pi*float64(i)/float64(m)) + 0.01*float64(i) + e
		noise[i] = e
	}
	fs, err := SeasonalStrength(seasonal, m)
	if err != nil || fs < 0.9 {
		t.Errorf("strong season: %v, %v", fs, err)
	}
	fs, err = SeasonalStrength(noise, m)
	if err != nil || fs > 0.3 {
		t.Errorf("noise: %v, %v", fs, err)
	}
	d, err := Decompose(seasonal, m, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := m; i < n-m; i++ {
		if s := d.Trend[i] + d.Seasonal[i] + d.Remainder[i]; math.Abs(s-seasonal[i]) > 1e-9 {
			t.Fatalf("components do not add up at %d", i)
		}
		if want := 10 * math.Sin(2*math.Pi*float64(i)/float64(m)); math.Abs(d.Seasonal[i]-want) > 1.5 {
			t.Fatalf("seasonal %d: %v, want about %v", i, d.Seasonal[i], want)
		}
	}
	if _, err := Decompose(seasonal[:30], m, false); !errors.Is(err, ErrSeriesTooShort) {
		t.Errorf("short series: %v", err)
	}
}

func TestAutoOptionsValidate(t *testing.T) {
	two := 2
	for _, o := range []AutoOptions{
		{MaxP: -1}, {Period: -2}, {MaxD: 3}, {SD: &two, Period: 12}, {KPSSAlpha: 0.2}, {MinRoot: 0.5},
		{Fit: FitOptions{MaxIterations: -1}},
	} {
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if err := (AutoOptions{}).Validate(); err != nil {
		t.Errorf("zero value: %v", err)
	}
}

func TestAutoSimulated(t *testing.T) {
	y := simulateSARIMA(31, 1500, ARIMA(1, 1, 1), coeffs{ar: []float64{0.6}, ma: []float64{-0.3}}, 1)
	res, err := Auto(y, AutoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Model.Spec
	if s.D != 1 || s.SD != 0 || len(res.KPSS) != 2 || !res.KPSS[0].Reject || res.KPSS[1].Reject {
		t.Errorf("differencing: %v, tests %+v", s, res.KPSS)
	}
	if math.Abs(res.Model.LogLik) == 0 || len(res.Log) < 5 {
		t.Errorf("log %v", res.Log)
	}
	for _, c := range res.Log {
		if c.AICc < res.Model.AICc-1e-6 {
			t.Errorf("logged %v has AICc %.3f below the chosen %.3f", c.Spec, c.AICc, res.Model.AICc)
		}
	}
	if math.IsNaN(res.Model.Params[0].StdErr) {
		t.Error("chosen model has no standard errors")
	}

	// Seasonal: D chosen by seasonal strength.
	ys := simulateSARIMA(32, 600, SARIMA(1, 0, 0, 0, 1, 1, 12), coeffs{ar: []float64{0.5}, sma: []float64{-0.5}}, 1)
	for i := range ys {
		ys[i] += 20 * math.Sin(2*math.Pi*float64(i)/12)
	}
	res, err = Auto(ys, AutoOptions{Period: 12})
	if err != nil {
		t.Fatal(err)
	}
	if res.Model.Spec.SD != 1 || !(res.SeasonalStrength > 0.64) {
		t.Errorf("seasonal: chose %v with strength %v", res.Model.Spec, res.SeasonalStrength)
	}
}

// nabSeries lists the NAB files: every 12th under the race detector,
// which makes this numeric code about ten times slower.
func nabSeries(t testing.TB) []string {
	all := allNABSeries(t)
	if !raceEnabled {
		return all
	}
	var some []string
	for i := 0; i < len(all); i += 12 {
		some = append(some, all[i])
	}
	return some
}

func allNABSeries(t testing.TB) []string {
	needShared(t)
	files, err := filepath.Glob(filepath.Join(sharedData, "nab", "*", "*.csv"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no NAB files: %v", err)
	}
	var rel []string
	for _, f := range files {
		r, _ := filepath.Rel(filepath.Join(sharedData, "nab"), f)
		rel = append(rel, filepath.ToSlash(r))
	}
	slices.Sort(rel)
	return rel
}

// Acceptance criterion: on the NAB series, the automatically selected
// models forecast the held-out points no worse than a fixed ARIMA(2,1,2).
// Per series the comparison of two forecasts of 48 points is close to a
// coin toss, so it is logged; the assertion is on the mean MASE over the
// series. Protocol: the last 48 points are held out, the 4,000 before
// them (or all) are the training data, 5-minute series are searched
// without a seasonal term and the hourly Twitter sums with m = 24.
func TestAutoBeatsFixedARIMA212OnNAB(t *testing.T) {
	if raceEnabled {
		// Some 20 times slower under the race detector; Auto's code paths
		// are raced by TestAutoSimulated and the anomaly tests.
		t.Skip("accuracy sweep skipped under -race")
	}
	type set struct {
		name   string
		files  []string
		agg    int
		period int
		train  int
		hold   int
	}
	var tweets []string
	for _, f := range allNABSeries(t) {
		if filepath.Dir(f) == "realTweets" {
			tweets = append(tweets, f)
		}
	}
	sets := []set{
		{"5-minute, non-seasonal", nabSeries(t), 1, 0, 4000, 48},
		{"hourly Twitter sums, m=24", tweets, 12, 24, 1000, 24},
	}
	for _, st := range sets {
		t.Run(st.name, func(t *testing.T) {
			var sumAuto, sumFixed float64
			worse, n := 0, 0
			for _, f := range st.files {
				y := loadNAB(t, f).Values
				if st.agg > 1 {
					y = blockSums(y, st.agg)
				}
				end := len(y) - st.hold
				start := max(0, end-st.train)
				train, test := y[start:end], y[end:]
				res, err := Auto(train, AutoOptions{Period: st.period})
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				fixed, err := Fit(train, ARIMA(2, 1, 2), &FitOptions{SkipStdErrors: true})
				if err != nil {
					t.Fatalf("%s: ARIMA(2,1,2): %v", f, err)
				}
				fa, _ := res.Model.Forecast(st.hold, 0.95)
				fb, _ := fixed.Forecast(st.hold, 0.95)
				mp := max(1, st.period)
				a, b := mase(train, test, fa.Mean, mp), mase(train, test, fb.Mean, mp)
				sumAuto += a
				sumFixed += b
				n++
				note := ""
				if a > b {
					worse++
					note = "  (auto worse)"
				}
				t.Logf("%-55s %-30s %2d models  MASE auto %.4f  ARIMA(2,1,2) %.4f%s", f, res.Model.Spec, len(res.Log), a, b, note)
			}
			t.Logf("%d series: mean MASE auto %.4f, ARIMA(2,1,2) %.4f; auto worse on %d", n, sumAuto/float64(n), sumFixed/float64(n), worse)
			if sumAuto > sumFixed {
				t.Errorf("mean MASE of the selected models %.4f exceeds ARIMA(2,1,2)'s %.4f", sumAuto/float64(n), sumFixed/float64(n))
			}
		})
	}
}
