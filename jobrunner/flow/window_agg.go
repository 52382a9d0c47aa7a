package flow

import (
	"errors"
	"fmt"
	"strings"
)

// Aggregate functions of AggConfig.Func.
const (
	AggCount         = "count"
	AggSum           = "sum"
	AggMin           = "min"
	AggMax           = "max"
	AggAvg           = "avg"
	AggCountDistinct = "countDistinct"
)

// AggConfig is one aggregate of a window operator.
//
// count counts records. sum, min and max take a numeric field and keep its
// kind: over an int field they are int (sum wraps on overflow), over a float
// field float. avg is always float. countDistinct counts the distinct
// KeyStrings of any field, exactly, with a set per window and key: its state
// grows with the distinct values. Null field values are skipped (as in SQL);
// an aggregate that saw no value yields null, except count and
// countDistinct, which yield 0.
type AggConfig struct {
	Func  string
	Field string // not for count
	// As is the output field name; by default "count" or Func_Field, e.g.
	// "sum_value".
	As string
}

type aggFunc uint8

// Codes are part of the snapshot format: append only.
const (
	aggCount aggFunc = iota + 1
	aggSum
	aggMin
	aggMax
	aggAvg
	aggCountDistinct
)

type agg struct {
	fn    aggFunc
	field int
	isInt bool // sum/min/max over an int field
	name  string
}

func (a *agg) outKind() Kind {
	switch a.fn {
	case aggCount, aggCountDistinct:
		return KindInt
	case aggAvg:
		return KindFloat
	}
	if a.isInt {
		return KindInt
	}
	return KindFloat
}

func compileAggs(cfgs []AggConfig, in *Schema) ([]agg, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("flow: window: no aggregates")
	}
	aggs := make([]agg, len(cfgs))
	for i, c := range cfgs {
		a := agg{field: -1, name: c.As}
		switch c.Func {
		case AggCount:
			a.fn = aggCount
		case AggSum:
			a.fn = aggSum
		case AggMin:
			a.fn = aggMin
		case AggMax:
			a.fn = aggMax
		case AggAvg:
			a.fn = aggAvg
		case AggCountDistinct:
			a.fn = aggCountDistinct
		default:
			return nil, fmt.Errorf("flow: window: aggregate %d: unknown function %q (want count, sum, min, max, avg or countDistinct)", i, c.Func)
		}
		if a.fn == aggCount {
			if c.Field != "" {
				return nil, fmt.Errorf("flow: window: aggregate %d: count takes no field (got %q)", i, c.Field)
			}
			if a.name == "" {
				a.name = "count"
			}
			aggs[i] = a
			continue
		}
		fi, ok := in.Index(c.Field)
		if !ok {
			return nil, fmt.Errorf("flow: window: aggregate %d: %s of unknown field %q", i, c.Func, c.Field)
		}
		a.field = fi
		k := in.Kinds[fi]
		if a.fn != aggCountDistinct && k != KindInt && k != KindFloat {
			return nil, fmt.Errorf("flow: window: aggregate %d: %s of field %q, which is %v, not numeric", i, c.Func, c.Field, k)
		}
		a.isInt = k == KindInt
		if a.name == "" {
			a.name = c.Func + "_" + c.Field
		}
		aggs[i] = a
	}
	return aggs, nil
}

// aggSlot is the accumulator of one aggregate. n is the number of values
// seen (records for count).
type aggSlot struct {
	n   int64
	i   int64               // int sum/min/max
	f   float64             // float sum/min/max, avg's sum
	set map[string]struct{} // countDistinct
}

// windowAcc is the state of one (key, window).
type windowAcc struct {
	// fired: the window has fired, or it never will on a timer (its state
	// was created after the watermark passed its end).
	fired bool
	slots []aggSlot
	// inline holds the slots of up to two aggregates in the same allocation,
	// saving a cache miss per record on the hot path.
	inline [2]aggSlot
}

func newWindowAcc(n int) *windowAcc {
	a := &windowAcc{}
	if n <= len(a.inline) {
		a.slots = a.inline[:n]
	} else {
		a.slots = make([]aggSlot, n)
	}
	return a
}

func (o *WindowOperator) newAcc() *windowAcc {
	if n := len(o.free); n > 0 {
		a := o.free[n-1]
		o.free = o.free[:n-1]
		return a
	}
	return newWindowAcc(len(o.aggs))
}

func (o *WindowOperator) freeAcc(a *windowAcc) {
	if len(o.free) >= maxFreeAccs {
		return
	}
	a.fired = false
	// Sets are dropped, not cleared: a big one should not outlive its window.
	clear(a.slots)
	o.free = append(o.free, a)
}

func intOf(v Value) (int64, bool) {
	switch v.Kind {
	case KindInt:
		return v.Int(), true
	case KindFloat: // only if a record breaks its schema
		return int64(v.Float()), true
	}
	return 0, false
}

func (o *WindowOperator) accumulate(acc *windowAcc, r *Record) {
	for i := range o.aggs {
		a, s := &o.aggs[i], &acc.slots[i]
		if a.fn == aggCount {
			s.n++
			continue
		}
		v := r.Row[a.field]
		if v.Kind == KindNull {
			continue
		}
		switch a.fn {
		case aggSum:
			if a.isInt {
				x, ok := intOf(v)
				if !ok {
					continue
				}
				s.i += x
			} else {
				x, ok := v.Number()
				if !ok {
					continue
				}
				s.f += x
			}
		case aggMin, aggMax:
			if a.isInt {
				x, ok := intOf(v)
				if !ok {
					continue
				}
				if s.n == 0 || (a.fn == aggMin && x < s.i) || (a.fn == aggMax && x > s.i) {
					s.i = x
				}
			} else {
				x, ok := v.Number()
				if !ok {
					continue
				}
				if s.n == 0 || (a.fn == aggMin && x < s.f) || (a.fn == aggMax && x > s.f) {
					s.f = x
				}
			}
		case aggAvg:
			x, ok := v.Number()
			if !ok {
				continue
			}
			s.f += x
		case aggCountDistinct:
			k := v.KeyString()
			if _, ok := s.set[k]; ok {
				continue
			}
			if s.set == nil {
				s.set = map[string]struct{}{}
			}
			s.set[strings.Clone(k)] = struct{}{} // do not pin the input's memory
		}
		s.n++
	}
}

// mergeAcc folds src into dst (merging sessions).
func (o *WindowOperator) mergeAcc(dst, src *windowAcc) {
	for i := range o.aggs {
		a, d, s := &o.aggs[i], &dst.slots[i], &src.slots[i]
		switch a.fn {
		case aggSum, aggAvg:
			d.i += s.i
			d.f += s.f
		case aggMin, aggMax:
			if s.n == 0 {
				continue
			}
			if d.n == 0 {
				d.i, d.f = s.i, s.f
				break
			}
			if a.fn == aggMin {
				d.i, d.f = min(d.i, s.i), min(d.f, s.f)
			} else {
				d.i, d.f = max(d.i, s.i), max(d.f, s.f)
			}
		case aggCountDistinct:
			if len(d.set) < len(s.set) {
				d.set, s.set = s.set, d.set
			}
			if d.set == nil {
				d.set = map[string]struct{}{}
			}
			for k := range s.set {
				d.set[k] = struct{}{}
			}
			d.n = int64(len(d.set))
			continue
		}
		d.n += s.n
	}
}

func (a *agg) result(s *aggSlot) Value {
	switch a.fn {
	case aggCount:
		return Int(s.n)
	case aggCountDistinct:
		return Int(int64(len(s.set)))
	}
	if s.n == 0 {
		return Null()
	}
	switch a.fn {
	case aggAvg:
		return Float(s.f / float64(s.n))
	}
	if a.isInt {
		return Int(s.i)
	}
	return Float(s.f)
}
