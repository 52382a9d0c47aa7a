package mlforecast

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// Anomaly is one flagged point.
type Anomaly struct {
	Index    int     // position in the series
	Value    float64 // observed value
	Expected float64 // what the detector expected there
	Score    float64 // robust z-score: |deviation| / (1.4826·MAD)
}

// Direction restricts which deviations count.
type Direction int

const (
	DirectionBoth Direction = iota // spikes and dips
	DirectionUp                    // only values above the expectation
	DirectionDown                  // only values below it
)

func (d Direction) keep(dev float64) bool {
	switch d {
	case DirectionUp:
		return dev > 0
	case DirectionDown:
		return dev < 0
	}
	return true
}

// ResidualOptions configures DetectResiduals.
type ResidualOptions struct {
	// Spec is the model to fit; nil selects one with Auto.
	Spec *Spec
	// Auto limits the search when Spec is nil.
	Auto AutoOptions
	// Fit passes estimation options when Spec is set.
	Fit FitOptions
	// Threshold is the robust z-score above which a point is anomalous
	// (default 4).
	Threshold float64
	// MaxAnomalies caps the flagged share of points, keeping the highest
	// scores (default 0.01). Residuals of real metrics are heavy-tailed,
	// and without a cap a quiet series with rare bursts flags hundreds.
	MaxAnomalies float64
	// Direction restricts the deviations that count (default DirectionBoth).
	Direction Direction
}

// Validate reports the first invalid field.
func (o ResidualOptions) Validate() error {
	if o.Threshold < 0 || math.IsNaN(o.Threshold) {
		return &OptionError{Field: "Threshold", Reason: "must not be negative"}
	}
	if o.MaxAnomalies < 0 || o.MaxAnomalies > 1 || math.IsNaN(o.MaxAnomalies) {
		return &OptionError{Field: "MaxAnomalies", Reason: "must be in [0,1]"}
	}
	if o.Direction < DirectionBoth || o.Direction > DirectionDown {
		return &OptionError{Field: "Direction", Reason: "unknown direction"}
	}
	if o.Spec != nil {
		if err := o.Spec.Validate(); err != nil {
			return err
		}
		return o.Fit.Validate()
	}
	return o.Auto.Validate()
}

// ResidualResult is the outcome of DetectResiduals.
type ResidualResult struct {
	Anomalies []Anomaly
	Model     *Model
	// Center and Scale are the median and 1.4826·MAD of the standardised
	// one-step residuals.
	Center, Scale float64
}

// DetectResiduals fits an ARIMA model to y and flags the points whose
// one-step-ahead prediction error is far out in robust terms: each error
// is standardised by its prediction variance (larger after gaps and at
// the start), and scored against the median and MAD of all of them, so
// the anomalies themselves do not inflate the scale. Expected is the
// one-step prediction. A spike also disturbs the next predictions, so
// the points right after one may be flagged too.
func DetectResiduals(y []float64, opts ResidualOptions) (*ResidualResult, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Threshold == 0 {
		opts.Threshold = 4
	}
	if opts.MaxAnomalies == 0 {
		opts.MaxAnomalies = 0.01
	}
	var m *Model
	if opts.Spec != nil {
		var err error
		if m, err = Fit(y, *opts.Spec, &opts.Fit); err != nil {
			return nil, err
		}
	} else {
		ar, err := Auto(y, opts.Auto)
		if err != nil {
			return nil, err
		}
		m = ar.Model
	}
	res := m.Residuals()
	vars := m.ResidualVariances()
	fitted := m.Fitted()
	z := make([]float64, len(y))
	for t := range z {
		z[t] = res[t] / math.Sqrt(vars[t]/m.Sigma2)
	}
	center, scale := mad(z)
	out := &ResidualResult{Model: m, Center: center, Scale: scale}
	if !(scale > 0) {
		return out, nil
	}
	for t, v := range z {
		if math.IsNaN(v) {
			continue
		}
		dev := v - center
		s := math.Abs(dev) / scale
		if s > opts.Threshold && opts.Direction.keep(dev) {
			out.Anomalies = append(out.Anomalies, Anomaly{Index: t, Value: y[t], Expected: fitted[t], Score: s})
		}
	}
	if limit := int(opts.MaxAnomalies * float64(len(y))); len(out.Anomalies) > limit {
		slices.SortFunc(out.Anomalies, func(a, b Anomaly) int {
			if a.Score != b.Score {
				if a.Score > b.Score {
					return -1
				}
				return 1
			}
			return a.Index - b.Index
		})
		out.Anomalies = out.Anomalies[:limit]
		slices.SortFunc(out.Anomalies, func(a, b Anomaly) int { return a.Index - b.Index })
	}
	return out, nil
}

// ESDOptions configures DetectSHESD.
type ESDOptions struct {
	// Period is the seasonal period; 0 or 1 tests the series around its
	// median without a seasonal component.
	Period int
	// MaxAnomalies bounds the flagged share of points (default 0.02).
	MaxAnomalies float64
	// Alpha is the significance level of each ESD step (default 0.05).
	Alpha float64
	// Window, when positive, splits the series into pieces of that many
	// points tested separately (Twitter's "longterm" mode for series with
	// a drifting level); a short last piece joins the previous one.
	Window int
	// Direction restricts the deviations that count (default DirectionBoth).
	Direction Direction
}

// Validate reports the first invalid field.
func (o ESDOptions) Validate() error {
	if o.Period < 0 || o.Period > MaxPeriod {
		return &OptionError{Field: "Period", Reason: fmt.Sprintf("must be in [0,%d]", MaxPeriod)}
	}
	if o.MaxAnomalies < 0 || o.MaxAnomalies > 0.49 || math.IsNaN(o.MaxAnomalies) {
		return &OptionError{Field: "MaxAnomalies", Reason: "must be in [0, 0.49]"}
	}
	if o.Alpha < 0 || o.Alpha >= 1 || math.IsNaN(o.Alpha) {
		return &OptionError{Field: "Alpha", Reason: "must be in [0,1)"}
	}
	if o.Window < 0 {
		return &OptionError{Field: "Window", Reason: "must not be negative"}
	}
	if o.Direction < DirectionBoth || o.Direction > DirectionDown {
		return &OptionError{Field: "Direction", Reason: "unknown direction"}
	}
	return nil
}

// DetectSHESD runs the seasonal hybrid ESD test (Hochenbaum, Vallis &
// Kejariwal 2017): the robust seasonal component (see Decompose) and the
// median are removed, then the generalised ESD test of Rosner (1983) with
// median and MAD in place of mean and standard deviation picks the
// outliers, at most MaxAnomalies of the points. Expected is seasonal +
// median; Score is the point's robust z-score in the step that removed it.
func DetectSHESD(y []float64, opts ESDOptions) ([]Anomaly, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxAnomalies == 0 {
		opts.MaxAnomalies = 0.02
	}
	if opts.Alpha == 0 {
		opts.Alpha = 0.05
	}
	have, err := checkSeries(y)
	if err != nil {
		return nil, err
	}
	if have < 8 {
		return nil, &TooShortError{Have: have, Need: 8}
	}
	n := len(y)
	seasonal := make([]float64, n)
	if opts.Period >= 2 {
		d, err := Decompose(y, opts.Period, true)
		if err != nil {
			return nil, err
		}
		copy(seasonal, d.Seasonal)
	}
	var out []Anomaly
	pieces := [][2]int{{0, n}}
	if opts.Window > 0 && opts.Window < n {
		pieces = pieces[:0]
		for lo := 0; lo < n; lo += opts.Window {
			hi := min(lo+opts.Window, n)
			if n-hi < opts.Window/2 {
				hi = n
			}
			pieces = append(pieces, [2]int{lo, hi})
			if hi == n {
				break
			}
		}
	}
	for _, pc := range pieces {
		var vals []float64
		for t := pc[0]; t < pc[1]; t++ {
			if !math.IsNaN(y[t]) {
				vals = append(vals, y[t]-seasonal[t])
			}
		}
		if len(vals) < 8 {
			continue
		}
		level := median(append([]float64(nil), vals...))
		type pt struct {
			i int
			r float64
		}
		pts := make([]pt, 0, len(vals))
		for t := pc[0]; t < pc[1]; t++ {
			if !math.IsNaN(y[t]) {
				pts = append(pts, pt{t, y[t] - seasonal[t] - level})
			}
		}
		found := esd(len(pts), func(i int) float64 { return pts[i].r }, opts)
		for _, f := range found {
			p := pts[f.idx]
			out = append(out, Anomaly{Index: p.i, Value: y[p.i], Expected: seasonal[p.i] + level, Score: f.score})
		}
	}
	slices.SortFunc(out, func(a, b Anomaly) int { return a.Index - b.Index })
	return out, nil
}

type esdHit struct {
	idx   int
	score float64
}

// esd runs the generalised ESD test with median/MAD on n values and
// returns the outliers it accepts.
func esd(n int, val func(int) float64, o ESDOptions) []esdHit {
	k := int(o.MaxAnomalies * float64(n))
	if k < 1 {
		return nil
	}
	alive := make([]bool, n)
	for i := range alive {
		alive[i] = true
	}
	buf := make([]float64, 0, n)
	var hits []esdHit
	accepted := 0
	for step := 1; step <= k; step++ {
		buf = buf[:0]
		for i := 0; i < n; i++ {
			if alive[i] {
				buf = append(buf, val(i))
			}
		}
		med, scale := mad(buf)
		if !(scale > 0) {
			break
		}
		best, bestScore := -1, -1.0
		for i := 0; i < n; i++ {
			if !alive[i] {
				continue
			}
			dev := val(i) - med
			var s float64
			switch o.Direction {
			case DirectionUp:
				s = dev / scale
			case DirectionDown:
				s = -dev / scale
			default:
				s = math.Abs(dev) / scale
			}
			if s > bestScore {
				best, bestScore = i, s
			}
		}
		if best < 0 {
			break
		}
		alive[best] = false
		hits = append(hits, esdHit{best, bestScore})
		// Critical value λ_i of Rosner's test.
		m := float64(n - step + 1)
		p := 1 - o.Alpha/(2*m)
		if o.Direction != DirectionBoth {
			p = 1 - o.Alpha/m
		}
		df := m - 2
		if df < 1 {
			break
		}
		tq := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(p)
		lambda := (m - 1) * tq / math.Sqrt((df+tq*tq)*m)
		if bestScore > lambda {
			accepted = step
		}
	}
	return hits[:accepted]
}
