package mlforecast

import (
	"fmt"
	"math"
)

// Forecast holds point forecasts and prediction intervals for the steps
// after the last observation (index 0 is one step ahead).
type Forecast struct {
	Level  float64   // coverage of [Lower, Upper], e.g. 0.95
	Mean   []float64 // point forecasts (conditional expectations)
	Lower  []float64
	Upper  []float64
	StdErr []float64 // standard deviation of the forecast error
}

// Forecast returns h-step forecasts with central prediction intervals of
// the given level (0 < level < 1) under Gaussian errors.
//
// The forecast-error variance is σ²(gₕᵀP gₕ + Σ_{j<h−1} ψ*ⱼ²), where ψ* are
// the MA(∞) weights of the integrated model, P is the covariance of the
// ARMA state after the last observation and gₕ maps it to the level at
// step h. When P was not kept (the filter had reached steady state, or the
// state is too large to carry it cheaply) it is taken at its steady state
// σ²RRᵀ, which gives the textbook σ²Σ_{j<h} ψ*ⱼ². Trailing missing values
// count as forecast steps; missing values inside the last d+D·m points
// before an observation are imputed by their predictions, whose own
// uncertainty the intervals do not include.
func (m *Model) Forecast(h int, level float64) (*Forecast, error) {
	if h < 1 {
		return nil, &OptionError{Field: "h", Reason: "horizon must be at least 1"}
	}
	if !(level > 0 && level < 1) {
		return nil, &OptionError{Field: "level", Reason: fmt.Sprintf("must be in (0,1), got %v", level)}
	}
	// Trailing missing values: forecast from the last observation, so that
	// the uncertainty of the unobserved levels is carried into the
	// intervals, and drop the steps that fall on them.
	j := 0
	for j < len(m.y) && math.IsNaN(m.y[len(m.y)-1-j]) {
		j++
	}
	hist := m.imputed()
	aNext, pNext := m.final.aNext, m.final.pNext
	if j > 0 && j < len(m.w) {
		w := make([]float64, len(m.w)-j)
		for i := range w {
			w[i] = m.w[i] - m.Mean
		}
		out, ok := m.ss.filter(w, filterOpts{wantP: true})
		if !ok {
			return nil, fmt.Errorf("%w: refiltering before the trailing gap failed", ErrNotConverged)
		}
		aNext, pNext = out.aNext, out.pNext
		hist = hist[:len(hist)-j]
	} else {
		j = 0
	}
	mean, variance := m.forecastFrom(hist, aNext, pNext, h+j)
	z := math.Sqrt2 * math.Erfinv(level)
	f := &Forecast{Level: level, Mean: mean[j:], Lower: make([]float64, h), Upper: make([]float64, h), StdErr: make([]float64, h)}
	for i := range f.Mean {
		sd := math.Sqrt(variance[j+i])
		f.StdErr[i] = sd
		f.Lower[i] = f.Mean[i] - z*sd
		f.Upper[i] = f.Mean[i] + z*sd
	}
	return f, nil
}

// forecastFrom returns the means and error variances of h steps after the
// history hist, given the predicted ARMA state a (and its covariance P in
// units of σ², or nil for the steady state) for the first step.
func (m *Model) forecastFrom(hist, aNext, P []float64, h int) (mean, variance []float64) {
	s := m.Spec
	ss := m.ss
	r := ss.r
	delta := diffPoly(s.D, s.SD, s.period())

	// Point forecasts of w, then of y through the differencing recursion.
	a := append([]float64(nil), aNext...)
	ext := make([]float64, len(hist)+h)
	copy(ext, hist)
	n := len(hist)
	for i := 0; i < h; i++ {
		v := a[0] + m.Mean
		for k, c := range delta {
			if c != 0 {
				v -= c * ext[n+i-k-1]
			}
		}
		ext[n+i] = v
		a0 := a[0]
		copy(a, a[1:])
		a[r-1] = 0
		for _, k := range ss.phi.lags {
			a[k-1] += ss.phi.coef[k-1] * a0
		}
	}

	// ψ* of θ(L)/[φ(L)δ(L)].
	full := polyMulAR(ss.phi.coef, delta)
	psi := psiWeights(newLagPoly(full), ss.theta, h)
	variance = make([]float64, h)
	if len(P) == r*r {
		// ι: weights of 1/δ(L); u_k = (Tᵀ)^{k−1} e₁.
		iota := psiWeights(newLagPoly(negate(delta)), lagPoly{}, h)
		us := make([][]float64, h)
		u := make([]float64, r)
		u[0] = 1
		for k := 0; k < h; k++ {
			us[k] = append([]float64(nil), u...)
			n0 := 0.0
			for _, l := range ss.phi.lags {
				n0 += ss.phi.coef[l-1] * u[l-1]
			}
			copy(u[1:], u[:r-1])
			u[0] = n0
		}
		g := make([]float64, r)
		var cum float64
		for hh := 1; hh <= h; hh++ {
			clear(g)
			for k := 1; k <= hh; k++ {
				if c := iota[hh-k]; c != 0 {
					for j, uv := range us[k-1] {
						g[j] += c * uv
					}
				}
			}
			q := 0.0
			for i, gi := range g {
				if gi == 0 {
					continue
				}
				q += gi * dot(P[i*r:(i+1)*r], g)
			}
			if hh >= 2 {
				cum += psi[hh-2] * psi[hh-2]
			}
			variance[hh-1] = m.Sigma2 * (q + cum)
		}
	} else {
		var cum float64
		for i := 0; i < h; i++ {
			cum += psi[i] * psi[i]
			variance[i] = m.Sigma2 * cum
		}
	}
	return ext[n:], variance
}

// polyMulAR returns the AR-convention coefficients of φ(L)·(1+Σδ_k L^k).
func polyMulAR(phi, delta []float64) []float64 {
	p1 := make([]float64, len(phi)+1)
	p1[0] = 1
	for i, v := range phi {
		p1[i+1] = -v
	}
	p2 := append([]float64{1}, delta...)
	prod := make([]float64, len(p1)+len(p2)-1)
	for i, a := range p1 {
		if a == 0 {
			continue
		}
		for j, b := range p2 {
			prod[i+j] += a * b
		}
	}
	out := make([]float64, len(prod)-1)
	for i := range out {
		out[i] = -prod[i+1]
	}
	return out
}

func negate(v []float64) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = -x
	}
	return o
}

// imputed returns y with missing values replaced by their one-step
// predictions (and, before the first differenced observation, by the
// nearest observed value), the history forecasts are integrated from.
func (m *Model) imputed() []float64 {
	y := append([]float64(nil), m.y...)
	delta := diffPoly(m.Spec.D, m.Spec.SD, m.Spec.period())
	K := len(delta)
	// Leading points: nearest observed value.
	last := math.NaN()
	for t := 0; t < K && t < len(y); t++ {
		if math.IsNaN(y[t]) {
			y[t] = last
		} else {
			last = y[t]
		}
	}
	next := math.NaN()
	for t := len(y) - 1; t >= 0; t-- {
		if t < K && math.IsNaN(y[t]) {
			y[t] = next
		} else if !math.IsNaN(y[t]) {
			next = y[t]
		}
	}
	for t := K; t < len(y); t++ {
		if !math.IsNaN(y[t]) {
			continue
		}
		v := m.final.pred[t-K] + m.Mean
		for k, c := range delta {
			if c != 0 {
				v -= c * y[t-k-1]
			}
		}
		y[t] = v
	}
	return y
}

// Residuals returns the one-step-ahead prediction errors y_t − ŷ_t (equal
// to the innovations of the differenced series), NaN for the first d+D·m
// points and where y or a needed lag is missing.
func (m *Model) Residuals() []float64 {
	K := len(m.y) - len(m.w)
	out := make([]float64, len(m.y))
	for t := range out {
		if t < K {
			out[t] = math.NaN()
		} else {
			out[t] = m.final.v[t-K]
		}
	}
	return out
}

// Fitted returns the one-step-ahead predictions ŷ_t (NaN for the first
// d+D·m points).
func (m *Model) Fitted() []float64 {
	y := m.imputed()
	K := len(m.y) - len(m.w)
	delta := diffPoly(m.Spec.D, m.Spec.SD, m.Spec.period())
	out := make([]float64, len(m.y))
	for t := range out {
		if t < K {
			out[t] = math.NaN()
			continue
		}
		v := m.final.pred[t-K] + m.Mean
		for k, c := range delta {
			if c != 0 {
				v -= c * y[t-k-1]
			}
		}
		out[t] = v
	}
	return out
}

// ResidualVariances returns the variance of each one-step prediction
// error, σ²F_t (larger than σ² at the start of the series and after gaps),
// NaN where Residuals is NaN.
func (m *Model) ResidualVariances() []float64 {
	K := len(m.y) - len(m.w)
	out := make([]float64, len(m.y))
	for t := range out {
		if t < K {
			out[t] = math.NaN()
		} else {
			out[t] = m.Sigma2 * m.final.f[t-K]
		}
	}
	return out
}
