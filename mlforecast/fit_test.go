package mlforecast

import (
	"errors"
	"math"
	"testing"
)

func TestFitErrors(t *testing.T) {
	noise := simulateSARIMA(1, 300, ARIMA(0, 0, 0), coeffs{}, 1)
	inf := append([]float64(nil), noise...)
	inf[17] = math.Inf(1)
	constant := make([]float64, 100)
	for i := range constant {
		constant[i] = 3
	}
	trend := make([]float64, 100)
	for i := range trend {
		trend[i] = 2 * float64(i)
	}
	allNaN := make([]float64, 100)
	for i := range allNaN {
		allNaN[i] = math.NaN()
	}
	tests := []struct {
		name string
		y    []float64
		spec Spec
		opts *FitOptions
		want error
		as   func(error) bool
	}{
		{"negative p", noise, ARIMA(-1, 0, 0), nil, ErrBadOrder, func(e error) bool {
			var oe *OrderError
			return errors.As(e, &oe) && oe.Field == "p"
		}},
		{"d too large", noise, ARIMA(0, 3, 0), nil, ErrBadOrder, nil},
		{"seasonal without period", noise, Spec{SP: 1}, nil, ErrBadOrder, nil},
		{"constant with d+D=2", noise, ARIMA(0, 2, 1).WithConstant(true), nil, ErrBadOrder, nil},
		{"period too large", noise, SARIMA(0, 0, 0, 1, 0, 0, MaxPeriod+1), nil, ErrBadOrder, nil},
		{"too short", noise[:10], ARIMA(2, 1, 2), nil, ErrSeriesTooShort, func(e error) bool {
			var te *TooShortError
			return errors.As(e, &te) && te.Have == 10 && te.Need > 10
		}},
		{"too short for the season", noise[:60], SARIMA(0, 0, 0, 0, 1, 1, 48), nil, ErrSeriesTooShort, nil},
		{"all missing", allNaN, ARIMA(1, 0, 0), nil, ErrSeriesTooShort, nil},
		{"constant", constant, ARIMA(1, 0, 0).WithConstant(true), nil, ErrConstantSeries, nil},
		{"linear trend differenced", trend, ARIMA(0, 1, 1), nil, ErrConstantSeries, nil},
		{"infinite value", inf, ARIMA(1, 0, 0), nil, ErrNonFinite, func(e error) bool {
			var ne *NonFiniteError
			return errors.As(e, &ne) && ne.Index == 17
		}},
		{"bad method", noise, ARIMA(1, 0, 0), &FitOptions{Method: 9}, ErrInvalidOptions, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fit(tc.y, tc.spec, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.as != nil && !tc.as(err) {
				t.Fatalf("err %v lacks the expected details", err)
			}
		})
	}
}

// Simulated models are recovered within a few standard errors, and the
// reported standard errors are of the right size.
func TestFitRecoversSimulatedModels(t *testing.T) {
	cases := []struct {
		spec Spec
		c    coeffs
		n    int
	}{
		{ARIMA(1, 0, 1).WithConstant(true), coeffs{mean: 10, ar: []float64{0.6}, ma: []float64{0.3}}, 2000},
		{ARIMA(2, 1, 1), coeffs{ar: []float64{0.5, -0.3}, ma: []float64{0.4}}, 2000},
		{SARIMA(1, 0, 0, 0, 1, 1, 12), coeffs{ar: []float64{0.5}, sma: []float64{-0.6}}, 1500},
	}
	for i, tc := range cases {
		t.Run(tc.spec.String(), func(t *testing.T) {
			y := simulateSARIMA(uint64(10+i), tc.n, tc.spec, tc.c, 2)
			m, err := Fit(y, tc.spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.spec.pack(tc.c)
			for j, p := range m.Params[:len(want)] {
				if math.IsNaN(p.StdErr) || p.StdErr <= 0 || p.StdErr > 1+math.Abs(p.Value) {
					t.Errorf("%s: implausible standard error %v", p.Name, p.StdErr)
				}
				if d := math.Abs(p.Value - want[j]); d > 4*p.StdErr {
					t.Errorf("%s = %.4f ± %.4f, true %.4f", p.Name, p.Value, p.StdErr, want[j])
				}
			}
			if s2 := m.Sigma2; math.Abs(s2-4) > 0.5 {
				t.Errorf("σ² = %v, true 4", s2)
			}
			k := float64(tc.spec.numParams())
			n := float64(m.NObs)
			if math.Abs(m.AIC-(-2*m.LogLik+2*k)) > 1e-9 || math.Abs(m.BIC-(-2*m.LogLik+k*math.Log(n))) > 1e-9 ||
				math.Abs(m.AICc-(m.AIC+2*k*(k+1)/(n-k-1))) > 1e-9 {
				t.Errorf("information criteria inconsistent: %+v", m)
			}
			if m.NObs != tc.n-tc.spec.diffOrder() {
				t.Errorf("NObs = %d, want %d", m.NObs, tc.n-tc.spec.diffOrder())
			}
			if !m.Converged {
				t.Error("not converged")
			}
		})
	}
}

// Fit maximises LogLik: no nearby point is better.
func TestFitIsLocalMaximum(t *testing.T) {
	y := simulateSARIMA(3, 800, ARIMA(1, 1, 1), coeffs{ar: []float64{0.4}, ma: []float64{-0.5}}, 1)
	m, err := Fit(y, ARIMA(1, 1, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	best, err := LogLik(y, m.Spec, []float64{m.AR[0], m.MA[0]}, m.Sigma2)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(best-m.LogLik) > 1e-6 {
		t.Fatalf("LogLik at the estimate %.8f, model says %.8f", best, m.LogLik)
	}
	for _, d := range [][3]float64{{1e-3, 0, 0}, {-1e-3, 0, 0}, {0, 1e-3, 0}, {0, -1e-3, 0}, {0, 0, 0.01}, {0, 0, -0.01}} {
		ll, _ := LogLik(y, m.Spec, []float64{m.AR[0] + d[0], m.MA[0] + d[1]}, m.Sigma2*(1+d[2]))
		if ll > best+1e-6 {
			t.Errorf("perturbation %v improves the likelihood: %.6f > %.6f", d, ll, best)
		}
	}
}

func TestMissingValues(t *testing.T) {
	y := simulateSARIMA(4, 1000, ARIMA(1, 1, 1), coeffs{ar: []float64{0.6}, ma: []float64{-0.3}}, 1)
	full, err := Fit(y, ARIMA(1, 1, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	gappy := append([]float64(nil), y...)
	for i := 50; i < len(gappy); i += 37 {
		gappy[i] = math.NaN()
	}
	gappy[len(gappy)-1] = math.NaN()
	m, err := Fit(gappy, ARIMA(1, 1, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m.AR[0]-full.AR[0]) > 0.1 || math.Abs(m.MA[0]-full.MA[0]) > 0.1 {
		t.Errorf("with gaps AR %v MA %v, without %v %v", m.AR, m.MA, full.AR, full.MA)
	}
	// One missing point hides two differences.
	if m.NObs >= full.NObs {
		t.Errorf("NObs %d not below %d", m.NObs, full.NObs)
	}
	r := m.Residuals()
	if !math.IsNaN(r[50]) || !math.IsNaN(r[51]) || math.IsNaN(r[52]) {
		t.Errorf("residuals around the gap: %v", r[49:53])
	}
	fc, err := m.Forecast(10, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range fc.Mean {
		if math.IsNaN(v) || math.IsNaN(fc.Upper[i]) || fc.Upper[i] <= fc.Lower[i] {
			t.Fatalf("forecast step %d: %v [%v, %v]", i, v, fc.Lower[i], fc.Upper[i])
		}
	}
	// The last value is missing: the first step is two steps past the
	// last observation, so its interval is wider than with the value.
	fcFull, _ := full.Forecast(10, 0.9)
	if fc.StdErr[0] <= fcFull.StdErr[0]*1.1 {
		t.Errorf("step-1 standard error %v after a missing last value, %v without", fc.StdErr[0], fcFull.StdErr[0])
	}
}

// Forecasts of known models: AR(1) with mean decays to the mean with the
// textbook variance; a random walk with drift is a line with √h bands.
func TestForecastKnownModels(t *testing.T) {
	y := simulateSARIMA(5, 3000, ARIMA(1, 0, 0).WithConstant(true), coeffs{mean: 5, ar: []float64{0.8}}, 1)
	m, err := Fit(y, ARIMA(1, 0, 0).WithConstant(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	fc, err := m.Forecast(50, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	phi, mu := m.AR[0], m.Mean
	last := y[len(y)-1]
	for h := 1; h <= 50; h++ {
		want := mu + math.Pow(phi, float64(h))*(last-mu)
		if math.Abs(fc.Mean[h-1]-want) > 1e-6 {
			t.Fatalf("h=%d mean %v, want %v", h, fc.Mean[h-1], want)
		}
		v := m.Sigma2 * (1 - math.Pow(phi, float64(2*h))) / (1 - phi*phi)
		if math.Abs(fc.StdErr[h-1]-math.Sqrt(v)) > 1e-6 {
			t.Fatalf("h=%d sd %v, want %v", h, fc.StdErr[h-1], math.Sqrt(v))
		}
		if z := (fc.Upper[h-1] - fc.Mean[h-1]) / fc.StdErr[h-1]; math.Abs(z-1.959964) > 1e-5 {
			t.Fatalf("95%% quantile %v", z)
		}
	}
	rw := simulateSARIMA(6, 500, ARIMA(0, 1, 0).WithConstant(true), coeffs{mean: 0.5}, 1)
	m, err = Fit(rw, ARIMA(0, 1, 0).WithConstant(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	fc, _ = m.Forecast(5, 0.8)
	for h := 1; h <= 5; h++ {
		if want := rw[len(rw)-1] + float64(h)*m.Mean; math.Abs(fc.Mean[h-1]-want) > 1e-9 {
			t.Errorf("random walk h=%d: %v, want %v", h, fc.Mean[h-1], want)
		}
		if want := math.Sqrt(float64(h) * m.Sigma2); math.Abs(fc.StdErr[h-1]-want) > 1e-9 {
			t.Errorf("random walk sd h=%d: %v, want %v", h, fc.StdErr[h-1], want)
		}
	}
	if _, err := m.Forecast(0, 0.9); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("h=0: %v", err)
	}
	if _, err := m.Forecast(3, 1); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("level=1: %v", err)
	}
}

// With the end-state covariance kept, the variance formula reduces to the
// ψ-weight sum when that covariance is the steady state σ²RRᵀ.
func TestForecastVarianceEndState(t *testing.T) {
	y := simulateSARIMA(7, 600, SARIMA(1, 1, 1, 0, 1, 1, 4), coeffs{ar: []float64{0.5}, ma: []float64{0.2}, sma: []float64{-0.5}}, 1)
	m, err := Fit(y, SARIMA(1, 1, 1, 0, 1, 1, 4), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.final.pNext = nil
	a, _ := m.Forecast(12, 0.9)
	r := m.ss.r
	P := make([]float64, r*r)
	for i := 0; i < r; i++ {
		for j := 0; j < r; j++ {
			P[i*r+j] = m.ss.rcoef(i) * m.ss.rcoef(j)
		}
	}
	m.final.pNext = P
	b, _ := m.Forecast(12, 0.9)
	for h := range a.StdErr {
		if math.Abs(a.StdErr[h]-b.StdErr[h]) > 1e-9*a.StdErr[h] {
			t.Errorf("h=%d: ψ-weights %v, end-state form %v", h+1, a.StdErr[h], b.StdErr[h])
		}
	}
}

func TestIntercept(t *testing.T) {
	m := &Model{Mean: 10, AR: []float64{0.5}, SAR: []float64{0.2}}
	if got := m.Intercept(); math.Abs(got-10*0.5*0.8) > 1e-12 {
		t.Errorf("intercept %v", got)
	}
}

// FuzzFit feeds arbitrary series to Fit, Forecast and the detectors: they
// return errors, never panic.
func FuzzFit(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}, uint8(1), uint8(1), uint8(1))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff"), uint8(2), uint8(0), uint8(2))
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice over the lazy dog"), uint8(0), uint8(1), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, p, d, q uint8) {
		// Two bytes per value; 0xFFFF is missing, 0xFFFE infinite, and the
		// high bit of the first byte scales the value to the extremes.
		var y []float64
		for i := 0; i+1 < len(data) && len(y) < 400; i += 2 {
			u := uint16(data[i])<<8 | uint16(data[i+1])
			switch {
			case u == 0xFFFF:
				y = append(y, math.NaN())
			case u == 0xFFFE:
				y = append(y, math.Inf(1))
			case u&0x8000 != 0:
				y = append(y, float64(u&0x7FFF)*1e150)
			default:
				y = append(y, float64(u)-16000)
			}
		}
		spec := Spec{P: int(p % 4), D: int(d % 3), Q: int(q % 4)}
		if q%7 == 6 {
			spec = SARIMA(int(p%2), 0, int(q%2), 1, int(d%2), 1, 4)
		}
		spec.Constant = p%5 == 0 && spec.D+spec.SD <= 1
		m, err := Fit(y, spec, nil)
		if err == nil {
			if math.IsNaN(m.LogLik) || math.IsInf(m.LogLik, 0) {
				t.Fatalf("non-finite loglik %v", m.LogLik)
			}
			if _, err := m.Forecast(5, 0.9); err != nil {
				t.Fatal(err)
			}
			_ = m.Residuals()
			_ = m.Fitted()
		}
		_, _ = DetectSHESD(y, ESDOptions{Period: int(q % 5)})
		if len(y) < 120 {
			_, _ = Auto(y, AutoOptions{MaxP: 2, MaxQ: 2, MaxModels: 6})
		}
	})
}
