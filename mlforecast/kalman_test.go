package mlforecast

import (
	"math"
	"testing"
)

var armaCases = []struct {
	name string
	spec Spec
	c    coeffs
}{
	{"AR(1)", ARIMA(1, 0, 0), coeffs{ar: []float64{0.7}}},
	{"MA(2)", ARIMA(0, 0, 2), coeffs{ma: []float64{0.4, -0.3}}},
	{"ARMA(2,2)", ARIMA(2, 0, 2), coeffs{ar: []float64{0.5, 0.2}, ma: []float64{-0.3, 0.25}}},
	{"near-unit MA", ARIMA(1, 0, 1), coeffs{ar: []float64{0.3}, ma: []float64{-0.97}}},
	{"SARMA(1,1)(1,1)12", SARIMA(1, 0, 1, 1, 0, 1, 12), coeffs{ar: []float64{0.5}, ma: []float64{0.3}, sar: []float64{0.6}, sma: []float64{-0.4}}},
	{"SARMA(0,1)(2,0)7", SARIMA(0, 0, 1, 2, 0, 0, 7), coeffs{ma: []float64{0.5}, sar: []float64{0.3, 0.2}}},
}

// The Chandrasekhar filter, the full covariance filter and the dense
// Cholesky likelihood must agree; so must the full filter and the dense
// likelihood with missing values.
func TestFiltersMatchDenseLikelihood(t *testing.T) {
	for i, tc := range armaCases {
		t.Run(tc.name, func(t *testing.T) {
			x := simulateSARIMA(uint64(i+1), 240, tc.spec, tc.c, 1)
			ss := tc.spec.ssModel(tc.c)
			phi := expandAR(tc.c.ar, tc.c.sar, tc.spec.period())
			theta := expandMA(tc.c.ma, tc.c.sma, tc.spec.period())
			ll := func(o filterOut) float64 {
				return -0.5 * (float64(o.nobs)*math.Log(2*math.Pi) + o.sumLogF + o.ssq)
			}
			want := denseLogLik(x, phi, theta, 1)
			ch, ok := ss.filter(x, filterOpts{})
			if !ok {
				t.Fatal("Chandrasekhar filter failed")
			}
			full, ok := ss.filter(x, filterOpts{wantP: true})
			if !ok {
				t.Fatal("full filter failed")
			}
			if d := math.Abs(ll(ch) - want); d > 1e-7 {
				t.Errorf("Chandrasekhar %.10f, dense %.10f", ll(ch), want)
			}
			if d := math.Abs(ll(full) - want); d > 1e-7 {
				t.Errorf("full filter %.10f, dense %.10f", ll(full), want)
			}
			for j := 5; j < len(x); j += 11 {
				x[j] = math.NaN()
			}
			x[len(x)-1] = math.NaN()
			want = denseLogLik(x, phi, theta, 1)
			miss, ok := ss.filter(x, filterOpts{})
			if !ok {
				t.Fatal("filter with missing values failed")
			}
			if d := math.Abs(ll(miss) - want); d > 1e-7 {
				t.Errorf("missing values: filter %.10f, dense %.10f", ll(miss), want)
			}
		})
	}
}

// Σ must solve the Lyapunov equation Σ = TΣTᵀ + RRᵀ, and its first
// column must be what the Chandrasekhar start uses.
func TestStationaryCovariance(t *testing.T) {
	for _, tc := range armaCases {
		ss := tc.spec.ssModel(tc.c)
		r := ss.r
		c, gamma, psi, ok := ss.stateCov0()
		if !ok {
			t.Fatalf("%s: no stationary covariance", tc.name)
		}
		S := ss.stateCov(gamma, psi)
		T := make([]float64, r*r)
		for i := 0; i < r; i++ {
			T[i*r] = ss.phi.at(i + 1)
			if i+1 < r {
				T[i*r+i+1] = 1
			}
		}
		for i := 0; i < r; i++ {
			if math.Abs(S[i*r]-c[i]) > 1e-10 {
				t.Errorf("%s: first column %d: %v vs %v", tc.name, i, S[i*r], c[i])
			}
			for j := 0; j < r; j++ {
				v := ss.rcoef(i) * ss.rcoef(j)
				for k := 0; k < r; k++ {
					for l := 0; l < r; l++ {
						v += T[i*r+k] * S[k*r+l] * T[j*r+l]
					}
				}
				if math.Abs(v-S[i*r+j]) > 1e-9*(1+math.Abs(v)) {
					t.Fatalf("%s: Lyapunov residual at (%d,%d): %v vs %v", tc.name, i, j, v, S[i*r+j])
				}
			}
		}
	}
}

func TestAutocovarianceAR1(t *testing.T) {
	g, ok := arAutocov(newLagPoly([]float64{0.8}), 3)
	if !ok {
		t.Fatal("not stationary")
	}
	want := 1 / (1 - 0.64)
	for h, v := range g {
		if math.Abs(v-want*math.Pow(0.8, float64(h))) > 1e-12 {
			t.Errorf("γ(%d) = %v, want %v", h, v, want*math.Pow(0.8, float64(h)))
		}
	}
	if _, ok := arAutocov(newLagPoly([]float64{1.1}), 3); ok {
		t.Error("explosive AR accepted")
	}
}

func TestPACFTransformRoundTrip(t *testing.T) {
	kappa := []float64{0.5, -0.3, 0.9, 0.2}
	phi := make([]float64, 4)
	pacfToAR(kappa, phi, make([]float64, 4))
	if !stationary(phi) {
		t.Fatalf("%v not stationary", phi)
	}
	back := make([]float64, 4)
	if !arToPACF(phi, back) {
		t.Fatal("step-down failed")
	}
	for i := range kappa {
		if math.Abs(back[i]-kappa[i]) > 1e-12 {
			t.Errorf("κ%d = %v, want %v", i, back[i], kappa[i])
		}
	}
}
