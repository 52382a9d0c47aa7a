package mlforecast

import (
	"errors"
	"testing"
	"time"
)

func TestAdviseCapacity(t *testing.T) {
	fc := &Forecast{
		Level: 0.95,
		Mean:  []float64{800, 900, 1000, 1100, 1050},
		Upper: []float64{900, 1050, 1150, 1300, 1250},
	}
	tests := []struct {
		name string
		opts CapacityOptions
		want CapacityAdvice
	}{
		{"upper exceeds before the mean", CapacityOptions{PerSlotThroughput: 250, CurrentParallelism: 4, Step: 5 * time.Minute},
			CapacityAdvice{RecommendedParallelism: 6, Capacity: 1000, PeakUpper: 1300, PeakMean: 1100, PeakStep: 3,
				UpperExceeds: true, StepsUntilUpper: 2, TimeUntilUpper: 10 * time.Minute,
				MeanExceeds: true, StepsUntilMean: 4, TimeUntilMean: 20 * time.Minute}},
		{"enough capacity", CapacityOptions{PerSlotThroughput: 250, CurrentParallelism: 8, Step: time.Minute},
			CapacityAdvice{RecommendedParallelism: 6, Capacity: 2000, PeakUpper: 1300, PeakMean: 1100, PeakStep: 3,
				StepsUntilUpper: -1, StepsUntilMean: -1}},
		{"target utilisation and bounds", CapacityOptions{PerSlotThroughput: 250, CurrentParallelism: 8, TargetUtilization: 0.5, MaxParallelism: 10},
			CapacityAdvice{RecommendedParallelism: 10, Capacity: 2000, PeakUpper: 1300, PeakMean: 1100, PeakStep: 3,
				StepsUntilUpper: -1, StepsUntilMean: -1}},
		{"minimum", CapacityOptions{PerSlotThroughput: 1e6, CurrentParallelism: 1, MinParallelism: 2},
			CapacityAdvice{RecommendedParallelism: 2, Capacity: 1e6, PeakUpper: 1300, PeakMean: 1100, PeakStep: 3,
				StepsUntilUpper: -1, StepsUntilMean: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AdviseCapacity(fc, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestAdviseCapacityErrors(t *testing.T) {
	fc := &Forecast{Mean: []float64{1}, Upper: []float64{2}}
	for _, tc := range []struct {
		f     *Forecast
		opts  CapacityOptions
		field string
	}{
		{fc, CapacityOptions{CurrentParallelism: 1}, "PerSlotThroughput"},
		{fc, CapacityOptions{PerSlotThroughput: 1}, "CurrentParallelism"},
		{fc, CapacityOptions{PerSlotThroughput: 1, CurrentParallelism: 1, TargetUtilization: 1.5}, "TargetUtilization"},
		{fc, CapacityOptions{PerSlotThroughput: 1, CurrentParallelism: 1, MinParallelism: 5, MaxParallelism: 2}, "MinParallelism"},
		{&Forecast{}, CapacityOptions{PerSlotThroughput: 1, CurrentParallelism: 1}, "forecast"},
	} {
		_, err := AdviseCapacity(tc.f, tc.opts)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != tc.field || !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: err %v, want field %s", tc.opts, err, tc.field)
		}
	}
}

// End to end: forecast a real throughput-like series and advise.
func TestAdviseCapacityFromForecast(t *testing.T) {
	y := blockSums(loadNAB(t, "realTweets/Twitter_volume_AMZN.csv").Values, 12)
	m, err := Fit(y[len(y)-500:], SARIMA(1, 0, 1, 0, 1, 1, 24), nil)
	if err != nil {
		t.Fatal(err)
	}
	fc, err := m.Forecast(24, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	a, err := AdviseCapacity(fc, CapacityOptions{PerSlotThroughput: 200, CurrentParallelism: 3, Step: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if a.RecommendedParallelism*200 < int(a.PeakUpper) || (a.RecommendedParallelism-1)*200 >= int(a.PeakUpper)+1 {
		t.Errorf("recommendation %d for peak %v", a.RecommendedParallelism, a.PeakUpper)
	}
	t.Logf("hourly AMZN tweets: peak upper %.0f at step %d, recommend %d slots, upper exceeds 600/h in %v, mean in %v",
		a.PeakUpper, a.PeakStep, a.RecommendedParallelism, a.TimeUntilUpper, a.TimeUntilMean)
}
