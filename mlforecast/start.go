package mlforecast

import (
	"math"

	"gonum.org/v1/gonum/mat"
)

// hannanRissanen returns starting coefficients by the two-stage method of
// Hannan & Rissanen (1982): a long autoregression estimates the
// innovations, then w_t is regressed on its own lags and the lagged
// innovation estimates. Seasonal terms enter additively (lags m, 2m, …),
// an approximation of the multiplicative model that is good enough for a
// start. ok is false when the regression cannot be formed.
func (f *fitter) hannanRissanen() (coeffs, bool) {
	s := f.spec
	m := s.period()
	var c coeffs
	c.mean = f.mu0
	w := make([]float64, len(f.w))
	for i, v := range f.w {
		if math.IsNaN(v) {
			v = f.mu0 // a start does not need the missing values
		}
		w[i] = v - f.mu0
	}
	n := len(w)
	maxLag := s.arOrder()
	if q := s.maOrder(); q > maxLag {
		maxLag = q
	}
	k := maxLag + 10
	if k < 20 {
		k = 20
	}
	if k > n/4 {
		k = n / 4
	}
	if k <= maxLag || n-k-maxLag < 2*s.numARMA()+10 {
		return c, false
	}
	// Long AR by Yule–Walker (Durbin–Levinson on sample autocovariances).
	g := make([]float64, k+1)
	for h := 0; h <= k; h++ {
		sum := 0.0
		for t := h; t < n; t++ {
			sum += w[t] * w[t-h]
		}
		g[h] = sum / float64(n)
	}
	if !(g[0] > 0) {
		return c, false
	}
	phi := make([]float64, k)
	tmp := make([]float64, k)
	v := g[0]
	for j := 1; j <= k; j++ {
		acc := g[j]
		for i := 1; i < j; i++ {
			acc -= phi[i-1] * g[j-i]
		}
		kk := acc / v
		copy(tmp, phi)
		for i := 1; i < j; i++ {
			phi[i-1] = tmp[i-1] - kk*tmp[j-i-1]
		}
		phi[j-1] = kk
		v *= 1 - kk*kk
		if !(v > 0) {
			return c, false
		}
	}
	e := make([]float64, n)
	for t := k; t < n; t++ {
		pr := 0.0
		for i := 1; i <= k; i++ {
			pr += phi[i-1] * w[t-i]
		}
		e[t] = w[t] - pr
	}
	// Regression of w_t on the model's lags of w and ê.
	var arLags, maLags []int
	for i := 1; i <= s.P; i++ {
		arLags = append(arLags, i)
	}
	for i := 1; i <= s.SP; i++ {
		arLags = append(arLags, i*m)
	}
	for i := 1; i <= s.Q; i++ {
		maLags = append(maLags, i)
	}
	for i := 1; i <= s.SQ; i++ {
		maLags = append(maLags, i*m)
	}
	cols := len(arLags) + len(maLags)
	if cols == 0 {
		return c, true
	}
	start := k + maxLag
	rows := n - start
	X := mat.NewDense(rows, cols, nil)
	Y := mat.NewVecDense(rows, nil)
	for t := start; t < n; t++ {
		r := t - start
		for j, l := range arLags {
			X.Set(r, j, w[t-l])
		}
		for j, l := range maLags {
			X.Set(r, len(arLags)+j, e[t-l])
		}
		Y.SetVec(r, w[t])
	}
	var beta mat.VecDense
	if err := beta.SolveVec(X, Y); err != nil {
		return c, false
	}
	b := beta.RawVector().Data
	for _, x := range b {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return c, false
		}
	}
	c.ar = append([]float64(nil), b[:s.P]...)
	c.sar = append([]float64(nil), b[s.P:s.P+s.SP]...)
	c.ma = append([]float64(nil), b[s.P+s.SP:s.P+s.SP+s.Q]...)
	c.sma = append([]float64(nil), b[s.P+s.SP+s.Q:]...)
	return c, true
}
