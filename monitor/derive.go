package monitor

import (
	"math"
	"net/url"
	"slices"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tidewatch/tidewatch/monitor/cep"
	"github.com/tidewatch/tidewatch/monitor/rules"
)

// Scrape is what one look at a job master returned.
type Scrape struct {
	Target Target
	// At is the event time of the events derived from it: the start of the
	// monitor's cycle, the same for every target of the cycle.
	At time.Time
	// Fetched is when the metrics were read; rates divide by the time
	// between two of these.
	Fetched time.Time
	// Families are the parsed /metrics, by name.
	Families map[string]*dto.MetricFamily
	// Flink holds the job master's numRunningJobs and
	// numRegisteredTaskManagers, when it answered for them.
	Flink map[string]float64
	// WorkerID is the id of the worker the job master hosts.
	WorkerID string
	// Err is why the scrape failed; the other fields are then unset.
	Err error
}

// The job master's Prometheus metrics the scraper reads (docs/REST.md,
// "Job master metrics").
const (
	famHeapInUse       = "tidewatch_process_heap_inuse_bytes"
	famMemoryLimit     = "tidewatch_process_memory_limit_bytes"
	famHeapLoad        = "tidewatch_process_heap_load_ratio"
	famRSS             = "tidewatch_process_resident_memory_bytes"
	famNonHeap         = "tidewatch_process_nonheap_bytes"
	famCPULoad         = "tidewatch_process_cpu_load_ratio"
	famGoroutines      = "tidewatch_process_goroutines"
	famThreads         = "tidewatch_process_threads"
	famGCCycles        = "tidewatch_process_gc_cycles_total"
	famGCPause         = "tidewatch_process_gc_pause_seconds_total"
	famGCPauseMsPerSec = "tidewatch_process_gc_pause_ms_per_second"
	famRestarts        = "tidewatch_job_restarts"
	famCkptFailed      = "tidewatch_job_checkpoints_failed_total"
	famCkptCompleted   = "tidewatch_job_checkpoints_completed_total"
	famCkptDuration    = "tidewatch_job_last_checkpoint_duration_seconds"
	famWatermarkLag    = "tidewatch_job_watermark_lag_seconds"
	famLateDropped     = "tidewatch_job_late_records_dropped_total"
	famSourceEmitted   = "tidewatch_job_source_records_emitted_total"
	famSinkWritten     = "tidewatch_job_sink_records_written_total"
	famLatency         = "tidewatch_job_end_to_end_latency_seconds"
	famRecordsIn       = "tidewatch_job_operator_records_in_total"
	famRecordsOut      = "tidewatch_job_operator_records_out_total"
	famSubtaskBP       = "tidewatch_job_subtask_backpressured_seconds_total"
	famStateEntries    = "tidewatch_job_state_entries"

	flinkRunningJobs  = "numRunningJobs"
	flinkTaskManagers = "numRegisteredTaskManagers"
)

// MinSkewRate is the mean per-subtask records-in rate (records/s) below
// which an operator's skew is not reported: at a trickle, a few records
// more or less make any spread look large.
const MinSkewRate = 1.0

// deriver turns successive scrapes of one job master into metric events:
// gauges as they are, ratios of gauges, rates and increases of counters
// (a counter that went down restarted from zero), quantiles and means of
// the histogram's increase. It keeps the previous value of every counter
// and histogram; a scrape of another endpoint (a new job master) starts
// afresh.
type deriver struct {
	endpoint string
	jobName  string
	labels   map[string]any // shared by every event of the job; never modified
	counters map[string]point
	hists    map[string]histPoint
}

type point struct {
	v float64
	t time.Time
}

type histPoint struct {
	t      time.Time
	count  float64
	sum    float64
	bounds []float64
	cum    []float64
}

func newDeriver(endpoint string) *deriver {
	return &deriver{endpoint: endpoint, counters: map[string]point{}, hists: map[string]histPoint{}}
}

// derive emits the events of scrape s, in a fixed order.
func (d *deriver) derive(s *Scrape, emit func(Event)) {
	t := s.Target
	if d.labels == nil || d.jobName != t.JobName {
		d.jobName = t.JobName
		d.labels = map[string]any{LabelJobName: t.JobName}
	}
	host := hostOf(t.Endpoint)
	ev := func(scope rules.Scope, tm, name, key string, v float64) {
		emit(Event{Scope: scope, Event: cep.Event{Time: s.At, JobID: t.JobID, TMID: tm, Hostname: host,
			MetricsName: name, MetricsKey: key, MetricsValue: v, Labels: d.labels}})
	}
	jm := func(name, key string, v float64) {
		if !t.Worker { // a worker container's metrics are its own, not the job's
			ev(rules.ScopeJobManager, "", name, key, v)
		}
	}
	tm := func(name, key string, v float64) { ev(rules.ScopeTaskManager, s.WorkerID, name, key, v) }
	both := func(name string, v float64) {
		jm(name, "", v)
		tm(name, "", v)
	}
	if s.Err != nil {
		jm(MetricUp, "", 0)
		return
	}
	jm(MetricUp, "", 1)
	fams := s.Families
	now := s.Fetched

	// process
	inuse, hasInuse := gauge(fams, famHeapInUse)
	limit, hasLimit := gauge(fams, famMemoryLimit)
	hasLimit = hasLimit && limit > 0
	if hasInuse {
		both(MetricHeapInUse, inuse)
	}
	if hasLimit {
		both(MetricMemoryLimit, limit)
	}
	switch {
	case hasInuse && hasLimit:
		both(MetricHeapLoad, inuse/limit)
	default:
		if v, ok := gauge(fams, famHeapLoad); ok && finite(v) {
			both(MetricHeapLoad, v)
		}
	}
	if v, ok := gauge(fams, famNonHeap); ok {
		both(MetricNonHeap, v)
		if hasLimit {
			both(MetricNonHeapLoad, v/limit)
		}
	}
	if v, ok := gauge(fams, famRSS); ok {
		both(MetricRSS, v)
		if hasLimit {
			both(MetricMemoryLoad, v/limit)
		}
	}
	if v, ok := gauge(fams, famCPULoad); ok && finite(v) {
		both(MetricCPULoad, v)
	}
	if v, ok := gauge(fams, famGCPause); ok {
		if r, _, ok := d.rate(famGCPause, v, now); ok {
			both(MetricGCPauseMsPerSec, r*1000)
		} else if g, ok := gauge(fams, famGCPauseMsPerSec); ok && finite(g) {
			both(MetricGCPauseMsPerSec, g)
		}
	}
	if v, ok := gauge(fams, famGCCycles); ok {
		if r, _, ok := d.rate(famGCCycles, v, now); ok {
			both(MetricGCCyclesPerSecond, r)
		}
	}
	if v, ok := gauge(fams, famGoroutines); ok {
		both(MetricGoroutines, v)
	}
	if v, ok := gauge(fams, famThreads); ok {
		both(MetricThreads, v)
	}

	// job
	if v, ok := gauge(fams, famRestarts); ok {
		jm(MetricRestarts, "", v)
	}
	if v, ok := s.Flink[flinkRunningJobs]; ok {
		jm(MetricRunningJobs, "", v)
	}
	if v, ok := s.Flink[flinkTaskManagers]; ok {
		jm(MetricTaskManagers, "", v)
	}
	if v, ok := gauge(fams, famCkptFailed); ok {
		if _, inc, ok := d.rate(famCkptFailed, v, now); ok {
			jm(MetricCheckpointsFailedInc, "", inc)
		}
	}
	if v, ok := gauge(fams, famCkptCompleted); ok {
		if _, inc, ok := d.rate(famCkptCompleted, v, now); ok {
			jm(MetricCheckpointsDoneInc, "", inc)
		}
	}
	if v, ok := gauge(fams, famCkptDuration); ok && finite(v) {
		jm(MetricCheckpointDuration, "", v)
	}
	if v, ok := gauge(fams, famWatermarkLag); ok && finite(v) {
		jm(MetricWatermarkLag, "", v)
	}
	if v, ok := gauge(fams, famLateDropped); ok {
		if r, _, ok := d.rate(famLateDropped, v, now); ok {
			jm(MetricLateDroppedPerSecond, "", r)
		}
	}

	// dataflow
	in := d.operatorRates(fams[famRecordsIn], now)
	out := d.operatorRates(fams[famRecordsOut], now)
	if rs, ok := out.byOp["source"]; ok {
		tm(MetricSourceRecordsPerSec, "", sum(rs))
	} else if v, ok := gauge(fams, famSourceEmitted); ok {
		if r, _, ok := d.rate(famSourceEmitted, v, now); ok {
			tm(MetricSourceRecordsPerSec, "", r)
		}
	}
	if rs, ok := in.byOp["sink"]; ok {
		tm(MetricSinkRecordsPerSec, "", sum(rs))
	} else if v, ok := gauge(fams, famSinkWritten); ok {
		if r, _, ok := d.rate(famSinkWritten, v, now); ok {
			tm(MetricSinkRecordsPerSec, "", r)
		}
	}
	for _, op := range in.ops {
		rs := in.byOp[op]
		tm(MetricRecordsInPerSecond, op, sum(rs))
		if skew, ok := skewOf(rs); ok {
			tm(MetricRecordsInSkew, op, skew)
		}
	}
	for _, op := range out.ops {
		tm(MetricRecordsOutPerSecond, op, sum(out.byOp[op]))
	}
	bp := d.operatorRates(fams[famSubtaskBP], now)
	for _, op := range bp.ops {
		tm(MetricBackpressuredMsPerSec, op, slices.Max(bp.byOp[op])*1000)
	}
	if f := fams[famStateEntries]; f != nil {
		byBackend := map[string]float64{}
		for _, m := range f.GetMetric() {
			byBackend[label(m, "backend")] += value(m)
		}
		for _, b := range sortedKeys(byBackend) {
			tm(MetricStateEntries, b, byBackend[b])
		}
	}
	if f := fams[famLatency]; f != nil && len(f.GetMetric()) > 0 && f.GetMetric()[0].GetHistogram() != nil {
		if p50, p99, mean, ok := d.histogram(famLatency, f.GetMetric()[0].GetHistogram(), now); ok {
			tm(MetricLatencyP50, "", p50)
			tm(MetricLatencyP99, "", p99)
			tm(MetricLatencyMean, "", mean)
		}
	}
}

// rate returns the per-second rate and the increase of counter key since
// its previous value; ok is false for the first value. A counter that went
// down was reset: its increase is its value.
func (d *deriver) rate(key string, v float64, t time.Time) (rate, inc float64, ok bool) {
	p, had := d.counters[key]
	d.counters[key] = point{v: v, t: t}
	if !had || !t.After(p.t) || !finite(v) || !finite(p.v) {
		return 0, 0, false
	}
	inc = v - p.v
	if inc < 0 {
		inc = v
	}
	return inc / t.Sub(p.t).Seconds(), inc, true
}

// opRates are per-subtask rates of a counter labelled operator and
// subtask, by operator.
type opRates struct {
	ops  []string // sorted
	byOp map[string][]float64
}

func (d *deriver) operatorRates(f *dto.MetricFamily, now time.Time) opRates {
	r := opRates{byOp: map[string][]float64{}}
	if f == nil {
		return r
	}
	for _, m := range f.GetMetric() {
		op, sub := label(m, "operator"), label(m, "subtask")
		if rate, _, ok := d.rate(f.GetName()+"\x00"+op+"\x00"+sub, value(m), now); ok {
			if _, seen := r.byOp[op]; !seen {
				r.ops = append(r.ops, op)
			}
			r.byOp[op] = append(r.byOp[op], rate)
		}
	}
	slices.Sort(r.ops)
	return r
}

// skewOf is Flink's data skew of per-subtask rates, in percent:
// (max − mean) / max × 100. 0 is an even spread; with n subtasks, all
// records on one subtask give 100 × (1 − 1/n).
func skewOf(rates []float64) (float64, bool) {
	if len(rates) < 2 {
		return 0, false
	}
	mean := sum(rates) / float64(len(rates))
	hi := slices.Max(rates)
	if mean < MinSkewRate || hi <= 0 {
		return 0, false
	}
	return (hi - mean) / hi * 100, true
}

// histogram returns the median, the 99th percentile and the mean of what a
// histogram observed since its previous scrape, interpolated within
// buckets as Prometheus's histogram_quantile does; ok is false for the
// first scrape and for an interval without observations.
func (d *deriver) histogram(key string, h *dto.Histogram, now time.Time) (p50, p99, mean float64, ok bool) {
	cur := histPoint{t: now, count: float64(h.GetSampleCount()), sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue
		}
		cur.bounds = append(cur.bounds, b.GetUpperBound())
		cur.cum = append(cur.cum, float64(b.GetCumulativeCount()))
	}
	prev, had := d.hists[key]
	d.hists[key] = cur
	if !had {
		return 0, 0, 0, false
	}
	count, total := cur.count-prev.count, cur.sum-prev.sum
	cum := make([]float64, len(cur.cum))
	reset := count < 0 || !slices.Equal(cur.bounds, prev.bounds)
	for i := range cum {
		if reset {
			cum[i] = cur.cum[i]
		} else {
			cum[i] = cur.cum[i] - prev.cum[i]
		}
	}
	if reset {
		count, total = cur.count, cur.sum
	}
	if count <= 0 {
		return 0, 0, 0, false
	}
	return bucketQuantile(0.5, cur.bounds, cum, count), bucketQuantile(0.99, cur.bounds, cum, count), total / count, true
}

// bucketQuantile interpolates the q-quantile in cumulative bucket counts
// cum with upper bounds bounds (without +Inf) and total observations
// count. A quantile in the +Inf bucket is the largest finite bound.
func bucketQuantile(q float64, bounds, cum []float64, count float64) float64 {
	if len(bounds) == 0 {
		return math.NaN()
	}
	rank := q * count
	prevBound, prevCum := 0.0, 0.0
	for i, ub := range bounds {
		if cum[i] >= rank {
			if i == 0 && ub <= 0 {
				return ub
			}
			if cum[i] == prevCum {
				return ub
			}
			return prevBound + (ub-prevBound)*(rank-prevCum)/(cum[i]-prevCum)
		}
		prevBound, prevCum = ub, cum[i]
	}
	return bounds[len(bounds)-1]
}

// gauge returns the value of the first series of family name.
func gauge(fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	f := fams[name]
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, false
	}
	m := f.GetMetric()[0]
	if m.GetGauge() == nil && m.GetCounter() == nil && m.GetUntyped() == nil {
		return 0, false
	}
	return value(m), true
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return math.NaN()
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func sum(vs []float64) float64 {
	s := 0.0
	for _, v := range vs {
		s += v
	}
	return s
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// hostOf is the host of an endpoint URL, without the port.
func hostOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// parseFlinkValue reads a Flink metric value: a Java number, "NaN",
// "Infinity".
func parseFlinkValue(s string) (float64, bool) {
	switch s {
	case "Infinity":
		return math.Inf(1), true
	case "-Infinity":
		return math.Inf(-1), true
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}
