package mlforecast

import (
	"fmt"
	"math"
	"slices"
)

// Decomposition splits a series into trend + seasonal + remainder.
type Decomposition struct {
	Period    int
	Trend     []float64
	Seasonal  []float64 // repeats with the period and sums to ~0 over one
	Remainder []float64 // NaN where the series is missing
}

// Decompose splits y with period m the way STL does with a periodic
// seasonal window: a centred moving average (2×m for even m) gives the
// trend, the seasonal index of each phase is the mean of the detrended
// values at that phase, centred to sum to zero, and the remainder is what
// is left. With robust set, moving medians and phase medians replace the
// means so that outliers do not leak into trend and season (what anomaly
// detection needs). At the ends, where the window does not fit, the trend
// is held at its nearest defined value. NaN values are skipped. y needs
// at least two full periods.
func Decompose(y []float64, m int, robust bool) (*Decomposition, error) {
	if m < 2 {
		return nil, &OptionError{Field: "Period", Reason: fmt.Sprintf("must be at least 2, got %d", m)}
	}
	if _, err := checkSeries(y); err != nil {
		return nil, err
	}
	n := len(y)
	if n < 2*m {
		return nil, &TooShortError{Spec: Spec{Period: m}, Have: n, Need: 2 * m}
	}
	d := &Decomposition{Period: m, Trend: make([]float64, n), Seasonal: make([]float64, n), Remainder: make([]float64, n)}
	// Trend.
	half := m / 2
	lo, hi := half, n-1-half
	win := make([]float64, 0, m+1)
	for t := range d.Trend {
		d.Trend[t] = math.NaN()
	}
	for t := lo; t <= hi; t++ {
		if robust {
			win = win[:0]
			for _, v := range y[t-half : t+half+1] {
				if !math.IsNaN(v) {
					win = append(win, v)
				}
			}
			if len(win) > 0 {
				d.Trend[t] = median(win)
			}
			continue
		}
		// Centred MA: for even m the end points get half weight (2×m MA).
		var s, wsum float64
		for j := -half; j <= half; j++ {
			v := y[t+j]
			if math.IsNaN(v) {
				continue
			}
			wt := 1.0
			if m%2 == 0 && (j == -half || j == half) {
				wt = 0.5
			}
			s += wt * v
			wsum += wt
		}
		if wsum > 0 {
			d.Trend[t] = s / wsum
		}
	}
	fillEnds(d.Trend)
	// Seasonal indices.
	idx := make([]float64, m)
	phase := make([][]float64, m)
	for t, v := range y {
		if math.IsNaN(v) || math.IsNaN(d.Trend[t]) {
			continue
		}
		phase[t%m] = append(phase[t%m], v-d.Trend[t])
	}
	for p, vs := range phase {
		switch {
		case len(vs) == 0:
			idx[p] = 0
		case robust:
			idx[p] = median(vs)
		default:
			idx[p] = mean(vs)
		}
	}
	c := mean(idx)
	for p := range idx {
		idx[p] -= c
	}
	for t, v := range y {
		d.Seasonal[t] = idx[t%m]
		d.Remainder[t] = v - d.Trend[t] - d.Seasonal[t]
	}
	return d, nil
}

// SeasonalStrength returns F_s = max(0, 1 − Var(R)/Var(S+R)) of the
// decomposition of y with period m (Wang, Smith & Hyndman 2006), the
// statistic forecast::nsdiffs uses by default: 0.64 or more suggests a
// seasonal difference.
func SeasonalStrength(y []float64, m int) (float64, error) {
	d, err := Decompose(y, m, false)
	if err != nil {
		return 0, err
	}
	var r, sr []float64
	for t := range y {
		if math.IsNaN(d.Remainder[t]) {
			continue
		}
		r = append(r, d.Remainder[t])
		sr = append(sr, d.Remainder[t]+d.Seasonal[t])
	}
	vsr := variance(sr)
	if !(vsr > 0) {
		return 0, nil
	}
	return math.Max(0, 1-variance(r)/vsr), nil
}

func fillEnds(x []float64) {
	first, last := -1, -1
	for i, v := range x {
		if !math.IsNaN(v) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return
	}
	for i := 0; i < first; i++ {
		x[i] = x[first]
	}
	for i := last + 1; i < len(x); i++ {
		x[i] = x[last]
	}
	// Interior gaps: carry the previous value.
	for i := first + 1; i < last; i++ {
		if math.IsNaN(x[i]) {
			x[i] = x[i-1]
		}
	}
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func variance(x []float64) float64 {
	if len(x) < 2 {
		return 0
	}
	m := mean(x)
	s := 0.0
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return s / float64(len(x)-1)
}

// median returns the median of x, reordering x.
func median(x []float64) float64 {
	n := len(x)
	if n == 0 {
		return math.NaN()
	}
	slices.Sort(x)
	if n%2 == 1 {
		return x[n/2]
	}
	return (x[n/2-1] + x[n/2]) / 2
}

// mad returns the median and a robust scale: the median absolute
// deviation from the median, scaled by 1.4826 to estimate a normal
// standard deviation. When more than half the values equal the median
// (sparse counts, idle metrics) the MAD is 0; the mean absolute deviation
// (scaled by 1.2533) stands in then. NaN values are skipped and x is not
// modified.
func mad(x []float64) (med, scale float64) {
	c := make([]float64, 0, len(x))
	for _, v := range x {
		if !math.IsNaN(v) {
			c = append(c, v)
		}
	}
	med = median(c)
	var sum float64
	for i, v := range c {
		c[i] = math.Abs(v - med)
		sum += c[i]
	}
	scale = 1.4826 * median(c)
	if scale == 0 && len(c) > 0 {
		scale = 1.2533 * sum / float64(len(c))
	}
	return med, scale
}
