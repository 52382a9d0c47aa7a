package mlforecast

import (
	"math"
	"math/rand/v2"
)

// simulateSARIMA draws n values of spec with coefficients c and unit
// innovations (burn-in discarded), integrating the differences from zero.
func simulateSARIMA(seed uint64, n int, spec Spec, c coeffs, sigma float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	m := spec.period()
	phi := expandAR(c.ar, c.sar, m)
	theta := expandMA(c.ma, c.sma, m)
	burn := 500 + 10*(len(phi)+len(theta))
	total := n + burn
	e := make([]float64, total)
	w := make([]float64, total)
	for t := range e {
		e[t] = sigma * rng.NormFloat64()
		v := c.mean*polyAt1(c.ar)*polyAt1(c.sar) + e[t]
		for k, a := range phi {
			if t-k-1 >= 0 {
				v += a * w[t-k-1]
			}
		}
		for k, b := range theta {
			if t-k-1 >= 0 {
				v += b * e[t-k-1]
			}
		}
		w[t] = v
	}
	w = w[burn:]
	delta := diffPoly(spec.D, spec.SD, m)
	y := make([]float64, len(delta)+len(w))
	for t := len(delta); t < len(y); t++ {
		v := w[t-len(delta)]
		for k, d := range delta {
			v -= d * y[t-k-1]
		}
		y[t] = v
	}
	return y[:n]
}

// denseLogLik is the exact Gaussian log-likelihood of the zero-mean
// stationary ARMA series x (NaN = missing) with unit innovation variance
// scaled by sigma2, by Cholesky factorisation of the covariance matrix of
// the observed values: the brute-force definition the filters must match.
func denseLogLik(x []float64, phi, theta []float64, sigma2 float64) float64 {
	g, ok := armaAutocov(newLagPoly(phi), newLagPoly(theta), len(x))
	if !ok {
		return math.NaN()
	}
	var idx []int
	for i, v := range x {
		if !math.IsNaN(v) {
			idx = append(idx, i)
		}
	}
	n := len(idx)
	L := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			L[i*n+j] = sigma2 * g[abs(idx[i]-idx[j])]
		}
	}
	// In-place Cholesky.
	logdet := 0.0
	for j := 0; j < n; j++ {
		s := L[j*n+j]
		for k := 0; k < j; k++ {
			s -= L[j*n+k] * L[j*n+k]
		}
		if s <= 0 {
			return math.NaN()
		}
		d := math.Sqrt(s)
		L[j*n+j] = d
		logdet += 2 * math.Log(d)
		for i := j + 1; i < n; i++ {
			s := L[i*n+j]
			for k := 0; k < j; k++ {
				s -= L[i*n+k] * L[j*n+k]
			}
			L[i*n+j] = s / d
		}
	}
	// Solve L z = x.
	z := make([]float64, n)
	quad := 0.0
	for i := 0; i < n; i++ {
		s := x[idx[i]]
		for k := 0; k < i; k++ {
			s -= L[i*n+k] * z[k]
		}
		z[i] = s / L[i*n+i]
		quad += z[i] * z[i]
	}
	return -0.5 * (float64(n)*math.Log(2*math.Pi) + logdet + quad)
}
