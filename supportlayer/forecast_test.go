package supportlayer

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/monitor"
	"github.com/tidewatch/tidewatch/notify"
)

// fakeHistory serves one source-throughput series and one back-pressure
// series per job.
type fakeHistory struct {
	rates, bp []monitor.Sample
}

func (f *fakeHistory) Series(string) []string {
	return []string{`source_records_per_second{scope="taskmanager",tm="tm-1"}`, `backpressured_ms_per_second{scope="taskmanager",tm="tm-1",key="source"}`}
}

func (f *fakeHistory) History(_, series string, _ time.Time) []monitor.Sample {
	if strings.HasPrefix(series, "backpressured") {
		return f.bp
	}
	return f.rates
}

// A job whose input grows towards its capacity gets a forecast, a capacity
// advice estimated from its back-pressured samples, and an
// INPUT_EXCEEDS_CAPACITY alert; the forecast is served by the REST API.
func TestForecasterRisingInput(t *testing.T) {
	f := newFakeCluster(t)
	td := startTestDaemon(t, testOptions(t), f)
	j := submit(t, td, goodSpec)
	td.waitFor(j.ID, "RUNNING", stateIs(StateRunning))

	// 15s samples over 2 hours: a rising trend with noise; at one early
	// sample the sources were saturated at 150 records/s (one subtask).
	start := time.Now().Add(-2 * time.Hour)
	rng := rand.New(rand.NewPCG(1, 2))
	h := &fakeHistory{}
	for i := range 480 {
		at := start.Add(time.Duration(i) * 15 * time.Second)
		v := 40 + 0.18*float64(i) + 3*rng.NormFloat64()
		if i == 10 {
			v = 150
			h.bp = append(h.bp, monitor.Sample{Time: at, Value: 900})
		}
		h.rates = append(h.rates, monitor.Sample{Time: at, Value: v})
	}
	o := DefaultForecastOptions()
	o.Horizon = time.Hour
	fc := newForecaster(o, td.store, h, td.notifier, testLogger(), td.now)
	td.forecaster = fc
	fc.cycle(context.Background())

	status, body := td.call("GET", "/api/v1/jobs/"+j.ID+"/forecast", "")
	if status != 200 {
		t.Fatalf("GET forecast: %d %s", status, body)
	}
	var got JobForecast
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Forecast) != 240 || got.StepSeconds != 15 || len(got.Times) != 240 {
		t.Fatalf("forecast of %d steps of %vs", len(got.Forecast), got.StepSeconds)
	}
	if last := got.Forecast[len(got.Forecast)-1]; math.Abs(last-(40+0.18*719)) > 25 {
		t.Errorf("forecast ends at %.1f, the trend is at %.1f", last, 40+0.18*719)
	}
	c := got.Capacity
	if c == nil || !c.Estimated || c.PerSlotThroughput != 150 || c.ExceedsInSeconds < 0 || c.RecommendedParallelism < 2 {
		t.Fatalf("capacity %+v, want an estimate of 150/s, exceeded within the hour, parallelism >= 2", c)
	}
	alerts, err := td.notifier.Alerts(context.Background(), notify.AlertQuery{Job: j.ID})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range alerts {
		if a.Labels["alertname"] == "INPUT_EXCEEDS_CAPACITY" && strings.Contains(a.Annotations["summary"], "input will exceed capacity") {
			found = true
		}
	}
	if !found {
		t.Errorf("no INPUT_EXCEEDS_CAPACITY alert among %+v", alerts)
	}
	firing := func(name string) bool {
		for _, a := range td.notifier.Firing() {
			if a.Labels["alertname"] == name && a.Job() == j.ID {
				return true
			}
		}
		return false
	}

	// The forecaster of the next daemon run takes the alert over; once the
	// input has levelled off, its first forecast resolves it.
	flat := &fakeHistory{bp: h.bp}
	for i, s := range h.rates {
		v := 40 + 3*rng.NormFloat64()
		if i == 10 {
			v = 150
		}
		flat.rates = append(flat.rates, monitor.Sample{Time: s.Time, Value: v})
	}
	fc2 := newForecaster(o, td.store, flat, td.notifier, testLogger(), td.now)
	fc2.adopt(td.notifier.Firing())
	if !firing("INPUT_EXCEEDS_CAPACITY") || len(fc2.raised) != 1 {
		t.Fatalf("adopted %v", fc2.raised)
	}
	fc2.cycle(context.Background())
	if firing("INPUT_EXCEEDS_CAPACITY") {
		t.Errorf("the adopted alert still fires after a forecast within capacity")
	}
	// Raised again as the input rises, then the job no longer runs: the
	// alert resolves.
	fc2.monitor = h
	fc2.cycle(context.Background())
	if !firing("INPUT_EXCEEDS_CAPACITY") {
		t.Fatal("not raised again")
	}
	fc2.resolveGone(context.Background(), nil)
	if firing("INPUT_EXCEEDS_CAPACITY") || len(fc2.raised) != 0 {
		t.Errorf("the alert of a job that no longer runs still fires")
	}

	// Not enough history: 404 that says why.
	other := submit(t, td, strings.Replace(goodSpec, "name: clicks", "name: other", 1))
	status, body = td.call("GET", "/api/v1/jobs/"+other.ID+"/forecast", "")
	if status != 404 || !strings.Contains(string(body), "no forecast") {
		t.Errorf("unforecast job: %d %s", status, body)
	}
}

func TestForecastOptionsValidate(t *testing.T) {
	for _, bad := range []struct {
		o    ForecastOptions
		want string
	}{
		{ForecastOptions{Interval: -1}, "forecast.interval"},
		{ForecastOptions{Interval: time.Minute, MinPoints: 40}, "forecast.horizon"},
		{ForecastOptions{Interval: time.Minute, Horizon: time.Minute, MinPoints: 5}, "forecast.min_points"},
		{ForecastOptions{Interval: time.Minute, Horizon: time.Minute, MinPoints: 40, Period: 1}, "forecast.period"},
		{ForecastOptions{Interval: time.Minute, Horizon: time.Minute, MinPoints: 40, PerSlotThroughput: -1}, "forecast.per_slot_throughput"},
	} {
		if err := bad.o.Validate(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want an error naming %s", bad.o, err, bad.want)
		}
	}
	if err := DefaultForecastOptions().Validate(); err != nil {
		t.Error(err)
	}
}

// A spike in the newest samples raises THROUGHPUT_ANOMALY, and the forecast
// lists it.
func TestForecasterAnomaly(t *testing.T) {
	f := newFakeCluster(t)
	td := startTestDaemon(t, testOptions(t), f)
	j := submit(t, td, goodSpec)
	td.waitFor(j.ID, "RUNNING", stateIs(StateRunning))

	now := time.Now()
	rng := rand.New(rand.NewPCG(3, 4))
	h := &fakeHistory{}
	for i := range 300 {
		v := 100 + 5*rng.NormFloat64()
		if i == 299 {
			v = 400 // the newest sample
		}
		h.rates = append(h.rates, monitor.Sample{Time: now.Add(time.Duration(i-299) * 15 * time.Second), Value: v})
	}
	fc := newForecaster(DefaultForecastOptions(), td.store, h, td.notifier, testLogger(), func() time.Time { return now })
	fc.cycle(context.Background())
	fc.mu.Lock()
	got := fc.latest[j.ID]
	fc.mu.Unlock()
	if got == nil || len(got.Anomalies) == 0 || got.Anomalies[len(got.Anomalies)-1].Value != 400 {
		t.Fatalf("forecast %+v does not list the spike", got)
	}
	alerts, err := td.notifier.Alerts(context.Background(), notify.AlertQuery{Job: j.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if a.Labels["alertname"] == "THROUGHPUT_ANOMALY" {
			return
		}
	}
	t.Errorf("no THROUGHPUT_ANOMALY alert among %+v", alerts)
}
