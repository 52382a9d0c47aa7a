package mlforecast

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchSeries returns the last n points of the NAB AMZN tweet volume
// summed over blocks of agg 5-minute points, or a simulated series of the
// same model when the shared data is not beside the repository.
func benchSeries(b *testing.B, agg, n int, spec Spec, c coeffs) []float64 {
	if _, err := os.Stat(filepath.Join(sharedData, "nab")); err == nil {
		y := loadNAB(b, "realTweets/Twitter_volume_AMZN.csv").Values
		if agg > 1 {
			y = blockSums(y, agg)
		}
		return y[len(y)-n:]
	}
	return simulateSARIMA(99, n, spec, c, 10)
}

// BenchmarkARIMA reports the time of one Fit with default options (CSS
// and Hannan–Rissanen starts, exact ML, standard errors). Targets: 15 ms
// for ARIMA(2,1,2) on 4,000 points and 500 ms for SARIMA(1,0,1)(0,1,1)48
// on 2,000. ms/fit is wall time; cpu-ms/fit is process CPU time, which
// is what to compare on a shared machine.
func BenchmarkARIMA(b *testing.B) {
	cases := []struct {
		name string
		spec Spec
		agg  int
		n    int
		c    coeffs
	}{
		{"ARIMA(2,1,2)/n=4000", ARIMA(2, 1, 2), 1, 4000, coeffs{ar: []float64{-0.6, 0.3}, ma: []float64{0.1, -0.8}}},
		{"SARIMA(1,0,1)(0,1,1)48/n=2000", SARIMA(1, 0, 1, 0, 1, 1, 48), 6, 2000, coeffs{ar: []float64{0.8}, ma: []float64{-0.4}, sma: []float64{-0.9}}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			y := benchSeries(b, tc.agg, tc.n, tc.spec, tc.c)
			passes := 0
			cpu0 := processCPU()
			start := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m, err := Fit(y, tc.spec, nil)
				if err != nil {
					b.Fatal(err)
				}
				passes += m.Evaluations
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/n, "ms/fit")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1000/n, "cpu-ms/fit")
			b.ReportMetric(float64(passes)/n, "passes/fit")
		})
	}
}
