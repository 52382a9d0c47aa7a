package mlforecast

import (
	"fmt"
	"math"
	"math/cmplx"

	"gonum.org/v1/gonum/mat"
)

// AutoOptions bounds the automatic order search. The zero value is usable:
// zero limits take the defaults of DefaultAutoOptions.
type AutoOptions struct {
	// Period is the seasonal period m; 0 or 1 searches non-seasonal models.
	Period int
	// D and SD fix the differencing orders; nil chooses them by test.
	D, SD *int
	// MaxD and MaxSD bound the tested differencing (defaults 2 and 1).
	MaxD, MaxSD int
	// MaxP, MaxQ, MaxSP, MaxSQ bound each order (defaults 5, 5, 2, 2).
	// As in forecast::auto.arima's stepwise search, p+q+P+Q is not bounded.
	MaxP, MaxQ, MaxSP, MaxSQ int
	// MaxModels bounds the number of models fitted (default 94).
	MaxModels int
	// NoConstant forbids a mean or drift even where d+D <= 1.
	NoConstant bool
	// KPSSAlpha is the level of the KPSS test for d: 0.01, 0.025, 0.05
	// (default) or 0.10.
	KPSSAlpha float64
	// SeasonalThreshold is the seasonal strength from which D=1 (default
	// 0.64, as forecast::nsdiffs).
	SeasonalThreshold float64
	// MinRoot rejects candidates with an AR or MA root (of a non-seasonal
	// or seasonal factor, in its own variable) inside this modulus
	// (default 1.001): such models are on the edge of non-stationarity or
	// non-invertibility. forecast::auto.arima uses 1.01 on the expanded
	// polynomial, which rejects any seasonal coefficient above 1.01^-m
	// (0.057 at m = 288); on the NAB series 1.01 per factor also cost
	// accuracy (mean held-out MASE 1.27 against 1.16 with 1.001).
	MinRoot float64
	// Fit passes estimation options to every candidate (standard errors
	// are computed for the chosen model only).
	Fit FitOptions
}

// DefaultAutoOptions returns the limits of forecast::auto.arima.
func DefaultAutoOptions() AutoOptions {
	return AutoOptions{
		MaxD: 2, MaxSD: 1,
		MaxP: 5, MaxQ: 5, MaxSP: 2, MaxSQ: 2,
		MaxModels: 94, KPSSAlpha: 0.05, SeasonalThreshold: 0.64, MinRoot: 1.001,
	}
}

func (o *AutoOptions) ensureDefaults() {
	d := DefaultAutoOptions()
	if o.MaxD == 0 {
		o.MaxD = d.MaxD
	}
	if o.MaxSD == 0 {
		o.MaxSD = d.MaxSD
	}
	if o.MaxP == 0 {
		o.MaxP = d.MaxP
	}
	if o.MaxQ == 0 {
		o.MaxQ = d.MaxQ
	}
	if o.MaxSP == 0 {
		o.MaxSP = d.MaxSP
	}
	if o.MaxSQ == 0 {
		o.MaxSQ = d.MaxSQ
	}
	if o.MaxModels == 0 {
		o.MaxModels = d.MaxModels
	}
	if o.KPSSAlpha == 0 {
		o.KPSSAlpha = d.KPSSAlpha
	}
	if o.SeasonalThreshold == 0 {
		o.SeasonalThreshold = d.SeasonalThreshold
	}
	if o.MinRoot == 0 {
		o.MinRoot = d.MinRoot
	}
}

// Validate reports the first invalid field (after defaults are applied).
func (o AutoOptions) Validate() error {
	o.ensureDefaults()
	neg := func(f string, v int) error {
		if v < 0 {
			return &OptionError{Field: f, Reason: "must not be negative"}
		}
		return nil
	}
	for _, c := range []struct {
		f string
		v int
	}{{"Period", o.Period}, {"MaxD", o.MaxD}, {"MaxSD", o.MaxSD}, {"MaxP", o.MaxP}, {"MaxQ", o.MaxQ},
		{"MaxSP", o.MaxSP}, {"MaxSQ", o.MaxSQ}, {"MaxModels", o.MaxModels}} {
		if err := neg(c.f, c.v); err != nil {
			return err
		}
	}
	if o.Period > MaxPeriod {
		return &OptionError{Field: "Period", Reason: fmt.Sprintf("must be at most %d", MaxPeriod)}
	}
	if o.MaxD > MaxDiff {
		return &OptionError{Field: "MaxD", Reason: fmt.Sprintf("must be at most %d", MaxDiff)}
	}
	if o.MaxSD > MaxSeasonalDiff {
		return &OptionError{Field: "MaxSD", Reason: fmt.Sprintf("must be at most %d", MaxSeasonalDiff)}
	}
	if o.MaxP > MaxNonSeasonalOrder || o.MaxQ > MaxNonSeasonalOrder {
		return &OptionError{Field: "MaxP/MaxQ", Reason: fmt.Sprintf("must be at most %d", MaxNonSeasonalOrder)}
	}
	if o.MaxSP > MaxSeasonalOrder || o.MaxSQ > MaxSeasonalOrder {
		return &OptionError{Field: "MaxSP/MaxSQ", Reason: fmt.Sprintf("must be at most %d", MaxSeasonalOrder)}
	}
	if o.D != nil && (*o.D < 0 || *o.D > MaxDiff) {
		return &OptionError{Field: "D", Reason: fmt.Sprintf("must be in [0,%d]", MaxDiff)}
	}
	if o.SD != nil && (*o.SD < 0 || *o.SD > MaxSeasonalDiff) {
		return &OptionError{Field: "SD", Reason: fmt.Sprintf("must be in [0,%d]", MaxSeasonalDiff)}
	}
	if o.SD != nil && *o.SD > 0 && o.Period < 2 {
		return &OptionError{Field: "SD", Reason: "seasonal differencing needs Period >= 2"}
	}
	if _, ok := kpssCritical[o.KPSSAlpha]; !ok {
		return &OptionError{Field: "KPSSAlpha", Reason: "must be one of 0.01, 0.025, 0.05, 0.10"}
	}
	if !(o.SeasonalThreshold > 0 && o.SeasonalThreshold < 1) {
		return &OptionError{Field: "SeasonalThreshold", Reason: "must be in (0,1)"}
	}
	if !(o.MinRoot >= 1) {
		return &OptionError{Field: "MinRoot", Reason: "must be at least 1"}
	}
	return o.Fit.Validate()
}

// Candidate is one model tried by Auto.
type Candidate struct {
	Spec   Spec
	AICc   float64 // +Inf when the fit failed or was rejected
	LogLik float64
	Note   string // why the model was rejected, if it was
}

// AutoResult is the chosen model with the evidence for it.
type AutoResult struct {
	Model *Model
	// KPSS lists the tests that chose d: one per differencing tried, the
	// last one not rejecting (or d reached MaxD).
	KPSS []KPSSResult
	// SeasonalStrength is the statistic that chose D (NaN when not tested).
	SeasonalStrength float64
	// Log lists every model fitted, in order.
	Log []Candidate
}

// KPSSResult is a KPSS level-stationarity test.
type KPSSResult struct {
	Stat     float64
	Lags     int
	Critical float64 // at the requested level
	Reject   bool    // stationarity rejected: difference
}

// Critical values of the KPSS level test (Kwiatkowski et al. 1992, table 1).
var kpssCritical = map[float64]float64{0.10: 0.347, 0.05: 0.463, 0.025: 0.574, 0.01: 0.739}

// KPSS tests y for level stationarity with a Bartlett long-run variance.
// lags < 0 chooses trunc(3√n/13) as forecast::ndiffs does. alpha is one of
// 0.01, 0.025, 0.05, 0.10. NaN values are dropped.
func KPSS(y []float64, lags int, alpha float64) (KPSSResult, error) {
	crit, ok := kpssCritical[alpha]
	if !ok {
		return KPSSResult{}, &OptionError{Field: "alpha", Reason: "must be one of 0.01, 0.025, 0.05, 0.10"}
	}
	if _, err := checkSeries(y); err != nil {
		return KPSSResult{}, err
	}
	x := make([]float64, 0, len(y))
	for _, v := range y {
		if !math.IsNaN(v) {
			x = append(x, v)
		}
	}
	n := len(x)
	if n < 4 {
		return KPSSResult{}, &TooShortError{Have: n, Need: 4}
	}
	if lags < 0 {
		lags = int(3 * math.Sqrt(float64(n)) / 13)
	}
	if lags > n-1 {
		lags = n - 1
	}
	mu := mean(x)
	e := make([]float64, n)
	for i, v := range x {
		e[i] = v - mu
	}
	var s, eta float64
	for _, v := range e {
		s += v
		eta += s * s
	}
	lrv := 0.0
	for _, v := range e {
		lrv += v * v
	}
	for l := 1; l <= lags; l++ {
		c := 0.0
		for t := l; t < n; t++ {
			c += e[t] * e[t-l]
		}
		lrv += 2 * (1 - float64(l)/float64(lags+1)) * c
	}
	lrv /= float64(n)
	r := KPSSResult{Lags: lags, Critical: crit}
	if !(lrv > 0) {
		return r, nil // constant: nothing to difference
	}
	r.Stat = eta / (float64(n) * float64(n) * lrv)
	r.Reject = r.Stat > crit
	return r, nil
}

// Auto chooses and fits a seasonal ARIMA model in the manner of
// Hyndman & Khandakar (2008): D by seasonal strength, d by repeated KPSS
// tests on the (seasonally) differenced series, then a stepwise search
// over p, q, P, Q and the constant that moves to the neighbour with the
// lowest AICc until none improves.
func Auto(y []float64, opts AutoOptions) (*AutoResult, error) {
	opts.ensureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	have, err := checkSeries(y)
	if err != nil {
		return nil, err
	}
	if have < 8 {
		return nil, &TooShortError{Spec: Spec{}, Have: have, Need: 8}
	}
	m := opts.Period
	if m < 2 {
		m = 0
	}
	res := &AutoResult{SeasonalStrength: math.NaN()}

	// D.
	sd := 0
	switch {
	case opts.SD != nil:
		sd = *opts.SD
	case m >= 2 && opts.MaxSD > 0 && have >= 2*m+m/2:
		fs, err := SeasonalStrength(y, m)
		if err == nil {
			res.SeasonalStrength = fs
			if fs > opts.SeasonalThreshold {
				sd = 1
			}
		}
	}
	x := y
	if sd > 0 {
		x = difference(y, diffPoly(0, sd, m))
	}
	// d.
	d := 0
	if opts.D != nil {
		d = *opts.D
	} else {
		for d < opts.MaxD {
			if constantSeries(x) {
				break
			}
			k, err := KPSS(x, -1, opts.KPSSAlpha)
			if err != nil {
				break
			}
			res.KPSS = append(res.KPSS, k)
			if !k.Reject {
				break
			}
			d++
			x = difference(x, diffPoly(1, 0, 0))
		}
	}

	search := &stepwise{y: y, opts: opts, m: m, d: d, sd: sd, fitted: map[Spec]*Model{}}
	best, err := search.run()
	res.Log = search.log
	if err != nil {
		return res, err
	}
	// Refit the winner with standard errors.
	fo := opts.Fit
	fo.SkipStdErrors = false
	final, err := Fit(y, best, &fo)
	if err != nil {
		return res, err
	}
	res.Model = final
	return res, nil
}

func constantSeries(x []float64) bool {
	first := math.NaN()
	for _, v := range x {
		if math.IsNaN(v) {
			continue
		}
		if math.IsNaN(first) {
			first = v
		} else if v != first {
			return false
		}
	}
	return true
}

type stepwise struct {
	y        []float64
	opts     AutoOptions
	m        int
	d, sd    int
	fitted   map[Spec]*Model
	log      []Candidate
	firstErr error
}

// try fits s once and returns its AICc (+Inf when it failed or was rejected).
func (w *stepwise) try(s Spec) float64 {
	s = s.normalized()
	if _, ok := w.fitted[s]; ok {
		return w.aicc(s)
	}
	if len(w.log) >= w.opts.MaxModels {
		return math.Inf(1)
	}
	fo := w.opts.Fit
	fo.SkipStdErrors = true
	mdl, err := Fit(w.y, s, &fo)
	c := Candidate{Spec: s, AICc: math.Inf(1), LogLik: math.NaN()}
	switch {
	case err != nil:
		c.Note = err.Error()
		if w.firstErr == nil {
			w.firstErr = err
		}
		mdl = nil
	default:
		c.LogLik = mdl.LogLik
		if note := rootsNote(mdl, w.opts.MinRoot); note != "" {
			c.Note = note
			mdl = nil
		} else {
			c.AICc = mdl.AICc
		}
	}
	w.fitted[s] = mdl
	w.log = append(w.log, c)
	return c.AICc
}

func (w *stepwise) aicc(s Spec) float64 {
	if m := w.fitted[s.normalized()]; m != nil {
		return m.AICc
	}
	return math.Inf(1)
}

func (w *stepwise) spec(p, q, P, Q int, c bool) Spec {
	return Spec{P: p, D: w.d, Q: q, SP: P, SD: w.sd, SQ: Q, Period: w.m, Constant: c}
}

func (w *stepwise) allowed(s Spec) bool {
	o := w.opts
	if s.P < 0 || s.Q < 0 || s.SP < 0 || s.SQ < 0 {
		return false
	}
	if s.P > o.MaxP || s.Q > o.MaxQ || s.SP > o.MaxSP || s.SQ > o.MaxSQ {
		return false
	}
	if w.m == 0 && (s.SP > 0 || s.SQ > 0) {
		return false
	}
	if s.Constant && (o.NoConstant || s.D+s.SD > 1) {
		return false
	}
	return true
}

func (w *stepwise) run() (Spec, error) {
	o := w.opts
	allowC := !o.NoConstant && w.d+w.sd <= 1
	seasonal := w.m >= 2
	clamp := func(v, max int) int {
		if v > max {
			return max
		}
		return v
	}
	p, q := clamp(2, o.MaxP), clamp(2, o.MaxQ)
	P, Q := 0, 0
	if seasonal {
		P, Q = clamp(1, o.MaxSP), clamp(1, o.MaxSQ)
	}
	starts := []Spec{w.spec(p, q, P, Q, allowC), w.spec(0, 0, 0, 0, allowC)}
	if o.MaxP > 0 || (seasonal && o.MaxSP > 0) {
		sp := 0
		if seasonal && o.MaxSP > 0 {
			sp = 1
		}
		starts = append(starts, w.spec(clamp(1, o.MaxP), 0, sp, 0, allowC))
	}
	if o.MaxQ > 0 || (seasonal && o.MaxSQ > 0) {
		sq := 0
		if seasonal && o.MaxSQ > 0 {
			sq = 1
		}
		starts = append(starts, w.spec(0, clamp(1, o.MaxQ), 0, sq, allowC))
	}
	if allowC {
		starts = append(starts, w.spec(0, 0, 0, 0, false))
	}
	var best Spec
	bestIC := math.Inf(1)
	for _, s := range starts {
		if !w.allowed(s) {
			continue
		}
		if ic := w.try(s); ic < bestIC {
			best, bestIC = s.normalized(), ic
		}
	}
	for len(w.log) < o.MaxModels {
		improved := false
		cur := best
		c := cur.Constant
		moves := [][4]int{
			{0, 0, -1, 0}, {0, 0, 0, -1}, {0, 0, 1, 0}, {0, 0, 0, 1},
			{0, 0, -1, -1}, {0, 0, -1, 1}, {0, 0, 1, -1}, {0, 0, 1, 1},
			{-1, 0, 0, 0}, {0, -1, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0},
			{-1, -1, 0, 0}, {-1, 1, 0, 0}, {1, -1, 0, 0}, {1, 1, 0, 0},
		}
		for _, mv := range moves {
			s := w.spec(cur.P+mv[0], cur.Q+mv[1], cur.SP+mv[2], cur.SQ+mv[3], c)
			if !w.allowed(s) {
				continue
			}
			if _, done := w.fitted[s.normalized()]; done {
				continue
			}
			if len(w.log) >= o.MaxModels {
				break
			}
			if ic := w.try(s); ic < bestIC {
				best, bestIC, improved = s.normalized(), ic, true
				break
			}
		}
		if !improved && allowC && len(w.log) < o.MaxModels {
			s := w.spec(cur.P, cur.Q, cur.SP, cur.SQ, !c)
			if w.allowed(s) {
				if _, done := w.fitted[s.normalized()]; !done {
					if ic := w.try(s); ic < bestIC {
						best, bestIC, improved = s.normalized(), ic, true
					}
				}
			}
		}
		if !improved {
			break
		}
	}
	if math.IsInf(bestIC, 1) {
		if w.firstErr != nil {
			return Spec{}, fmt.Errorf("%w: no candidate model could be fitted: %w", ErrNotConverged, w.firstErr)
		}
		return Spec{}, fmt.Errorf("%w: every candidate model was rejected", ErrNotConverged)
	}
	return best, nil
}

// rootsNote returns why m is rejected for roots inside minRoot, or "".
func rootsNote(m *Model, minRoot float64) string {
	check := func(name string, c []float64, ma bool) string {
		if len(c) == 0 {
			return ""
		}
		if r := minRootModulus(c, ma); r < minRoot {
			return fmt.Sprintf("%s root of modulus %.4f (< %.2f)", name, r, minRoot)
		}
		return ""
	}
	for _, c := range []struct {
		n  string
		v  []float64
		ma bool
	}{{"AR", m.AR, false}, {"MA", m.MA, true}, {"seasonal AR", m.SAR, false}, {"seasonal MA", m.SMA, true}} {
		if s := check(c.n, c.v, c.ma); s != "" {
			return s
		}
	}
	return ""
}

// minRootModulus returns the smallest root modulus of 1 − Σc_k z^k (AR) or
// 1 + Σc_k z^k (MA), via the eigenvalues of the companion matrix of the
// reciprocal polynomial (the roots' inverses).
func minRootModulus(c []float64, ma bool) float64 {
	p := len(c)
	for p > 0 && c[p-1] == 0 {
		p--
	}
	if p == 0 {
		return math.Inf(1)
	}
	sign := 1.0
	if ma {
		sign = -1
	}
	// z^p − a_1 z^{p−1} − … − a_p with a = c (AR) or −c (MA) has as roots
	// the inverses of the lag polynomial's roots.
	A := mat.NewDense(p, p, nil)
	for j := 0; j < p; j++ {
		A.Set(0, j, sign*c[j])
	}
	for i := 1; i < p; i++ {
		A.Set(i, i-1, 1)
	}
	var eig mat.Eigen
	if !eig.Factorize(A, mat.EigenNone) {
		return 0
	}
	maxInv := 0.0
	for _, v := range eig.Values(nil) {
		maxInv = math.Max(maxInv, cmplx.Abs(v))
	}
	if maxInv == 0 {
		return math.Inf(1)
	}
	return 1 / maxInv
}
