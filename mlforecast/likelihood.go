package mlforecast

import "math"

// coeffs are the natural (constrained) parameters of a Spec, in
// statsmodels' order: constant, AR, MA, seasonal AR, seasonal MA.
type coeffs struct {
	mean             float64 // mean of the differenced series (0 without constant)
	ar, ma, sar, sma []float64
}

// unpack splits a natural parameter vector laid out as in coeffs.
func (s Spec) unpack(v []float64) coeffs {
	var c coeffs
	i := 0
	if s.Constant {
		c.mean = v[0]
		i = 1
	}
	c.ar = v[i : i+s.P]
	i += s.P
	c.ma = v[i : i+s.Q]
	i += s.Q
	c.sar = v[i : i+s.SP]
	i += s.SP
	c.sma = v[i : i+s.SQ]
	return c
}

func (s Spec) pack(c coeffs) []float64 {
	v := make([]float64, 0, s.numParams()-1)
	if s.Constant {
		v = append(v, c.mean)
	}
	v = append(v, c.ar...)
	v = append(v, c.ma...)
	v = append(v, c.sar...)
	v = append(v, c.sma...)
	return v
}

// paramNames are statsmodels-style names for the natural parameters.
func (s Spec) paramNames() []string {
	var n []string
	if s.Constant {
		if s.D+s.SD == 0 {
			n = append(n, "mean")
		} else {
			n = append(n, "drift")
		}
	}
	for i := 1; i <= s.P; i++ {
		n = append(n, "ar.L"+itoa(i))
	}
	for i := 1; i <= s.Q; i++ {
		n = append(n, "ma.L"+itoa(i))
	}
	for i := 1; i <= s.SP; i++ {
		n = append(n, "ar.S.L"+itoa(i*s.Period))
	}
	for i := 1; i <= s.SQ; i++ {
		n = append(n, "ma.S.L"+itoa(i*s.Period))
	}
	return n
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	p := len(b)
	for i > 0 {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
	}
	return string(b[p:])
}

// ssModel builds the state-space form of the ARMA part of c.
func (s Spec) ssModel(c coeffs) *armaSS {
	m := s.period()
	phi := newLagPoly(expandAR(c.ar, c.sar, m))
	theta := newLagPoly(expandMA(c.ma, c.sma, m))
	return newARMASS(phi, theta)
}

// evaluator computes the exact likelihood of one differenced series.
type evaluator struct {
	spec    Spec
	w       []float64 // differenced series, NaN where missing
	buf     []float64 // w minus the mean
	missing bool      // w has NaN
	scratch kfScratch
}

func newEvaluator(spec Spec, w []float64) *evaluator {
	e := &evaluator{spec: spec, w: w, buf: make([]float64, len(w))}
	for _, x := range w {
		if math.IsNaN(x) {
			e.missing = true
			break
		}
	}
	return e
}

// run filters w − mean with the ARMA part of c.
func (e *evaluator) run(c coeffs, opts filterOpts) (filterOut, bool) {
	w := e.w
	if c.mean != 0 {
		for i, x := range e.w {
			e.buf[i] = x - c.mean
		}
		w = e.buf
	}
	opts.missing = e.missing
	opts.scratch = &e.scratch
	return e.spec.ssModel(c).filter(w, opts)
}

// concentrated returns the log-likelihood with σ² concentrated out, and
// the σ² estimate.
func (e *evaluator) concentrated(c coeffs) (ll, sigma2 float64, ok bool) {
	out, ok := e.run(c, filterOpts{})
	if !ok || out.nobs == 0 {
		return math.Inf(-1), 0, false
	}
	n := float64(out.nobs)
	sigma2 = out.ssq / n
	if !(sigma2 > 0) || math.IsInf(sigma2, 0) {
		return math.Inf(-1), 0, false
	}
	ll = -0.5*n*(math.Log(2*math.Pi)+1+math.Log(sigma2)) - 0.5*out.sumLogF
	if math.IsNaN(ll) {
		return math.Inf(-1), 0, false
	}
	return ll, sigma2, true
}

// logLikAt returns the log-likelihood at a given σ².
func (e *evaluator) logLikAt(c coeffs, sigma2 float64) (float64, bool) {
	out, ok := e.run(c, filterOpts{})
	if !ok || out.nobs == 0 {
		return math.Inf(-1), false
	}
	n := float64(out.nobs)
	return -0.5 * (n*math.Log(2*math.Pi*sigma2) + out.sumLogF + out.ssq/sigma2), true
}
