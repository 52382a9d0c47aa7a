package mlforecast

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The shared data sets sit beside the repository (../../shared/data from
// this package). Tests that need them skip when they are absent.
var sharedData = filepath.Join("..", "..", "shared", "data")

func needShared(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(sharedData, "forecast", "reference.json")); err != nil {
		t.Skipf("shared data not beside the repository (%v)", err)
	}
}

type referenceFit struct {
	Series        string             `json:"series"`
	Transform     string             `json:"transform"`
	TrainLast     int                `json:"train_last"`
	Holdout       int                `json:"holdout"`
	Order         [3]int             `json:"order"`
	SeasonalOrder [4]int             `json:"seasonal_order"`
	Trend         string             `json:"trend"`
	Params        map[string]float64 `json:"params"`
	LogLik        float64            `json:"loglik"`
	AIC           float64            `json:"aic"`
	Forecast      []float64          `json:"forecast"`
	Actual        []float64          `json:"actual"`
	MASE          float64            `json:"mase"`
	MASEPeriod    int                `json:"mase_period"`
	FitSeconds    float64            `json:"statsmodels_fit_seconds"`
}

func (r referenceFit) spec() Spec {
	s := SARIMA(r.Order[0], r.Order[1], r.Order[2], r.SeasonalOrder[0], r.SeasonalOrder[1], r.SeasonalOrder[2], r.SeasonalOrder[3])
	return s.WithConstant(r.Trend == "c").normalized()
}

func (r referenceFit) name() string {
	return r.Series + "/" + r.Transform + "/" + r.spec().String()
}

func loadReference(t testing.TB) []referenceFit {
	t.Helper()
	needShared(t)
	b, err := os.ReadFile(filepath.Join(sharedData, "forecast", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Fits []referenceFit `json:"fits"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Fits
}

func loadNAB(t testing.TB, name string) *Series {
	t.Helper()
	needShared(t)
	s, err := ReadCSVFile(filepath.Join(sharedData, "nab", name), CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// blockSums sums consecutive blocks of k points from the start, dropping
// an incomplete last block (the reference's hourly_sum transform).
func blockSums(y []float64, k int) []float64 {
	out := make([]float64, len(y)/k)
	for i := range out {
		for _, v := range y[i*k : (i+1)*k] {
			out[i] += v
		}
	}
	return out
}

// trainTest returns the reference's training window and held-out values.
func (r referenceFit) trainTest(t testing.TB) (train, test []float64) {
	y := loadNAB(t, r.Series).Values
	if r.Transform == "hourly_sum" {
		y = blockSums(y, 12)
	}
	n := len(y)
	return y[n-r.Holdout-r.TrainLast : n-r.Holdout], y[n-r.Holdout:]
}

// mase is the mean absolute error of f against actual, scaled by the
// in-sample mean absolute error of the (seasonal) naive forecast.
func mase(train, actual, f []float64, m int) float64 {
	if m < 1 {
		m = 1
	}
	var sc float64
	n := 0
	for i := m; i < len(train); i++ {
		if d := train[i] - train[i-m]; d == d {
			sc += abs64(d)
			n++
		}
	}
	sc /= float64(n)
	var e float64
	for i := range actual {
		e += abs64(actual[i] - f[i])
	}
	return e / float64(len(actual)) / sc
}

func abs64(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
