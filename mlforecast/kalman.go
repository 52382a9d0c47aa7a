package mlforecast

import "math"

// armaSS is a stationary ARMA(p', q') in Harvey's state-space form with
// r = max(p', q'+1):
//
//	w_t = Z α_t,  α_{t+1} = T α_t + R ε_{t+1},  Z = e₁ᵀ,
//	T = [φ | I_{r−1}; 0],  R = (1, θ₁, …, θ_{r−1})ᵀ,
//
// where φ and θ are the expanded (seasonal × non-seasonal) polynomials. The
// filter runs with σ² = 1; the scale is concentrated out by the caller.
type armaSS struct {
	phi, theta lagPoly
	r          int
}

func newARMASS(phi, theta lagPoly) *armaSS {
	r := phi.degree()
	if q := theta.degree() + 1; q > r {
		r = q
	}
	return &armaSS{phi: phi, theta: theta, r: r}
}

// rcoef returns R_j (R_0 = 1).
func (m *armaSS) rcoef(j int) float64 {
	if j == 0 {
		return 1
	}
	return m.theta.at(j)
}

// filterOut collects what a filter pass produces.
type filterOut struct {
	sumLogF float64 // Σ log F_t over observed t
	ssq     float64 // Σ v_t² / F_t
	nobs    int
	conv    bool      // the gain reached its steady state
	aNext   []float64 // predicted state a_{n+1}
	fNext   float64   // F_{n+1}
	pNext   []float64 // P_{n+1} (r×r, row-major) when the full filter ran
	// Per-step innovations v, their variances f and the one-step
	// predictions of w (demeaned), when requested; v and f are NaN where
	// w is missing.
	v, f, pred []float64
}

// filterOpts selects optional outputs.
type filterOpts struct {
	innovations bool // fill filterOut.v, .f and .pred
	wantP       bool // run the full covariance filter and return P_{n+1}
	// v, f, pred, when non-nil (len(w) each), receive the innovations
	// instead of fresh slices.
	v, f, pred []float64
	// std, when non-nil, receives the standardised innovations v_t/√F_t
	// (0 where w is missing); the estimator's least-squares residuals.
	std []float64
	// missing tells that w has NaN (the caller knows; saves a scan).
	missing bool
	// scratch, when non-nil, provides reusable work vectors.
	scratch *kfScratch
}

// kfScratch holds the filter's work vectors between calls.
type kfScratch struct{ buf []float64 }

// vecs returns n zeroed vectors of length r.
func (s *kfScratch) vecs(n, r int) [][]float64 {
	if s == nil {
		s = &kfScratch{}
	}
	if cap(s.buf) < n*r {
		s.buf = make([]float64, n*r)
	}
	b := s.buf[:n*r]
	clear(b)
	out := make([][]float64, n)
	for i := range out {
		out[i] = b[i*r : (i+1)*r : (i+1)*r]
	}
	return out
}

func (o filterOpts) buffers(n int) (v, f, pred []float64) {
	if o.v != nil {
		return o.v, o.f, o.pred
	}
	if o.innovations {
		return make([]float64, n), make([]float64, n), make([]float64, n)
	}
	return nil, nil, nil
}

// convTol is the size of the rank-one covariance change |m|·‖w‖² (in units
// of σ²) below which the gain is treated as having reached steady state.
const convTol = 1e-13

// stateCov0 returns the first column of the stationary state covariance
// Σ = TΣTᵀ + RRᵀ (that is Cov(α_t, w_t)), along with γ and ψ.
func (m *armaSS) stateCov0() (c, gamma, psi []float64, ok bool) {
	r := m.r
	gamma, ok = armaAutocov(m.phi, m.theta, r)
	if !ok {
		return nil, nil, nil, false
	}
	psi = psiWeights(m.phi, m.theta, r+1)
	// α_{t,j} = Σ_{s≥1} φ_{j+s} w_{t−s} + Σ_{s≥0} θ_{j+s} ε_{t−s}, θ_0 = 1, so
	// Cov(α_{t,j}, w_t) = Σ_s φ_{j+s} γ(s) + Σ_s θ_{j+s} ψ_s.
	c = make([]float64, r)
	c[0] = gamma[0]
	for j := 1; j < r; j++ {
		s := 0.0
		for _, k := range m.phi.lags {
			if k > j {
				s += m.phi.coef[k-1] * gamma[k-j]
			}
		}
		for _, k := range m.theta.lags {
			if k >= j {
				s += m.theta.coef[k-1] * psi[k-j]
			}
		}
		c[j] = s
	}
	return c, gamma, psi, true
}

// stateCov returns the full stationary covariance Σ (r×r, row-major),
// computed term by term from γ and ψ over the non-zero lags.
func (m *armaSS) stateCov(gamma, psi []float64) []float64 {
	r := m.r
	S := make([]float64, r*r)
	// Non-zero θ lags including θ_0 = 1.
	tl := append([]int{0}, m.theta.lags...)
	tc := func(k int) float64 {
		if k == 0 {
			return 1
		}
		return m.theta.coef[k-1]
	}
	cyEps := func(s, u int) float64 { // Cov(w_{t−s}, ε_{t−u})
		if u >= s {
			return psi[u-s]
		}
		return 0
	}
	for i := 0; i < r; i++ {
		for j := i; j < r; j++ {
			v := 0.0
			for _, k := range m.phi.lags {
				if k <= i {
					continue
				}
				s := k - i
				pk := m.phi.coef[k-1]
				for _, l := range m.phi.lags {
					if l <= j {
						continue
					}
					v += pk * m.phi.coef[l-1] * gamma[abs(s-(l-j))]
				}
				for _, l := range tl {
					if l < j {
						continue
					}
					v += pk * tc(l) * cyEps(s, l-j)
				}
			}
			for _, k := range tl {
				if k < i {
					continue
				}
				s := k - i
				tk := tc(k)
				for _, l := range m.phi.lags {
					if l <= j {
						continue
					}
					v += tk * m.phi.coef[l-1] * cyEps(l-j, s)
				}
				if l := j + s; l == 0 || (l <= m.theta.degree()) {
					v += tk * tc(l)
				}
			}
			S[i*r+j] = v
			S[j*r+i] = v
		}
	}
	return S
}

// filter runs the exact Kalman filter on the zero-mean series w from the
// stationary initial state. Without missing values it uses the
// Chandrasekhar recursions (Morf, Sidhu & Kailath 1974): with a stationary
// start P₂−P₁ has rank one, so each step costs O(r) instead of O(r²) and
// the gain is frozen once it has converged. With missing values (NaN) or
// when P_{n+1} is wanted it propagates the full covariance with a sparse T.
func (m *armaSS) filter(w []float64, opts filterOpts) (filterOut, bool) {
	full := opts.wantP || opts.missing
	if !full && opts.scratch == nil {
		for _, x := range w {
			if math.IsNaN(x) {
				full = true
				break
			}
		}
	}
	c, gamma, psi, ok := m.stateCov0()
	if !ok || !(c[0] > 0) || math.IsInf(c[0], 0) {
		return filterOut{}, false
	}
	if full {
		return m.filterFull(w, opts, m.stateCov(gamma, psi))
	}
	return m.filterChandrasekhar(w, opts, c)
}

func (m *armaSS) filterChandrasekhar(w []float64, opts filterOpts, c []float64) (filterOut, bool) {
	r := m.r
	var out filterOut
	out.v, out.f, out.pred = opts.buffers(len(w))
	phiLags, phiCoef := m.phi.lags, m.phi.coef
	vs := opts.scratch.vecs(5, r)
	a, G, W := vs[0], vs[1], vs[2] // G_t = T P_t Zᵀ
	F := c[0]
	for i := 0; i < r-1; i++ {
		G[i] = c[i+1]
	}
	for _, k := range phiLags {
		G[k-1] += phiCoef[k-1] * c[0]
	}
	copy(W, G)
	mm := -1 / F
	var sumLogF, ssq float64
	logF := math.Log(F)
	t := 0
	conv := false
	for ; t < len(w); t++ {
		x := w[t]
		v := x - a[0]
		sumLogF += logF
		ssq += v * v / F
		if out.v != nil {
			out.v[t], out.f[t], out.pred[t] = v, F, a[0]
		}
		if opts.std != nil {
			opts.std[t] = v / math.Sqrt(F)
		}
		// a ← T a + G v/F
		kv := v / F
		a0 := a[0]
		copy(a, a[1:])
		a[r-1] = 0
		for i := range a {
			a[i] += G[i] * kv
		}
		for _, k := range phiLags {
			a[k-1] += phiCoef[k-1] * a0
		}
		// Rank-one update of ΔP = m w wᵀ:
		//   F' = F + m z²,  G' = G + m z Tw,  w' = Tw − G z/F,  m' = m F/F'.
		z := W[0]
		copy(W, W[1:])
		W[r-1] = 0
		for _, k := range phiLags {
			W[k-1] += phiCoef[k-1] * z
		}
		mz := mm * z
		zf := z / F
		norm := 0.0
		for i, tw := range W {
			nw := tw - G[i]*zf
			G[i] += mz * tw
			W[i] = nw
			norm += nw * nw
		}
		Fn := F + mz*z
		if !(Fn > 0) {
			return filterOut{}, false
		}
		mm *= F / Fn
		F = Fn
		logF = math.Log(F)
		if math.Abs(mm)*norm < convTol {
			conv = true
			t++
			break
		}
	}
	if conv && t < len(w) {
		// Steady state: the gain K = G/F is frozen, so F and log F drop out
		// of the loop. With v = w − a₀ the update is
		//   a'_i = a_{i+1} + K_i w_t + (φ_{i+1} − K_i) a₀,
		// which keeps the a₀ → a₀' dependency chain to one multiply-add.
		K, C := vs[3], vs[4]
		for i := range K {
			K[i] = G[i] / F
			C[i] = -K[i]
		}
		for _, k := range phiLags {
			C[k-1] += phiCoef[k-1]
		}
		var ss float64
		last := r - 1
		t0 := t
		a = a[:r]
		K, C = K[:r], C[:r]
		if out.v == nil {
			var u []float64
			if opts.std != nil {
				u = opts.std[t:]
			}
			ss = steadyLoop(a, K, C, w[t:], u, 1/math.Sqrt(F))
			t = len(w)
		} else {
			for ; t < len(w); t++ {
				a0 := a[0]
				x := w[t]
				v := x - a0
				ss += v * v
				out.v[t], out.f[t], out.pred[t] = v, F, a0
				for i := 0; i < last; i++ {
					a[i] = a[i+1] + K[i]*x + C[i]*a0
				}
				a[last] = K[last]*x + C[last]*a0
			}
		}
		sumLogF += float64(len(w)-t0) * logF
		ssq += ss / F
	}
	out.sumLogF, out.ssq, out.nobs = sumLogF, ssq, len(w)
	out.conv = conv
	out.aNext = append([]float64(nil), a...)
	out.fNext = F
	return out, true
}

func (m *armaSS) filterFull(w []float64, opts filterOpts, P []float64) (filterOut, bool) {
	r := m.r
	var out filterOut
	out.v, out.f, out.pred = opts.buffers(len(w))
	phiLags, phiCoef := m.phi.lags, m.phi.coef
	a := make([]float64, r)
	G := make([]float64, r)
	Q := make([]float64, r*r)
	Rl := append([]int{0}, m.theta.lags...)
	var rl []int // non-zero entries of R inside the state
	for _, k := range Rl {
		if k < r {
			rl = append(rl, k)
		}
	}
	conv := false
	var sumLogF, ssq float64
	nobs := 0
	// predict computes P ← T P Tᵀ + R Rᵀ (− G Gᵀ/F when F > 0).
	predict := func(F float64) {
		// Q = T P: rows shifted up, plus φ_k times row 0 in row k−1.
		copy(Q, P[r:])
		for j := (r - 1) * r; j < r*r; j++ {
			Q[j] = 0
		}
		for _, k := range phiLags {
			row := Q[(k-1)*r : k*r]
			f := phiCoef[k-1]
			for j, p := range P[:r] {
				row[j] += f * p
			}
		}
		// P' = Q Tᵀ: columns shifted left, plus φ_k times column 0 in column k−1.
		for i := 0; i < r; i++ {
			qi := Q[i*r : (i+1)*r]
			pi := P[i*r : (i+1)*r]
			q0 := qi[0]
			for j := 0; j < r-1; j++ {
				pi[j] = qi[j+1]
			}
			pi[r-1] = 0
			for _, k := range phiLags {
				pi[k-1] += phiCoef[k-1] * q0
			}
		}
		for _, i := range rl {
			ri := m.rcoef(i)
			for _, j := range rl {
				P[i*r+j] += ri * m.rcoef(j)
			}
		}
		if F > 0 {
			for i := 0; i < r; i++ {
				gi := G[i] / F
				for j := 0; j < r; j++ {
					P[i*r+j] -= gi * G[j]
				}
			}
		}
	}
	old := make([]float64, 0)
	for t, x := range w {
		if math.IsNaN(x) {
			if out.v != nil {
				out.v[t], out.f[t], out.pred[t] = math.NaN(), math.NaN(), a[0]
			}
			if opts.std != nil {
				opts.std[t] = 0
			}
			a0 := a[0]
			copy(a, a[1:])
			a[r-1] = 0
			for _, k := range phiLags {
				a[k-1] += phiCoef[k-1] * a0
			}
			predict(0)
			conv = false
			continue
		}
		F := P[0]
		if !(F > 0) {
			return filterOut{}, false
		}
		v := x - a[0]
		sumLogF += math.Log(F)
		ssq += v * v / F
		nobs++
		if out.v != nil {
			out.v[t], out.f[t], out.pred[t] = v, F, a[0]
		}
		if opts.std != nil {
			opts.std[t] = v / math.Sqrt(F)
		}
		// G = T P Zᵀ
		for i := 0; i < r-1; i++ {
			G[i] = P[(i+1)*r]
		}
		G[r-1] = 0
		for _, k := range phiLags {
			G[k-1] += phiCoef[k-1] * P[0]
		}
		kv := v / F
		a0 := a[0]
		copy(a, a[1:])
		a[r-1] = 0
		for i := range a {
			a[i] += G[i] * kv
		}
		for _, k := range phiLags {
			a[k-1] += phiCoef[k-1] * a0
		}
		if conv {
			continue
		}
		old = append(old[:0], P...)
		predict(F)
		d := 0.0
		for i, p := range P {
			d = math.Max(d, math.Abs(p-old[i]))
		}
		if d < convTol {
			conv = true
		}
	}
	out.sumLogF, out.ssq, out.nobs = sumLogF, ssq, nobs
	out.conv = conv
	out.aNext = a
	out.fNext = P[0]
	out.pNext = P
	return out, true
}

// steadyLoop runs the frozen-gain recursion over w, updating a in place,
// and returns Σ v². When u is non-nil it receives v·su (the standardised
// innovations). Small states are held in registers: the a₀ → a₀' chain
// then costs one multiply and one add per step instead of a trip through
// memory.
func steadyLoop(a, K, C, w, u []float64, su float64) float64 {
	var s0 float64
	switch len(a) {
	case 1:
		a0 := a[0]
		k0, c0 := K[0], C[0]
		if u != nil {
			u = u[:len(w)]
			for i, x := range w {
				v := x - a0
				s0 += v * v
				u[i] = v * su
				a0 = k0*x + c0*a0
			}
		} else {
			for _, x := range w {
				v := x - a0
				s0 += v * v
				a0 = k0*x + c0*a0
			}
		}
		a[0] = a0
	case 2:
		a0, a1 := a[0], a[1]
		k0, k1, c0, c1 := K[0], K[1], C[0], C[1]
		if u != nil {
			u = u[:len(w)]
			for i, x := range w {
				v := x - a0
				s0 += v * v
				u[i] = v * su
				a0, a1 = a1+k0*x+c0*a0, k1*x+c1*a0
			}
		} else {
			for _, x := range w {
				v := x - a0
				s0 += v * v
				a0, a1 = a1+k0*x+c0*a0, k1*x+c1*a0
			}
		}
		a[0], a[1] = a0, a1
	case 3:
		a0, a1, a2 := a[0], a[1], a[2]
		k0, k1, k2, c0, c1, c2 := K[0], K[1], K[2], C[0], C[1], C[2]
		if u != nil {
			u = u[:len(w)]
			for i, x := range w {
				v := x - a0
				s0 += v * v
				u[i] = v * su
				a0, a1, a2 = a1+k0*x+c0*a0, a2+k1*x+c1*a0, k2*x+c2*a0
			}
		} else {
			for _, x := range w {
				v := x - a0
				s0 += v * v
				a0, a1, a2 = a1+k0*x+c0*a0, a2+k1*x+c1*a0, k2*x+c2*a0
			}
		}
		a[0], a[1], a[2] = a0, a1, a2
	case 4:
		a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
		k0, k1, k2, k3 := K[0], K[1], K[2], K[3]
		c0, c1, c2, c3 := C[0], C[1], C[2], C[3]
		if u != nil {
			u = u[:len(w)]
			for i, x := range w {
				v := x - a0
				s0 += v * v
				u[i] = v * su
				a0, a1, a2, a3 = a1+k0*x+c0*a0, a2+k1*x+c1*a0, a3+k2*x+c2*a0, k3*x+c3*a0
			}
		} else {
			for _, x := range w {
				v := x - a0
				s0 += v * v
				a0, a1, a2, a3 = a1+k0*x+c0*a0, a2+k1*x+c1*a0, a3+k2*x+c2*a0, k3*x+c3*a0
			}
		}
		a[0], a[1], a[2], a[3] = a0, a1, a2, a3
	default:
		last := len(a) - 1
		K, C = K[:len(a)], C[:len(a)]
		for i, x := range w {
			a0 := a[0]
			v := x - a0
			s0 += v * v
			if u != nil {
				u[i] = v * su
			}
			for i := 0; i < last; i++ {
				a[i] = a[i+1] + K[i]*x + C[i]*a0
			}
			a[last] = K[last]*x + C[last]*a0
		}
	}
	return s0
}
