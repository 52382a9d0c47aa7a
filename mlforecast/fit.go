package mlforecast

import (
	"fmt"
	"math"
	"sync"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// Method selects the estimator.
type Method int

const (
	// MethodCSSML maximises the exact likelihood starting from the
	// conditional-sum-of-squares estimate (the default, as R's arima).
	MethodCSSML Method = iota
	// MethodML maximises the exact likelihood starting from zero coefficients.
	MethodML
	// MethodCSS stops at the conditional-sum-of-squares estimate; the
	// reported likelihood is still the exact one at that estimate.
	MethodCSS
)

func (m Method) String() string {
	switch m {
	case MethodCSSML:
		return "CSS-ML"
	case MethodML:
		return "ML"
	case MethodCSS:
		return "CSS"
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// FitOptions tunes estimation. The zero value is ready to use.
type FitOptions struct {
	Method Method
	// MaxIterations bounds the quasi-Newton iterations of each stage; 0 means 200.
	MaxIterations int
	// SkipStdErrors leaves Param.StdErr as NaN and saves the numerical
	// Hessian (about 2k² likelihood evaluations for k coefficients).
	SkipStdErrors bool
}

// Validate reports the first invalid field.
func (o FitOptions) Validate() error {
	if o.Method < MethodCSSML || o.Method > MethodCSS {
		return &OptionError{Field: "Method", Reason: fmt.Sprintf("unknown method %d", int(o.Method))}
	}
	if o.MaxIterations < 0 {
		return &OptionError{Field: "MaxIterations", Reason: "must not be negative"}
	}
	return nil
}

// Param is one estimated parameter with its name in statsmodels' style
// (mean or drift, ar.L1, ma.L1, ar.S.L24, ma.S.L24, sigma2).
type Param struct {
	Name   string
	Value  float64
	StdErr float64 // NaN when not computed or when the Hessian is not positive definite
}

// Model is a fitted (seasonal) ARIMA model.
type Model struct {
	Spec Spec
	// Params lists the coefficients in statsmodels' order, σ² last.
	Params           []Param
	AR, MA, SAR, SMA []float64
	// Mean is the mean of the differenced series: the process mean when
	// d+D = 0, the drift when d+D = 1, 0 without a constant.
	Mean   float64
	Sigma2 float64
	// LogLik is the exact Gaussian log-likelihood of the differenced series
	// (the first d+D·m observations enter only through the differences).
	LogLik         float64
	AIC, AICc, BIC float64
	// NObs counts the non-missing differenced observations in LogLik.
	NObs int
	// Method is the estimator used; Converged reports whether the optimiser
	// met its tolerance (as opposed to its iteration limit).
	Method      Method
	Converged   bool
	Iterations  int // quasi-Newton iterations over all stages
	Evaluations int // likelihood evaluations, standard errors included

	y     []float64 // the series as given
	w     []float64 // differenced series
	final filterOut // innovations and end state at the estimate
	ss    *armaSS
}

// Intercept returns the constant in statsmodels' form, c = mean·φ(1)·Φ(1),
// the intercept of φ(L)Φ(L^m)w_t = c + θ(L)Θ(L^m)ε_t.
func (m *Model) Intercept() float64 {
	return m.Mean * polyAt1(m.AR) * polyAt1(m.SAR)
}

func polyAt1(ar []float64) float64 {
	s := 1.0
	for _, a := range ar {
		s -= a
	}
	return s
}

// Fit estimates spec on y by exact Gaussian maximum likelihood. NaN in y
// marks a missing value; ±Inf is an error. opts may be nil.
func Fit(y []float64, spec Spec, opts *FitOptions) (*Model, error) {
	var o FitOptions
	if opts != nil {
		o = *opts
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.MaxIterations == 0 {
		o.MaxIterations = 200
	}
	f, err := newFitter(y, spec)
	if err != nil {
		return nil, err
	}
	return f.fit(o)
}

// LogLik evaluates the exact log-likelihood of the differenced y under spec
// at given coefficients (laid out as Model.Params without σ²) and σ². It is
// the function Fit maximises.
func LogLik(y []float64, spec Spec, coef []float64, sigma2 float64) (float64, error) {
	f, err := newFitter(y, spec)
	if err != nil {
		return 0, err
	}
	if len(coef) != f.spec.numParams()-1 {
		return 0, &OptionError{Field: "coef", Reason: fmt.Sprintf("want %d coefficients for %s, got %d", f.spec.numParams()-1, spec, len(coef))}
	}
	if !(sigma2 > 0) {
		return 0, &OptionError{Field: "sigma2", Reason: "must be positive"}
	}
	ll, ok := f.ev.logLikAt(f.spec.unpack(coef), sigma2)
	if !ok {
		return math.Inf(-1), nil
	}
	return ll, nil
}

// fitter holds one estimation problem.
type fitter struct {
	spec  Spec
	y, w  []float64
	nObs  int     // non-missing w
	mu0   float64 // mean of w
	scale float64 // standard deviation of w
	ev    *evaluator
	evals int
}

func checkSeries(y []float64) (nonMissing int, err error) {
	for i, v := range y {
		if math.IsInf(v, 0) {
			return 0, &NonFiniteError{Index: i, Value: v}
		}
		if !math.IsNaN(v) {
			nonMissing++
		}
	}
	return nonMissing, nil
}

func newFitter(y []float64, spec Spec) (*fitter, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec = spec.normalized()
	have, err := checkSeries(y)
	if err != nil {
		return nil, err
	}
	if need := spec.minObs(); have < need {
		return nil, &TooShortError{Spec: spec, Have: have, Need: need}
	}
	w := difference(y, diffPoly(spec.D, spec.SD, spec.period()))
	f := &fitter{spec: spec, y: y, w: w}
	var sum, sq float64
	for _, v := range w {
		if !math.IsNaN(v) {
			f.nObs++
			sum += v
		}
	}
	if need := spec.numParams() + 2; f.nObs < need {
		return nil, &TooShortError{Spec: spec, Have: have, Need: have + need - f.nObs}
	}
	f.mu0 = sum / float64(f.nObs)
	for _, v := range w {
		if !math.IsNaN(v) {
			sq += (v - f.mu0) * (v - f.mu0)
		}
	}
	f.scale = math.Sqrt(sq / float64(f.nObs))
	if !(f.scale > 1e-12*math.Max(1, math.Abs(f.mu0))) || math.IsInf(f.scale, 0) {
		if math.IsInf(f.scale, 0) || math.IsNaN(f.scale) {
			return nil, fmt.Errorf("%w: the differenced series overflows", ErrNonFinite)
		}
		return nil, fmt.Errorf("%w: %s leaves no variation (differenced values all equal %g)", ErrConstantSeries, spec, f.mu0)
	}
	f.ev = newEvaluator(spec, w)
	return f, nil
}

// toCoeffs maps an unconstrained vector x to natural coefficients: each
// polynomial through its partial autocorrelations (κ = x/√(1+x²)), so
// that AR parts are stationary and MA parts invertible; the mean is
// centred and scaled.
func (f *fitter) toCoeffs(x []float64) coeffs {
	s := f.spec
	var c coeffs
	i := 0
	if s.Constant {
		c.mean = f.mu0 + x[0]*f.scale
		i = 1
	}
	conv := func(n int, neg bool) []float64 {
		k := make([]float64, n)
		for j := range k {
			k[j] = toPACF(x[i+j])
		}
		out := make([]float64, n)
		pacfToAR(k, out, make([]float64, n))
		if neg {
			for j := range out {
				out[j] = -out[j]
			}
		}
		i += n
		return out
	}
	c.ar = conv(s.P, false)
	c.ma = conv(s.Q, true)
	c.sar = conv(s.SP, false)
	c.sma = conv(s.SQ, true)
	return c
}

// fromCoeffs inverts toCoeffs, pulling coefficients that are not strictly
// stationary (invertible) back inside.
func (f *fitter) fromCoeffs(c coeffs) []float64 {
	s := f.spec
	x := make([]float64, 0, s.numParams()-1)
	if s.Constant {
		x = append(x, (c.mean-f.mu0)/f.scale)
	}
	add := func(v []float64, neg bool) {
		a := append([]float64(nil), v...)
		if neg {
			for j := range a {
				a[j] = -a[j]
			}
		}
		k := make([]float64, len(a))
		if !arToPACF(a, k) {
			for j := range k {
				k[j] = 0
			}
		}
		for _, kk := range k {
			kk = math.Max(-0.99, math.Min(0.99, kk))
			x = append(x, fromPACF(kk))
		}
	}
	add(c.ar, false)
	add(c.ma, true)
	add(c.sar, false)
	add(c.sma, true)
	return x
}

// css runs the conditional recursion e_t = w_t − Σφ_k w_{t−k} − Σθ_j e_{t−j}
// from t = p' (earlier residuals zero) and returns Σe² and the count.
// Missing values carry their prediction and contribute no residual.
func (f *fitter) css(c coeffs, buf, e []float64) (ssq float64, n int) {
	m := f.spec.period()
	phi := newLagPoly(expandAR(c.ar, c.sar, m))
	theta := newLagPoly(expandMA(c.ma, c.sma, m))
	p := phi.degree()
	pl, tl := phi.lags, theta.lags
	pc, tc := phi.coef, theta.coef
	for t, v := range f.w {
		buf[t] = v - c.mean
		e[t] = 0
	}
	if f.nObs < len(f.w) {
		for t := 0; t < p && t < len(buf); t++ {
			if math.IsNaN(buf[t]) {
				buf[t] = 0
			}
		}
	}
	q := theta.degree()
	for t := p; t < len(buf); t++ {
		pred := 0.0
		for _, k := range pl {
			pred += pc[k-1] * buf[t-k]
		}
		if t >= q {
			for _, k := range tl {
				pred += tc[k-1] * e[t-k]
			}
		} else {
			for _, k := range tl {
				if k > t {
					break
				}
				pred += tc[k-1] * e[t-k]
			}
		}
		x := buf[t]
		if x != x { // missing: carry the prediction, no residual
			buf[t] = pred
			continue
		}
		r := x - pred
		e[t] = r
		ssq += r * r
		n++
	}
	return ssq, n
}

// nls is a least-squares objective f(x) = Σ r_t(x)² / (2m) for gonum's
// Newton method with the Gauss–Newton Hessian JᵀJ/m: both the CSS and the
// concentrated exact likelihood have this form (the latter through the
// determinant-scaled innovations), and Gauss–Newton needs far fewer
// passes over the data than BFGS on finite-difference gradients (about
// a third on the reference fits). J is cached per point.
type nls struct {
	k, m  int
	resid func(x, r []float64) bool // fills r; false when x is invalid
	// cache for the last point whose Jacobian was computed
	cx, cr, cj []float64 // cj is column-major (m rows, k columns)
	have       bool
	rp, xs     []float64
	passes     int

	// The decrement at the last point whose Hessian was formed, read by
	// the converger on gonum's bookkeeping goroutine while the worker may
	// already evaluate the next point.
	mu     sync.Mutex
	decX   []float64
	decVal float64
}

func newNLS(k, m int, resid func(x, r []float64) bool) *nls {
	return &nls{k: k, m: m, resid: resid,
		cx: make([]float64, k), cr: make([]float64, m), cj: make([]float64, m*k),
		rp: make([]float64, m), xs: make([]float64, k)}
}

func (p *nls) value(x []float64) float64 {
	p.passes++
	if !p.resid(x, p.rp) {
		return badObjective
	}
	s := 0.0
	for _, v := range p.rp {
		s += v * v
	}
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return badObjective
	}
	return s / (2 * float64(p.m))
}

func (p *nls) jacobian(x []float64) bool {
	if p.have && slicesEqual(p.cx, x) {
		return true
	}
	p.have = false
	p.passes++
	if !p.resid(x, p.cr) || !allFinite(p.cr) {
		return false
	}
	// Forward differences: k passes instead of 2k, and on the NAB fits
	// the optimum moved by less than 0.001 in log-likelihood but once.
	copy(p.xs, x)
	for i := range x {
		h := 1e-7 * math.Max(1, math.Abs(x[i]))
		p.xs[i] = x[i] + h
		p.passes++
		ok := p.resid(p.xs, p.rp) && allFinite(p.rp)
		if !ok {
			h = -h
			p.xs[i] = x[i] + h
			p.passes++
			ok = p.resid(p.xs, p.rp) && allFinite(p.rp)
		}
		p.xs[i] = x[i]
		col := p.cj[i*p.m : (i+1)*p.m]
		if !ok {
			clear(col)
			continue
		}
		for t := range col {
			col[t] = (p.rp[t] - p.cr[t]) / h
		}
	}
	copy(p.cx, x)
	p.have = true
	return true
}

func (p *nls) grad(g, x []float64) {
	for i := range g {
		g[i] = 0
	}
	if !p.jacobian(x) {
		return
	}
	for i := range g {
		g[i] = dot(p.cj[i*p.m:(i+1)*p.m], p.cr) / float64(p.m)
	}
}

func (p *nls) hess(h *mat.SymDense, x []float64) {
	k := p.k
	acc := make([]float64, k*k)
	if p.jacobian(x) {
		for i := 0; i < k; i++ {
			ci := p.cj[i*p.m : (i+1)*p.m]
			for j := 0; j <= i; j++ {
				acc[i*k+j] = dot(ci, p.cj[j*p.m:(j+1)*p.m])
			}
		}
	}
	for i := 0; i < k; i++ {
		for j := 0; j <= i; j++ {
			h.SetSym(i, j, acc[i*k+j]/float64(p.m))
		}
	}
	// Newton decrement ½gᵀH⁻¹g at x.
	dec := math.NaN()
	var ch mat.Cholesky
	if p.have && ch.Factorize(h) {
		g := make([]float64, k)
		p.grad(g, x)
		gv := mat.NewVecDense(k, g)
		var d mat.VecDense
		if ch.SolveVecTo(&d, gv) == nil {
			dec = 0.5 * mat.Dot(gv, &d)
		}
	}
	p.mu.Lock()
	p.decX = append(p.decX[:0], x...)
	p.decVal = dec
	p.mu.Unlock()
}

// decrement returns the Newton decrement recorded for x, or NaN.
func (p *nls) decrement(x []float64) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if slicesEqual(p.decX, x) {
		return p.decVal
	}
	return math.NaN()
}

// solve minimises p from x0. It stops when the Gauss–Newton step would
// raise the log-likelihood, −(n/2)·log f, by less than llTol.
func (p *nls) solve(x0 []float64, maxIter int, llTol float64) (*optimize.Result, error) {
	prob := optimize.Problem{Func: p.value, Grad: p.grad, Hess: p.hess}
	settings := &optimize.Settings{
		GradientThreshold: 1e-14,
		MajorIterations:   maxIter,
		Converger:         &decrementConverger{p: p, tol: llTol},
	}
	return optimize.Minimize(prob, x0, settings, &optimize.Newton{Linesearcher: &optimize.Backtracking{}})
}

// decrementConverger stops on the Newton decrement: the gain that a full
// Gauss–Newton step predicts, ½gᵀH⁻¹g, turned into log-likelihood units.
// A gradient test alone stalls on finite-difference noise.
//
// It also stops when five iterations together gained less than 1e-3 in
// log-likelihood: the optimiser is then crawling along a ridge, typically
// towards a unit root, where the likelihood no longer changes materially.
type decrementConverger struct {
	p    *nls
	tol  float64
	hist []float64 // objective at recent major iterations
}

func (c *decrementConverger) Init(int) { c.hist = c.hist[:0] }

func (c *decrementConverger) Converged(loc *optimize.Location) optimize.Status {
	p := c.p
	c.hist = append(c.hist, loc.F)
	if n := len(c.hist); n > 5 && loc.F > 0 && loc.F < badObjective {
		old := c.hist[n-6]
		if gain := float64(p.m) / 2 * math.Log(old/loc.F); gain < 1e-3 {
			return optimize.FunctionConvergence
		}
	}
	dec := p.decrement(loc.X)
	if math.IsNaN(dec) || !(loc.F > 0) || loc.F >= badObjective {
		return optimize.NotTerminated
	}
	if float64(p.m)/2*dec/loc.F < c.tol {
		return optimize.FunctionConvergence
	}
	return optimize.NotTerminated
}

func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1 float64
	i := 0
	for ; i+1 < len(a); i += 2 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
	}
	if i < len(a) {
		s0 += a[i] * b[i]
	}
	return s0 + s1
}

func slicesEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const badObjective = 1e10 // finite stand-in for an invalid point; keeps line searches sane

// Stopping tolerances in log-likelihood units (predicted gain of one more
// Gauss–Newton step). The CSS stage only provides a start.
const cssGradTol, mlGradTol = 1e-2, 1e-6

// cssStage minimises the conditional sum of squares from x0.
func (f *fitter) cssStage(x0 []float64, maxIter int) (x []float64, iters int, ok bool) {
	k := len(x0)
	n := len(f.w)
	inv := 1 / f.scale
	buf := make([]float64, n)
	e := make([]float64, n)
	css := newNLS(k, n, func(x, r []float64) bool {
		ssq, cnt := f.css(f.toCoeffs(x), buf, e)
		if cnt == 0 || math.IsNaN(ssq) || math.IsInf(ssq, 0) {
			return false
		}
		for t, v := range e {
			r[t] = v * inv
		}
		return true
	})
	res, err := css.solve(x0, maxIter, cssGradTol)
	f.evals += css.passes
	if res == nil || !(res.F < badObjective) || !allFinite(res.X) {
		return x0, 0, false
	}
	return res.X, res.MajorIterations, err == nil
}

// mlStage maximises the exact likelihood from x0; ll is −∞ on failure.
func (f *fitter) mlStage(x0 []float64, maxIter int) (x []float64, ll float64, iters int, conv bool) {
	k := len(x0)
	n := len(f.w)
	inv := 1 / f.scale
	ml := newNLS(k, n, func(x, r []float64) bool {
		out, ok := f.ev.run(f.toCoeffs(x), filterOpts{std: r})
		if !ok || out.nobs == 0 {
			return false
		}
		// Determinant-scaled innovations: Σ r² = (Σ v²/F)(ΠF)^{1/n}/scale²,
		// so minimising it maximises the concentrated likelihood.
		g := math.Exp(out.sumLogF/(2*float64(out.nobs))) * inv
		for t := range r {
			r[t] *= g
		}
		return true
	})
	res, err := ml.solve(append([]float64(nil), x0...), maxIter, mlGradTol)
	f.evals += ml.passes
	if res == nil || !(res.F < badObjective) || !allFinite(res.X) {
		return x0, math.Inf(-1), 0, false
	}
	ll, _, ok := f.ev.concentrated(f.toCoeffs(res.X))
	f.evals++
	if !ok {
		return x0, math.Inf(-1), 0, false
	}
	conv = err == nil && (res.Status == optimize.GradientThreshold ||
		res.Status == optimize.FunctionConvergence || res.Status == optimize.Success)
	return res.X, ll, res.MajorIterations, conv
}

func (f *fitter) fit(o FitOptions) (*Model, error) {
	s := f.spec
	k := s.numParams() - 1
	x := make([]float64, k)
	if k == 0 {
		return f.finish(f.toCoeffs(x), o, 0, true)
	}
	iters := 0
	if o.Method == MethodCSS {
		xs, it, ok := f.cssStage(x, o.MaxIterations)
		return f.finish(f.toCoeffs(xs), o, it, ok)
	}
	// Starting points for the exact likelihood. ARMA likelihoods are often
	// multimodal on real metrics; on the NAB series the CSS estimate and
	// the Hannan–Rissanen estimate each miss the better optimum by tens of
	// log-likelihood units in a sizeable share of fits, and the better of
	// the two rarely does, so CSS-ML climbs from both.
	var starts [][]float64
	if o.Method == MethodCSSML {
		xs, it, _ := f.cssStage(x, o.MaxIterations)
		iters += it
		starts = append(starts, xs)
	}
	if c, ok := f.hannanRissanen(); ok {
		starts = append(starts, f.fromCoeffs(c))
	} else if o.Method == MethodML {
		starts = append(starts, x)
	}
	best := math.Inf(-1)
	converged := false
	for _, st := range starts {
		xs, ll, it, ok := f.mlStage(st, o.MaxIterations)
		iters += it
		if ll > best {
			best, converged = ll, ok
			copy(x, xs)
		}
	}
	if math.IsInf(best, -1) {
		return nil, fmt.Errorf("%w: %s: no finite likelihood from the starting values", ErrNotConverged, s)
	}
	return f.finish(f.toCoeffs(x), o, iters, converged)
}

func allFinite(x []float64) bool {
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// finish evaluates the estimate, its standard errors and the end state.
func (f *fitter) finish(c coeffs, o FitOptions, iters int, converged bool) (*Model, error) {
	s := f.spec
	ss := s.ssModel(c)
	out, ok := f.ev.run(c, filterOpts{innovations: true})
	if !ok || out.nobs == 0 {
		return nil, fmt.Errorf("%w: %s: likelihood not finite at the estimate", ErrNotConverged, s)
	}
	n := float64(out.nobs)
	sigma2 := out.ssq / n
	ll := -0.5*n*(math.Log(2*math.Pi)+1+math.Log(sigma2)) - 0.5*out.sumLogF
	if math.IsNaN(ll) || math.IsInf(ll, 0) {
		return nil, fmt.Errorf("%w: %s: likelihood not finite at the estimate", ErrNotConverged, s)
	}
	kp := float64(s.numParams())
	m := &Model{
		Spec: s,
		AR:   c.ar, MA: c.ma, SAR: c.sar, SMA: c.sma,
		Mean:   c.mean,
		Sigma2: sigma2,
		LogLik: ll,
		AIC:    -2*ll + 2*kp,
		BIC:    -2*ll + kp*math.Log(n),
		NObs:   out.nobs,
		Method: o.Method, Converged: converged, Iterations: iters,
		y: f.y, w: f.w, final: out, ss: ss,
	}
	if n-kp-1 > 0 {
		m.AICc = m.AIC + 2*kp*(kp+1)/(n-kp-1)
	} else {
		m.AICc = math.Inf(1)
	}
	nat := s.pack(c)
	se := make([]float64, len(nat))
	for i := range se {
		se[i] = math.NaN()
	}
	if !o.SkipStdErrors && len(nat) > 0 {
		se = f.stdErrors(nat)
	}
	for i, name := range s.paramNames() {
		m.Params = append(m.Params, Param{Name: name, Value: nat[i], StdErr: se[i]})
	}
	m.Params = append(m.Params, Param{Name: "sigma2", Value: sigma2, StdErr: sigma2 * math.Sqrt(2/n)})
	m.Evaluations = f.evals
	if !m.final.conv && len(m.final.pNext) == 0 && ss.r*ss.r*len(f.w) <= 5e7 {
		// The gain had not settled (an MA root near the unit circle or a
		// short series): keep P_{n+1} so that forecast variances include
		// the uncertainty of the end state.
		if o2, ok := f.ev.run(c, filterOpts{wantP: true}); ok {
			m.final.pNext = o2.pNext
		}
	}
	return m, nil
}

// stdErrors inverts the numerical Hessian of the profile log-likelihood
// (σ² concentrated out) at the natural coefficients. The profile
// Hessian's inverse equals the matching block of the full inverse.
func (f *fitter) stdErrors(nat []float64) []float64 {
	s := f.spec
	k := len(nat)
	nan := make([]float64, k)
	for i := range nan {
		nan[i] = math.NaN()
	}
	h := make([]float64, k)
	for i, v := range nat {
		h[i] = 1e-4 * math.Max(math.Abs(v), 0.1)
		if s.Constant && i == 0 {
			h[i] = 1e-3 * f.scale
		}
	}
	xs := append([]float64(nil), nat...)
	ll := func() float64 {
		f.evals++
		v, _, ok := f.ev.concentrated(s.unpack(xs))
		if !ok {
			return math.NaN()
		}
		return v
	}
	f0 := ll()
	H := mat.NewSymDense(k, nil)
	for i := 0; i < k; i++ {
		xs[i] = nat[i] + h[i]
		fp := ll()
		xs[i] = nat[i] - h[i]
		fm := ll()
		xs[i] = nat[i]
		H.SetSym(i, i, -(fp-2*f0+fm)/(h[i]*h[i]))
		for j := 0; j < i; j++ {
			var v [4]float64
			for q, sg := range [4][2]float64{{1, 1}, {1, -1}, {-1, 1}, {-1, -1}} {
				xs[i] = nat[i] + sg[0]*h[i]
				xs[j] = nat[j] + sg[1]*h[j]
				v[q] = ll()
			}
			xs[i], xs[j] = nat[i], nat[j]
			H.SetSym(i, j, -(v[0]-v[1]-v[2]+v[3])/(4*h[i]*h[j]))
		}
	}
	for i := 0; i < k; i++ {
		for j := 0; j <= i; j++ {
			if v := H.At(i, j); math.IsNaN(v) || math.IsInf(v, 0) {
				return nan
			}
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(H) {
		return nan
	}
	var inv mat.SymDense
	if err := ch.InverseTo(&inv); err != nil {
		return nan
	}
	se := make([]float64, k)
	for i := range se {
		se[i] = math.Sqrt(inv.At(i, i))
	}
	return se
}
