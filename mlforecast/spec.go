package mlforecast

import (
	"fmt"
	"strings"
)

// Limits on the orders accepted by Fit. They keep the state dimension and
// the estimation problem within what the package is designed for.
const (
	MaxNonSeasonalOrder = 20   // p and q
	MaxSeasonalOrder    = 4    // P and Q
	MaxDiff             = 2    // d
	MaxSeasonalDiff     = 1    // D
	MaxPeriod           = 5000 // seasonal period m
)

// Spec is a seasonal ARIMA(p,d,q)(P,D,Q)m specification:
//
//	φ(L) Φ(L^m) (1−L)^d (1−L^m)^D y_t = c + θ(L) Θ(L^m) ε_t,   ε_t ~ N(0, σ²)
//
// with φ(L) = 1 − φ₁L − … − φ_pL^p, θ(L) = 1 + θ₁L + … + θ_qL^q and the
// same signs for the seasonal polynomials (statsmodels' SARIMAX convention).
// Period 0 or 1 means non-seasonal; then SP, SD and SQ must be zero.
//
// Constant adds a mean to the differenced series: the process mean when
// d+D = 0, a drift (slope per step, or per season when only D=1) when
// d+D = 1. It is rejected when d+D > 1.
type Spec struct {
	P, D, Q    int
	SP, SD, SQ int
	Period     int
	Constant   bool
}

// ARIMA returns the non-seasonal specification ARIMA(p,d,q).
func ARIMA(p, d, q int) Spec { return Spec{P: p, D: d, Q: q} }

// SARIMA returns the specification ARIMA(p,d,q)(sp,sd,sq)period.
func SARIMA(p, d, q, sp, sd, sq, period int) Spec {
	return Spec{P: p, D: d, Q: q, SP: sp, SD: sd, SQ: sq, Period: period}
}

// WithConstant returns s with the constant (mean or drift) switched on or off.
func (s Spec) WithConstant(on bool) Spec { s.Constant = on; return s }

// Seasonal reports whether s has any seasonal term.
func (s Spec) Seasonal() bool { return s.Period > 1 && (s.SP > 0 || s.SD > 0 || s.SQ > 0) }

func (s Spec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ARIMA(%d,%d,%d)", s.P, s.D, s.Q)
	if s.Seasonal() {
		fmt.Fprintf(&b, "(%d,%d,%d)[%d]", s.SP, s.SD, s.SQ, s.Period)
	}
	if s.Constant {
		if s.D+s.SD == 0 {
			b.WriteString(" with mean")
		} else {
			b.WriteString(" with drift")
		}
	}
	return b.String()
}

// Validate checks the orders and returns an *OrderError naming the field.
func (s Spec) Validate() error {
	check := func(field string, v, max int) error {
		if v < 0 {
			return &OrderError{Field: field, Value: v, Reason: "must not be negative"}
		}
		if v > max {
			return &OrderError{Field: field, Value: v, Reason: fmt.Sprintf("must be at most %d", max)}
		}
		return nil
	}
	for _, c := range []struct {
		f      string
		v, max int
	}{
		{"p", s.P, MaxNonSeasonalOrder}, {"d", s.D, MaxDiff}, {"q", s.Q, MaxNonSeasonalOrder},
		{"P", s.SP, MaxSeasonalOrder}, {"D", s.SD, MaxSeasonalDiff}, {"Q", s.SQ, MaxSeasonalOrder},
		{"Period", s.Period, MaxPeriod},
	} {
		if err := check(c.f, c.v, c.max); err != nil {
			return err
		}
	}
	if s.Period <= 1 {
		for _, c := range []struct {
			f string
			v int
		}{{"P", s.SP}, {"D", s.SD}, {"Q", s.SQ}} {
			if c.v != 0 {
				return &OrderError{Field: c.f, Value: c.v, Reason: "seasonal order needs Period >= 2"}
			}
		}
	}
	if s.Constant && s.D+s.SD > 1 {
		return &OrderError{Field: "Constant", Value: s.D + s.SD,
			Reason: "a constant is only allowed when d+D <= 1 (it would be a polynomial trend)"}
	}
	return nil
}

// normalized drops a period that carries no seasonal term, so that equal
// models compare equal.
func (s Spec) normalized() Spec {
	if !s.Seasonal() {
		s.SP, s.SD, s.SQ, s.Period = 0, 0, 0, 0
	}
	return s
}

// arOrder and maOrder are the degrees of the expanded polynomials
// φ(L)Φ(L^m) and θ(L)Θ(L^m).
func (s Spec) arOrder() int { return s.P + s.SP*s.period() }
func (s Spec) maOrder() int { return s.Q + s.SQ*s.period() }
func (s Spec) diffOrder() int {
	return s.D + s.SD*s.period()
}
func (s Spec) period() int {
	if s.Period > 1 {
		return s.Period
	}
	return 0
}

// numARMA is the number of ARMA coefficients; numParams adds the
// constant and σ² (the count used by the information criteria).
func (s Spec) numARMA() int { return s.P + s.Q + s.SP + s.SQ }
func (s Spec) numParams() int {
	k := s.numARMA() + 1
	if s.Constant {
		k++
	}
	return k
}

// minObs is the number of non-missing observations Fit requires: the
// observations lost to differencing, the longer of the expanded AR and MA
// lags (one full seasonal cycle per seasonal term) and two per parameter.
func (s Spec) minObs() int {
	lag := s.arOrder()
	if q := s.maOrder(); q > lag {
		lag = q
	}
	return s.diffOrder() + lag + 2*s.numParams() + 1
}
