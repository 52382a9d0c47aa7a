package supportlayer

// The daemon's forecaster: on a schedule it fits a model to each running
// job's source throughput (the monitor's history), keeps the newest
// forecast for GET /api/v1/jobs/{id}/forecast, and raises two alerts through
// the notifier: INPUT_EXCEEDS_CAPACITY (WARN) when the forecast input
// exceeds the job's capacity within the horizon, and THROUGHPUT_ANOMALY
// (WARN) when the newest samples are anomalous against the model.

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner"
	"github.com/tidewatch/tidewatch/mlforecast"
	"github.com/tidewatch/tidewatch/monitor"
	"github.com/tidewatch/tidewatch/notify"
	"github.com/tidewatch/tidewatch/notify/alert"
)

// ForecastOptions are the forecast section of the daemon's configuration.
type ForecastOptions struct {
	// Interval between two forecasts of every running job; 0 turns the
	// forecaster off. It needs the monitor (monitor.rules), whose history
	// it forecasts.
	Interval time.Duration `yaml:"interval"`
	// Horizon is how far ahead to forecast.
	Horizon time.Duration `yaml:"horizon"`
	// MinPoints is the fewest samples a job needs before it is forecast.
	MinPoints int `yaml:"min_points"`
	// Period is the seasonal period in samples (0: non-seasonal).
	Period int `yaml:"period"`
	// PerSlotThroughput is the records/s one source subtask sustains. When 0
	// the forecaster estimates it from history: the highest per-subtask
	// rate seen while the sources were back-pressured (saturated); without
	// such a sample there is no capacity advice.
	PerSlotThroughput float64 `yaml:"per_slot_throughput"`
}

// DefaultForecastOptions: every 5 minutes, 30 minutes ahead, from 40 samples.
func DefaultForecastOptions() ForecastOptions {
	return ForecastOptions{Interval: 5 * time.Minute, Horizon: 30 * time.Minute, MinPoints: 40}
}

// Validate names the offending key.
func (o ForecastOptions) Validate() error {
	switch {
	case o.Interval < 0:
		return fmt.Errorf("forecast.interval: must be >= 0, got %s", o.Interval)
	case o.Interval == 0:
		return nil
	case o.Horizon <= 0:
		return fmt.Errorf("forecast.horizon: must be positive, got %s", o.Horizon)
	case o.MinPoints < 20:
		return fmt.Errorf("forecast.min_points: must be at least 20, got %d", o.MinPoints)
	case o.Period < 0 || o.Period == 1:
		return fmt.Errorf("forecast.period: must be 0 or at least 2, got %d", o.Period)
	case o.PerSlotThroughput < 0:
		return fmt.Errorf("forecast.per_slot_throughput: must be >= 0, got %v", o.PerSlotThroughput)
	}
	return nil
}

// JobForecast is GET /api/v1/jobs/{id}/forecast.
type JobForecast struct {
	JobID       string    `json:"jobId"`
	Series      string    `json:"series"`
	GeneratedAt time.Time `json:"generatedAt"`
	StepSeconds float64   `json:"stepSeconds"`
	Points      int       `json:"points"`
	Order       [3]int    `json:"order"`
	Seasonal    *[4]int   `json:"seasonal"`
	Level       float64   `json:"level"`
	Times       []string  `json:"times"`
	Forecast    []float64 `json:"forecast"`
	Lower       []float64 `json:"lower"`
	Upper       []float64 `json:"upper"`
	Capacity    *Capacity `json:"capacity,omitempty"`
	Anomalies   []Anomaly `json:"anomalies"`
}

// Capacity is the forecaster's advice for a job.
type Capacity struct {
	PerSlotThroughput      float64 `json:"perSlotThroughput"`
	Estimated              bool    `json:"estimated"` // from history rather than configured
	Parallelism            int     `json:"parallelism"`
	Capacity               float64 `json:"capacity"`
	RecommendedParallelism int     `json:"recommendedParallelism"`
	PeakUpper              float64 `json:"peakUpper"`
	ExceedsInSeconds       float64 `json:"exceedsInSeconds"` // -1: not within the horizon
}

// Anomaly is a recent anomalous sample.
type Anomaly struct {
	Time     time.Time `json:"time"`
	Value    float64   `json:"value"`
	Expected float64   `json:"expected"`
	Score    float64   `json:"score"`
}

// historySource is what the forecaster reads: the monitor's history.
type historySource interface {
	Series(job string) []string
	History(job, series string, since time.Time) []monitor.Sample
}

type forecaster struct {
	o        ForecastOptions
	store    *Store
	monitor  historySource
	notifier *notify.Notifier
	log      *logrus.Entry
	now      func() time.Time

	mu     sync.Mutex
	latest map[string]*JobForecast
	raised map[string]alert.Labels // the labels of alerts raised and not resolved, by job/alertname

	stop chan struct{}
	done chan struct{}
}

func newForecaster(o ForecastOptions, store *Store, m historySource, n *notify.Notifier, log *logrus.Entry, now func() time.Time) *forecaster {
	return &forecaster{o: o, store: store, monitor: m, notifier: n, log: log, now: now,
		latest: map[string]*JobForecast{}, raised: map[string]alert.Labels{}}
}

// Alert names of the forecaster.
const (
	alertInputExceedsCapacity = "INPUT_EXCEEDS_CAPACITY"
	alertThroughputAnomaly    = "THROUGHPUT_ANOMALY"
)

// adopt takes over the forecaster's alerts that a previous run raised and
// the notifier kept firing across the restart, so that they resolve like
// the forecaster's own.
func (f *forecaster) adopt(firing []alert.Alert) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range firing {
		if name := a.Labels[alert.LabelEvent]; name == alertInputExceedsCapacity || name == alertThroughputAnomaly {
			f.raised[a.Job()+"/"+name] = a.Labels.Clone()
		}
	}
}

func (f *forecaster) Start() {
	if f.notifier != nil {
		f.adopt(f.notifier.Firing())
	}
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(f.done)
		t := time.NewTicker(f.o.Interval)
		defer t.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-t.C:
				f.cycle(context.Background())
			}
		}
	}()
}

func (f *forecaster) Stop() {
	if f.stop != nil {
		close(f.stop)
		<-f.done
	}
}

// cycle forecasts every running job.
func (f *forecaster) cycle(ctx context.Context) {
	jobs, err := f.store.Jobs(ctx, []string{StateRunning})
	if err != nil {
		f.log.WithError(err).Warn("forecast: listing jobs")
		return
	}
	f.resolveGone(ctx, jobs)
	for _, j := range jobs {
		fc, err := f.forecastJob(j)
		if err != nil {
			f.log.WithError(err).WithField("job", j.ID).Debug("no forecast")
			continue
		}
		f.mu.Lock()
		f.latest[j.ID] = fc
		f.mu.Unlock()
		f.alert(ctx, j, fc)
	}
}

// resolveGone resolves the alerts of jobs that no longer run: no forecast
// will say their condition ended.
func (f *forecaster) resolveGone(ctx context.Context, running []Job) {
	if f.notifier == nil {
		return
	}
	ids := map[string]bool{}
	for _, j := range running {
		ids[j.ID] = true
	}
	f.mu.Lock()
	var gone []alert.Labels
	for key, ls := range f.raised {
		if !ids[ls[alert.LabelJob]] {
			gone = append(gone, ls)
			delete(f.raised, key)
		}
	}
	f.mu.Unlock()
	for _, ls := range gone {
		if err := f.notifier.Resolve(ctx, notify.Alert{Labels: ls}); err != nil {
			f.log.WithError(err).Warn("forecast: resolving an alert")
		}
	}
}

// sourceSeries finds the job's source throughput series in the history.
func (f *forecaster) sourceSeries(jobID string) (string, bool) {
	for _, s := range f.monitor.Series(jobID) {
		if strings.HasPrefix(s, monitor.MetricSourceRecordsPerSec) {
			return s, true
		}
	}
	return "", false
}

func (f *forecaster) forecastJob(j Job) (*JobForecast, error) {
	series, ok := f.sourceSeries(j.ID)
	if !ok {
		return nil, fmt.Errorf("no source throughput series yet")
	}
	samples := f.monitor.History(j.ID, series, time.Time{})
	if len(samples) < f.o.MinPoints {
		return nil, fmt.Errorf("%d samples, need %d", len(samples), f.o.MinPoints)
	}
	y := make([]float64, len(samples))
	for i, s := range samples {
		y[i] = s.Value
	}
	step := samples[len(samples)-1].Time.Sub(samples[0].Time) / time.Duration(len(samples)-1)
	if step <= 0 {
		return nil, fmt.Errorf("samples without a time step")
	}
	h := max(1, int(f.o.Horizon/step))
	ao := mlforecast.DefaultAutoOptions()
	ao.Period = f.o.Period
	res, err := mlforecast.DetectResiduals(y, mlforecast.ResidualOptions{Auto: ao})
	if err != nil {
		return nil, err
	}
	model := res.Model
	pred, err := model.Forecast(h, 0.95)
	if err != nil {
		return nil, err
	}
	last := samples[len(samples)-1].Time
	out := &JobForecast{
		JobID: j.ID, Series: series, GeneratedAt: f.now(), StepSeconds: step.Seconds(), Points: len(y),
		Order: [3]int{model.Spec.P, model.Spec.D, model.Spec.Q}, Level: 0.95,
		Forecast: clampNonNegative(pred.Mean), Lower: clampNonNegative(pred.Lower), Upper: clampNonNegative(pred.Upper),
		Anomalies: []Anomaly{},
	}
	if model.Spec.Period > 1 {
		out.Seasonal = &[4]int{model.Spec.SP, model.Spec.SD, model.Spec.SQ, model.Spec.Period}
	}
	for i := range h {
		out.Times = append(out.Times, last.Add(step*time.Duration(i+1)).UTC().Format(time.RFC3339))
	}
	for _, a := range res.Anomalies {
		out.Anomalies = append(out.Anomalies, Anomaly{Time: samples[a.Index].Time, Value: a.Value, Expected: a.Expected, Score: a.Score})
	}
	if cap, ok := f.capacity(j, samples, pred, step); ok {
		out.Capacity = cap
	}
	return out, nil
}

// capacity advises on parallelism, with a configured or estimated
// per-slot throughput.
func (f *forecaster) capacity(j Job, samples []monitor.Sample, pred *mlforecast.Forecast, step time.Duration) (*Capacity, bool) {
	spec, err := jobrunner.ParseSpec([]byte(j.Spec), "")
	if err != nil {
		return nil, false
	}
	par := spec.SourceParallelism()
	per, estimated := f.o.PerSlotThroughput, false
	if per == 0 {
		per, estimated = f.estimatePerSlot(j.ID, samples, par)
	}
	if per <= 0 {
		return nil, false
	}
	adv, err := mlforecast.AdviseCapacity(pred, mlforecast.CapacityOptions{PerSlotThroughput: per, CurrentParallelism: par, Step: step,
		MaxParallelism: spec.MaxParallelism})
	if err != nil {
		return nil, false
	}
	c := &Capacity{PerSlotThroughput: per, Estimated: estimated, Parallelism: par, Capacity: adv.Capacity,
		RecommendedParallelism: adv.RecommendedParallelism, PeakUpper: adv.PeakUpper, ExceedsInSeconds: -1}
	if adv.UpperExceeds {
		c.ExceedsInSeconds = adv.TimeUntilUpper.Seconds()
	}
	return c, true
}

// estimatePerSlot is the highest per-subtask source rate seen while the
// sources were back-pressured at least half of the time: then they ran as
// fast as the job could take.
func (f *forecaster) estimatePerSlot(jobID string, rates []monitor.Sample, par int) (float64, bool) {
	var bp []monitor.Sample
	for _, s := range f.monitor.Series(jobID) {
		if strings.HasPrefix(s, monitor.MetricBackpressuredMsPerSec) && strings.Contains(s, `key="source"`) {
			bp = f.monitor.History(jobID, s, time.Time{})
		}
	}
	best := 0.0
	for _, b := range bp {
		if b.Value < 500 {
			continue
		}
		for _, r := range rates {
			if d := r.Time.Sub(b.Time); d > -time.Second && d < time.Second {
				best = max(best, r.Value/float64(par))
			}
		}
	}
	return best, best > 0
}

// alert raises or resolves the forecaster's two alerts for a job.
func (f *forecaster) alert(ctx context.Context, j Job, fc *JobForecast) {
	if f.notifier == nil {
		return
	}
	labels := func(name string) alert.Labels {
		return alert.Labels{"job": j.ID, "alertname": name, "level": "WARN", "job_name": j.Name}
	}
	set := func(name string, on bool, summary string) {
		key := j.ID + "/" + name
		f.mu.Lock()
		was := f.raised[key]
		if on {
			f.raised[key] = labels(name)
		} else {
			delete(f.raised, key)
		}
		f.mu.Unlock()
		switch {
		case on && was == nil:
			if err := f.notifier.Raise(ctx, notify.Alert{Labels: labels(name), Annotations: alert.Labels{"summary": summary}}); err != nil {
				f.log.WithError(err).Warn("forecast: raising an alert")
			}
		case !on && was != nil:
			// The labels it was raised with: a job renamed since, or an
			// alert of the previous run, keeps its own.
			if err := f.notifier.Resolve(ctx, notify.Alert{Labels: was}); err != nil {
				f.log.WithError(err).Warn("forecast: resolving an alert")
			}
		}
	}
	if c := fc.Capacity; c != nil {
		set(alertInputExceedsCapacity, c.ExceedsInSeconds >= 0, fmt.Sprintf(
			"input will exceed capacity (%.0f records/s at parallelism %d) in ~%.0f min; recommended parallelism %d",
			c.Capacity, c.Parallelism, math.Ceil(c.ExceedsInSeconds/60), c.RecommendedParallelism))
	}
	// Anomalous among the newest three samples.
	recent := false
	cut := fc.GeneratedAt.Add(-3 * time.Duration(fc.StepSeconds*float64(time.Second)))
	var worst Anomaly
	for _, a := range fc.Anomalies {
		if !a.Time.Before(cut) {
			recent = true
			worst = a
		}
	}
	set(alertThroughputAnomaly, recent, fmt.Sprintf("source throughput %.1f records/s where %.1f was expected (score %.1f)",
		worst.Value, worst.Expected, worst.Score))
}

func clampNonNegative(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = max(0, x)
	}
	return out
}

// forecastHandler serves GET /api/v1/jobs/{id}/forecast.
func (a *api) forecast(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if !ok {
		return
	}
	f := a.d.forecaster
	if f == nil {
		writeError(w, http.StatusNotFound, "no_forecaster", "the daemon does not forecast: set monitor.rules and forecast.interval")
		return
	}
	f.mu.Lock()
	fc := f.latest[j.ID]
	f.mu.Unlock()
	if fc == nil {
		writeError(w, http.StatusNotFound, "no_forecast", fmt.Sprintf("no forecast of job %s yet: it needs %d samples of its source throughput", j.ID, f.o.MinPoints))
		return
	}
	writeJSON(w, http.StatusOK, fc)
}
