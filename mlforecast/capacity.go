package mlforecast

import (
	"fmt"
	"math"
	"time"
)

// CapacityOptions describes the job whose source throughput was forecast.
type CapacityOptions struct {
	// PerSlotThroughput is the throughput one parallelism unit (slot)
	// sustains, in the forecast's units (records/s for instance). Required.
	PerSlotThroughput float64
	// CurrentParallelism is the job's parallelism now. Required.
	CurrentParallelism int
	// Step is the time between forecast steps; it turns step counts into
	// durations (0 leaves the durations zero).
	Step time.Duration
	// TargetUtilization is the share of a slot's throughput to plan for
	// (default 1: plan to the measured capacity).
	TargetUtilization float64
	// MinParallelism and MaxParallelism bound the recommendation (defaults
	// 1 and unbounded).
	MinParallelism, MaxParallelism int
}

// Validate reports the first invalid field.
func (o CapacityOptions) Validate() error {
	switch {
	case !(o.PerSlotThroughput > 0) || math.IsInf(o.PerSlotThroughput, 0):
		return &OptionError{Field: "PerSlotThroughput", Reason: "must be positive and finite"}
	case o.CurrentParallelism < 1:
		return &OptionError{Field: "CurrentParallelism", Reason: "must be at least 1"}
	case o.Step < 0:
		return &OptionError{Field: "Step", Reason: "must not be negative"}
	case o.TargetUtilization < 0 || o.TargetUtilization > 1 || math.IsNaN(o.TargetUtilization):
		return &OptionError{Field: "TargetUtilization", Reason: "must be in (0,1] (0 means 1)"}
	case o.MinParallelism < 0:
		return &OptionError{Field: "MinParallelism", Reason: "must not be negative"}
	case o.MaxParallelism < 0:
		return &OptionError{Field: "MaxParallelism", Reason: "must not be negative"}
	case o.MaxParallelism > 0 && o.MinParallelism > o.MaxParallelism:
		return &OptionError{Field: "MinParallelism", Reason: fmt.Sprintf("exceeds MaxParallelism %d", o.MaxParallelism)}
	}
	return nil
}

// CapacityAdvice is the recommendation for the forecast horizon.
type CapacityAdvice struct {
	// RecommendedParallelism covers the peak of the upper bound at the
	// target utilisation: ⌈peak / (PerSlotThroughput·TargetUtilization)⌉,
	// clamped to [MinParallelism, MaxParallelism].
	RecommendedParallelism int
	// Capacity is CurrentParallelism·PerSlotThroughput.
	Capacity float64
	// PeakUpper and PeakMean are the largest upper bound and point
	// forecast over the horizon; PeakStep is the 0-based step of PeakUpper.
	PeakUpper, PeakMean float64
	PeakStep            int
	// UpperExceeds tells whether the upper bound exceeds Capacity within
	// the horizon; StepsUntilUpper is then the 1-based step where it first
	// does and TimeUntilUpper that many Steps (else −1 and 0).
	UpperExceeds    bool
	StepsUntilUpper int
	TimeUntilUpper  time.Duration
	// The same for the point forecast.
	MeanExceeds    bool
	StepsUntilMean int
	TimeUntilMean  time.Duration
}

// AdviseCapacity turns a throughput forecast into a parallelism
// recommendation. Steps with a NaN bound are ignored.
func AdviseCapacity(f *Forecast, opts CapacityOptions) (*CapacityAdvice, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if f == nil || len(f.Mean) == 0 || len(f.Upper) != len(f.Mean) {
		return nil, &OptionError{Field: "forecast", Reason: "want a non-empty forecast with upper bounds"}
	}
	if opts.TargetUtilization == 0 {
		opts.TargetUtilization = 1
	}
	if opts.MinParallelism == 0 {
		opts.MinParallelism = 1
	}
	a := &CapacityAdvice{
		Capacity:  float64(opts.CurrentParallelism) * opts.PerSlotThroughput,
		PeakUpper: math.Inf(-1), PeakMean: math.Inf(-1), PeakStep: -1,
		StepsUntilUpper: -1, StepsUntilMean: -1,
	}
	for i := range f.Mean {
		up, mu := f.Upper[i], f.Mean[i]
		if !math.IsNaN(up) && up > a.PeakUpper {
			a.PeakUpper, a.PeakStep = up, i
		}
		if !math.IsNaN(mu) && mu > a.PeakMean {
			a.PeakMean = mu
		}
		if !a.UpperExceeds && up > a.Capacity {
			a.UpperExceeds, a.StepsUntilUpper = true, i+1
			a.TimeUntilUpper = time.Duration(i+1) * opts.Step
		}
		if !a.MeanExceeds && mu > a.Capacity {
			a.MeanExceeds, a.StepsUntilMean = true, i+1
			a.TimeUntilMean = time.Duration(i+1) * opts.Step
		}
	}
	if a.PeakStep < 0 {
		return nil, &OptionError{Field: "forecast", Reason: "every upper bound is NaN"}
	}
	need := math.Ceil(math.Max(a.PeakUpper, 0) / (opts.PerSlotThroughput * opts.TargetUtilization))
	rec := opts.MinParallelism
	if need > float64(rec) {
		rec = int(math.Min(need, math.MaxInt32))
	}
	if opts.MaxParallelism > 0 && rec > opts.MaxParallelism {
		rec = opts.MaxParallelism
	}
	a.RecommendedParallelism = rec
	return a, nil
}
