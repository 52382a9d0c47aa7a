package mlforecast

import "math"

// Polynomials in the lag operator are kept as coefficient slices c where
// c[k-1] is the coefficient of L^k (the leading 1 is implicit). AR
// coefficients follow φ(L) = 1 − Σ φ_k L^k, MA coefficients θ(L) = 1 + Σ θ_k L^k.

// lagPoly is an expanded polynomial with the lags of its non-zero terms,
// so that recursions touch only those (a seasonal polynomial of degree
// 289 has four).
type lagPoly struct {
	coef []float64 // coef[k-1] multiplies L^k; len = degree
	lags []int     // lags k with coef[k-1] != 0, ascending
}

func newLagPoly(coef []float64) lagPoly {
	lp := lagPoly{coef: coef}
	for i, c := range coef {
		if c != 0 {
			lp.lags = append(lp.lags, i+1)
		}
	}
	return lp
}

func (lp lagPoly) degree() int { return len(lp.coef) }

// at returns the coefficient of L^k (0 beyond the degree, and for k < 1).
func (lp lagPoly) at(k int) float64 {
	if k < 1 || k > len(lp.coef) {
		return 0
	}
	return lp.coef[k-1]
}

// expandAR returns the coefficients of φ(L)Φ(L^m) in the 1 − Σ convention.
func expandAR(phi, sphi []float64, m int) []float64 {
	deg := len(phi) + len(sphi)*m
	out := make([]float64, deg)
	for i, a := range phi {
		out[i] += a
	}
	for s, b := range sphi {
		k := (s + 1) * m
		out[k-1] += b
		for i, a := range phi {
			out[k+i] -= a * b
		}
	}
	return out
}

// expandMA returns the coefficients of θ(L)Θ(L^m) in the 1 + Σ convention.
func expandMA(theta, stheta []float64, m int) []float64 {
	deg := len(theta) + len(stheta)*m
	out := make([]float64, deg)
	for i, a := range theta {
		out[i] += a
	}
	for s, b := range stheta {
		k := (s + 1) * m
		out[k-1] += b
		for i, a := range theta {
			out[k+i] += a * b
		}
	}
	return out
}

// diffPoly returns δ with (1−L)^d (1−L^m)^D = 1 + Σ δ_k L^k.
func diffPoly(d, sd, m int) []float64 {
	c := []float64{1}
	mul := func(lag int) {
		n := make([]float64, len(c)+lag)
		copy(n, c)
		for i, v := range c {
			n[i+lag] -= v
		}
		c = n
	}
	for i := 0; i < d; i++ {
		mul(1)
	}
	for i := 0; i < sd; i++ {
		mul(m)
	}
	return c[1:]
}

// difference applies (1 + Σ δ_k L^k) to y; the result has len(y)−len(δ)
// values and is NaN wherever one of the inputs is.
func difference(y, delta []float64) []float64 {
	k := len(delta)
	if len(y) <= k {
		return nil
	}
	w := make([]float64, len(y)-k)
	for t := k; t < len(y); t++ {
		v := y[t]
		for j, c := range delta {
			if c != 0 {
				v += c * y[t-j-1]
			}
		}
		w[t-k] = v
	}
	return w
}

// pacfToAR maps partial autocorrelations κ ∈ (−1,1)^p to the coefficients
// of a stationary AR(p) (Durbin–Levinson; Barndorff-Nielsen & Schou 1973,
// Monahan 1984). out may alias nothing; work needs len(kappa).
func pacfToAR(kappa, out, work []float64) {
	p := len(kappa)
	for k := 0; k < p; k++ {
		a := kappa[k]
		copy(work[:k], out[:k])
		for j := 0; j < k; j++ {
			out[j] = work[j] - a*work[k-1-j]
		}
		out[k] = a
	}
}

// arToPACF inverts pacfToAR (step-down recursion). It reports false when
// the polynomial is not stationary (some |κ| >= 1).
func arToPACF(phi, kappa []float64) bool {
	p := len(phi)
	a := append([]float64(nil), phi...)
	b := make([]float64, p)
	for k := p - 1; k >= 0; k-- {
		c := a[k]
		kappa[k] = c
		if !(math.Abs(c) < 1) {
			return false
		}
		den := 1 - c*c
		for j := 0; j < k; j++ {
			b[j] = (a[j] + c*a[k-1-j]) / den
		}
		copy(a[:k], b[:k])
	}
	return true
}

// stationary reports whether 1 − Σ φ_k L^k has all roots outside the unit circle.
func stationary(phi []float64) bool {
	if len(phi) == 0 {
		return true
	}
	k := make([]float64, len(phi))
	return arToPACF(phi, k)
}

// Unconstrained ↔ partial autocorrelation: κ = x/√(1+x²), as statsmodels.
func toPACF(x float64) float64   { return x / math.Sqrt(1+x*x) }
func fromPACF(k float64) float64 { return k / math.Sqrt(1-k*k) }

// psiWeights returns ψ_0..ψ_{n-1} of θ(L)/φ(L) (ψ_0 = 1). phi uses the AR
// convention, theta the MA convention.
func psiWeights(phi, theta lagPoly, n int) []float64 {
	psi := make([]float64, n)
	if n == 0 {
		return psi
	}
	psi[0] = 1
	for j := 1; j < n; j++ {
		v := theta.at(j)
		for _, k := range phi.lags {
			if k > j {
				break
			}
			v += phi.coef[k-1] * psi[j-k]
		}
		psi[j] = v
	}
	return psi
}

// arAutocov returns the autocovariances γ(0..maxLag) of the AR process
// φ(L)x_t = e_t with unit innovation variance. It uses the step-down
// recursion for γ(0..p) in O(p²), then the AR recursion over the non-zero
// lags only. ok is false when φ is not stationary.
func arAutocov(phi lagPoly, maxLag int) (g []float64, ok bool) {
	p := phi.degree()
	n := maxLag + 1
	if n < p+1 {
		n = p + 1
	}
	g = make([]float64, n)
	if p == 0 {
		g[0] = 1
		return g[:maxLag+1], true
	}
	kappa := make([]float64, p)
	if !arToPACF(phi.coef, kappa) {
		return nil, false
	}
	v := 1.0
	for _, k := range kappa {
		v /= 1 - k*k
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil, false
	}
	g[0] = v
	// Forward Durbin–Levinson rebuilds γ(1..p) from κ.
	b := make([]float64, p)
	tmp := make([]float64, p)
	for k := 1; k <= p; k++ {
		kk := kappa[k-1]
		s := kk * v
		for j := 1; j < k; j++ {
			s += b[j-1] * g[k-j]
		}
		g[k] = s
		copy(tmp[:k-1], b[:k-1])
		for j := 1; j < k; j++ {
			b[j-1] = tmp[j-1] - kk*tmp[k-1-j]
		}
		b[k-1] = kk
		v *= 1 - kk*kk
	}
	for h := p + 1; h < n; h++ {
		s := 0.0
		for _, k := range phi.lags {
			s += phi.coef[k-1] * g[h-k]
		}
		g[h] = s
	}
	return g[:maxLag+1], true
}

// armaAutocov returns γ(0..maxLag) of φ(L)y = θ(L)ε with unit innovation
// variance, as the AR autocovariance filtered by the MA autocovariance
// (both sparse for seasonal models).
func armaAutocov(phi, theta lagPoly, maxLag int) ([]float64, bool) {
	q := theta.degree()
	gx, ok := arAutocov(phi, maxLag+q)
	if !ok {
		return nil, false
	}
	// MA autocovariance γθ(l) = Σ_i θ_i θ_{i+l}, θ_0 = 1, over non-zero terms.
	type term struct {
		lag int
		c   float64
	}
	var terms []term
	{
		tl := append([]int{0}, theta.lags...)
		tc := func(k int) float64 {
			if k == 0 {
				return 1
			}
			return theta.coef[k-1]
		}
		for _, i := range tl {
			for _, j := range tl {
				if j < i {
					continue
				}
				l, c := j-i, tc(i)*tc(j)
				found := false
				for n := range terms {
					if terms[n].lag == l {
						terms[n].c += c
						found = true
						break
					}
				}
				if !found {
					terms = append(terms, term{l, c})
				}
			}
		}
	}
	g := make([]float64, maxLag+1)
	for h := 0; h <= maxLag; h++ {
		s := 0.0
		for _, t := range terms {
			// γy(h) = Σ_l γθ(l) γx(h−l) over l = −q..q, γθ symmetric.
			s += t.c * gx[abs(h-t.lag)]
			if t.lag != 0 {
				s += t.c * gx[h+t.lag]
			}
		}
		g[h] = s
	}
	return g, true
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}
