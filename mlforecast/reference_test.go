package mlforecast

import (
	"math"
	"testing"
)

// refCoeffs converts a reference fit's statsmodels parameters to ours (the
// intercept c becomes the mean c/(φ(1)Φ(1))).
func refCoeffs(r referenceFit) (coeffs, float64) {
	s := r.spec()
	var c coeffs
	for i := 1; i <= s.P; i++ {
		c.ar = append(c.ar, r.Params["ar.L"+itoa(i)])
	}
	for i := 1; i <= s.Q; i++ {
		c.ma = append(c.ma, r.Params["ma.L"+itoa(i)])
	}
	for i := 1; i <= s.SP; i++ {
		c.sar = append(c.sar, r.Params["ar.S.L"+itoa(i*s.Period)])
	}
	for i := 1; i <= s.SQ; i++ {
		c.sma = append(c.sma, r.Params["ma.S.L"+itoa(i*s.Period)])
	}
	if s.Constant {
		c.mean = r.Params["intercept"] / (polyAt1(c.ar) * polyAt1(c.sar))
	}
	return c, r.Params["sigma2"]
}

// approxDiffuseLogLik reproduces statsmodels' SARIMAX likelihood for d=1,D=0
// or d=0,D=1: the differencing states (the last d+D·m levels) enter the
// state vector with the approximate-diffuse prior N(0, kappa·I), the ARMA
// states start stationary, and the first d+D·m observations are burned.
func approxDiffuseLogLik(y []float64, s Spec, c coeffs, sigma2, kappa float64) float64 {
	ss := s.ssModel(c)
	r := ss.r
	delta := diffPoly(s.D, s.SD, s.period())
	K := len(delta)
	k := r + K
	type ent struct {
		i, j int
		v    float64
	}
	// Transition: ARMA block, then lag states y_{t−1}..y_{t−K}; the new
	// level y_t = α₀ − Σ δ_l y_{t−l} is the observation row.
	Z := make([]float64, k)
	Z[0] = 1
	for l, d := range delta {
		Z[r+l] = -d
	}
	var T []ent
	for i := 0; i < r; i++ {
		if v := ss.phi.at(i + 1); v != 0 {
			T = append(T, ent{i, 0, v})
		}
		if i+1 < r {
			T = append(T, ent{i, i + 1, 1})
		}
	}
	for j, v := range Z {
		if v != 0 {
			T = append(T, ent{r, j, v})
		}
	}
	for l := 1; l < K; l++ {
		T = append(T, ent{r + l, r + l - 1, 1})
	}
	R := make([]float64, k)
	for i := 0; i < r; i++ {
		R[i] = ss.rcoef(i)
	}
	_, gamma, psi, _ := ss.stateCov0()
	S := ss.stateCov(gamma, psi)
	P := make([]float64, k*k)
	for i := 0; i < r; i++ {
		for j := 0; j < r; j++ {
			P[i*k+j] = sigma2 * S[i*r+j]
		}
	}
	for l := 0; l < K; l++ {
		P[(r+l)*k+r+l] = kappa
	}
	a := make([]float64, k)
	Q := make([]float64, k*k)
	PZ := make([]float64, k)
	ll := 0.0
	for t, yt := range y {
		F, za := 0.0, 0.0
		for i := 0; i < k; i++ {
			s := 0.0
			for j := 0; j < k; j++ {
				s += P[i*k+j] * Z[j]
			}
			PZ[i] = s
			F += Z[i] * s
			za += Z[i] * a[i]
		}
		v := yt - za
		if t >= K {
			ll += -0.5 * (math.Log(2*math.Pi*F) + v*v/F)
		}
		for i := 0; i < k; i++ {
			a[i] += PZ[i] * v / F
			for j := 0; j < k; j++ {
				P[i*k+j] -= PZ[i] * PZ[j] / F
			}
		}
		na := make([]float64, k)
		for _, e := range T {
			na[e.i] += e.v * a[e.j]
		}
		a = na
		clear(Q)
		for _, e := range T { // Q = T P
			for j := 0; j < k; j++ {
				Q[e.i*k+j] += e.v * P[e.j*k+j]
			}
		}
		clear(P)
		for _, e := range T { // P = Q Tᵀ
			for i := 0; i < k; i++ {
				P[i*k+e.i] += e.v * Q[i*k+e.j]
			}
		}
		for i := 0; i < k; i++ {
			for j := 0; j < k; j++ {
				P[i*k+j] += sigma2 * R[i] * R[j]
			}
		}
	}
	return ll
}

// statsmodels 0.13.5 starts the differencing states with variance 1e6
// (its approximate-diffuse default); with it the reported log-likelihoods
// are reproduced. For the seasonally differenced fits that value differs
// visibly from the exact likelihood of the differenced series (the limit
// κ → ∞), which is what this package maximises and reports.
func TestReferenceLikelihoodConvention(t *testing.T) {
	for _, r := range loadReference(t) {
		train, _ := r.trainTest(t)
		s := r.spec()
		c, s2 := refCoeffs(r)
		exact, err := LogLik(train, s, s.pack(c), s2)
		if err != nil {
			t.Fatal(err)
		}
		sm := r.LogLik
		if s.D+s.SD > 0 {
			sm = approxDiffuseLogLik(train, s, c, s2, 1e6)
		}
		if d := math.Abs(sm - r.LogLik); d > 2e-3 {
			t.Errorf("%s: reproduced statsmodels loglik %.4f, reported %.4f", r.name(), sm, r.LogLik)
		}
		t.Logf("%-62s reported %12.4f  κ=1e6 reproduction %12.4f  exact (κ→∞) %12.4f", r.name(), r.LogLik, sm, exact)
		if s.SD == 0 {
			if d := math.Abs(exact - r.LogLik); d > 2e-3 {
				t.Errorf("%s: exact loglik at the reference parameters %.4f, reported %.4f", r.name(), exact, r.LogLik)
			}
		}
	}
}

// The acceptance criteria of the issue, per reference fit:
//   - the log-likelihood reached is no lower than that of statsmodels'
//     parameters minus 0.01, both under the exact likelihood of the
//     differenced series (see TestReferenceLikelihoodConvention for why
//     the reported value is not used directly for seasonal differencing);
//   - the forecast of the held-out points is as accurate: MASE at most 2%
//     above the reference's. The one exception is a reference that is not
//     a likelihood optimum (its σ² is more than 1% off the value that
//     maximises the likelihood at its own ARMA coefficients, i.e. the
//     optimiser stopped early): a better optimum then forecasts
//     differently and the MASE comparison is logged, not asserted.
func TestReferenceFits(t *testing.T) {
	t.Logf("%-62s %13s %13s %9s %8s %8s %7s %9s", "fit", "loglik ours", "at ref params", "gain", "MASE", "ref MASE", "ratio", "ref conv")
	for _, r := range loadReference(t) {
		train, test := r.trainTest(t)
		s := r.spec()
		c, s2 := refCoeffs(r)
		atRef, err := LogLik(train, s, s.pack(c), s2)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Fit(train, s, nil)
		if err != nil {
			t.Fatalf("%s: %v", r.name(), err)
		}
		fc, err := m.Forecast(r.Holdout, 0.95)
		if err != nil {
			t.Fatal(err)
		}
		got := mase(train, test, fc.Mean, r.MASEPeriod)
		refMASE := mase(train, test, r.Forecast, r.MASEPeriod)
		if math.Abs(refMASE-r.MASE) > 1e-9 {
			t.Fatalf("%s: reference MASE recomputed %v, JSON %v: data alignment is off", r.name(), refMASE, r.MASE)
		}
		// Is the reference a stationary point in σ²?
		f, _ := newFitter(train, s)
		_, s2opt, _ := f.ev.concentrated(c)
		refConverged := math.Abs(s2/s2opt-1) < 0.01
		t.Logf("%-62s %13.4f %13.4f %+9.4f %8.4f %8.4f %7.4f %9v", r.name(), m.LogLik, atRef, m.LogLik-atRef, got, r.MASE, got/r.MASE, refConverged)
		if m.LogLik < atRef-0.01 {
			t.Errorf("%s: loglik %.4f below the reference parameters' %.4f − 0.01", r.name(), m.LogLik, atRef)
		}
		if got > 1.02*r.MASE {
			if refConverged {
				t.Errorf("%s: MASE %.4f more than 2%% above the reference's %.4f", r.name(), got, r.MASE)
			} else {
				t.Logf("%s: MASE %.4f vs %.4f not asserted: the reference is not a likelihood optimum (σ² %.4g, optimum at its coefficients %.4g)", r.name(), got, r.MASE, s2, s2opt)
			}
		}
	}
}
