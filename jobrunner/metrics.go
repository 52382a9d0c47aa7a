package jobrunner

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
	"github.com/tidewatch/tidewatch/jobrunner/procstat"
	"github.com/tidewatch/tidewatch/state"
)

// Operator ids used as the "operator" label and as checkpoint state names.
const (
	opSource = "source"
	opWindow = "window"
	opSink   = "sink"
)

// jobMetrics are the job's Prometheus metrics. Every series carries the
// constant labels job_name and job_id. The dataflow's counters are read from
// the engine at scrape time (engineCollector); the process metrics from the
// job's procstat sampler.
type jobMetrics struct {
	checkpointsCompleted prometheus.Counter
	checkpointsFailed    prometheus.Counter
	lastCkptDuration     prometheus.Gauge
	lastCkptSize         prometheus.Gauge
	watermark            prometheus.Gauge
	restored             prometheus.Counter
	latency              prometheus.Histogram

	reg  prometheus.Registerer
	mine []prometheus.Collector // registered by us, unregistered by unregister
}

// newJobMetrics registers the job's metrics in reg.
func newJobMetrics(reg prometheus.Registerer, j *job, now func() time.Time) (*jobMetrics, error) {
	labels := prometheus.Labels{"job_name": j.spec.Name, "job_id": j.id}
	opts := func(sub, name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "tidewatch", Subsystem: sub, Name: name, Help: help, ConstLabels: labels}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts(opts("job", name, help)))
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts(opts("job", name, help)))
	}
	m := &jobMetrics{
		checkpointsCompleted: counter("checkpoints_completed_total", "Checkpoints and savepoints completed."),
		checkpointsFailed:    counter("checkpoints_failed_total", "Checkpoints and savepoints that failed."),
		lastCkptDuration:     gauge("last_checkpoint_duration_seconds", "Duration of the last completed checkpoint."),
		lastCkptSize:         gauge("last_checkpoint_size_bytes", "Size on disk of the last completed checkpoint."),
		watermark:            gauge("current_watermark_milliseconds", "Current event-time watermark, epoch ms (NaN before the first record)."),
		restored:             counter("restored_total", "Times this job master restored the job from a checkpoint or savepoint."),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "tidewatch", Subsystem: "job",
			Name: "end_to_end_latency_seconds",
			Help: "Delay of latency markers from the sources to the keyed subtasks and their sinks: " +
				"queueing and backpressure between the stages, not time spent in windows.",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}),
		reg: reg,
	}
	m.watermark.Set(math.NaN())
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("job", "watermark_lag_seconds",
		"Wall time minus the current watermark (NaN before the first record and after the final watermark).")),
		func() float64 {
			wm := j.watermark.Load()
			if wm == flow.WatermarkNone || wm == flow.WatermarkMax {
				return math.NaN()
			}
			return float64(now().UnixMilli()-wm) / 1000
		})
	restarts := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("job", "restarts",
		"Restarts of the job before this job master: its deployment attempt minus one.")),
		func() float64 { return float64(max(0, j.attempt-1)) })
	cs := []prometheus.Collector{
		m.checkpointsCompleted, m.checkpointsFailed, m.lastCkptDuration, m.lastCkptSize,
		m.watermark, m.restored, m.latency, lag, restarts, newEngineCollector(j, labels),
	}
	cs = append(cs, processCollectors(j.proc, func(sub, name, help string) prometheus.GaugeOpts {
		return prometheus.GaugeOpts(opts(sub, name, help))
	})...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, err
		}
		m.mine = append(m.mine, c)
	}
	// The process-wide collectors may already be registered by the embedding
	// program; that is fine.
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		err := reg.Register(c)
		var are prometheus.AlreadyRegisteredError
		switch {
		case err == nil:
			m.mine = append(m.mine, c)
		case errors.As(err, &are):
		default:
			m.unregister()
			return nil, err
		}
	}
	return m, nil
}

// processCollectors export the sampler's last sample as tidewatch_process_*.
func processCollectors(ps *procstat.Sampler, opts func(sub, name, help string) prometheus.GaugeOpts) []prometheus.Collector {
	g := func(name, help string, f func(s procstat.Sample) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(opts("process", name, help), func() float64 { return f(ps.Last()) })
	}
	c := func(name, help string, f func(s procstat.Sample) float64) prometheus.Collector {
		o := opts("process", name, help)
		return prometheus.NewCounterFunc(prometheus.CounterOpts(o), func() float64 { return f(ps.Last()) })
	}
	return []prometheus.Collector{
		g("heap_inuse_bytes", "Go heap in use: live and unswept objects.", func(s procstat.Sample) float64 { return float64(s.HeapInUse) }),
		g("heap_committed_bytes", "Go heap memory held from the OS.", func(s procstat.Sample) float64 { return float64(s.HeapCommitted) }),
		g("memory_limit_bytes", "The job's memory limit (resources.memory, or a smaller cgroup limit); 0 if none.",
			func(s procstat.Sample) float64 { return float64(s.MemoryLimit) }),
		g("heap_load_ratio", "Go heap in use / memory limit (NaN without a limit).", procstat.Sample.HeapLoad),
		g("resident_memory_bytes", "Resident set size.", func(s procstat.Sample) float64 { return float64(s.RSS) }),
		g("nonheap_bytes", "Resident memory outside the Go heap in use.", func(s procstat.Sample) float64 { return float64(s.NonHeap()) }),
		g("cpu_load_ratio", "Share of all cores used over the last second, 0..1.", func(s procstat.Sample) float64 { return s.CPULoad }),
		c("cpu_seconds_total", "User and system CPU time.", func(s procstat.Sample) float64 { return s.CPUTime.Seconds() }),
		g("goroutines", "Goroutines.", func(s procstat.Sample) float64 { return float64(s.Goroutines) }),
		g("threads", "OS threads.", func(s procstat.Sample) float64 { return float64(s.Threads) }),
		c("gc_cycles_total", "Completed GC cycles.", func(s procstat.Sample) float64 { return float64(s.GCCycles) }),
		c("gc_pause_seconds_total", "Total stop-the-world GC pause time.", func(s procstat.Sample) float64 { return s.GCPauseTotal.Seconds() }),
		g("gc_pause_ms_per_second", "GC pause per second of wall time over the last second.",
			func(s procstat.Sample) float64 { return s.GCTimeMsPerSecond }),
	}
}

// engineCollector reads the dataflow's counters from the running engine at
// scrape time, per operator and subtask.
type engineCollector struct {
	j     *job
	descs map[string]*prometheus.Desc // by descNames key
}

func newEngineCollector(j *job, labels prometheus.Labels) *engineCollector {
	c := &engineCollector{j: j, descs: map[string]*prometheus.Desc{}}
	for key, n := range descNames {
		c.descs[key] = prometheus.NewDesc(prometheus.BuildFQName("tidewatch", "job", n[0]), n[1], descLabels[key], labels)
	}
	return c
}

var (
	descNames = map[string][2]string{
		"recordsIn":    {"operator_records_in_total", "Records received by an operator subtask."},
		"recordsOut":   {"operator_records_out_total", "Records emitted by an operator subtask."},
		"emitted":      {"source_records_emitted_total", "Records emitted by the source."},
		"written":      {"sink_records_written_total", "Records written by the sink."},
		"dropped":      {"late_records_dropped_total", "Records later than the window allows, dropped (the job has no lateSink)."},
		"sideOutput":   {"late_records_side_output_total", "Records later than the window allows, sent to the lateSink."},
		"backpressure": {"backpressured_seconds_total", "Time subtasks spent blocked on a full downstream channel."},
		"subtaskBP":    {"subtask_backpressured_seconds_total", "Time a subtask spent blocked on a full downstream channel."},
		"idle":         {"subtask_idle_seconds_total", "Time a source subtask spent waiting for input."},
		"watermark":    {"subtask_watermark_milliseconds", "A subtask's current watermark, epoch ms (NaN before its first)."},
		"state":        {"state_entries", "State entries of a keyed subtask, by state backend."},
		"kgBackend":    {"state_key_groups", "Key groups of a keyed subtask, by state backend."},
		"migrated":     {"state_migrated_entries_total", "State entries moved between backends."},
		"migrating":    {"state_migration_seconds_total", "Time spent moving key groups between backends."},
		"stall":        {"state_migration_longest_stall_seconds", "The longest single key-group move of a subtask, during which its records waited."},
		"pending":      {"state_migration_pending_key_groups", "Key groups a subtask still has to move."},
	}
	descLabels = map[string][]string{
		"recordsIn": {"operator", "subtask"}, "recordsOut": {"operator", "subtask"}, "subtaskBP": {"operator", "subtask"},
		"idle": {"operator", "subtask"}, "watermark": {"operator", "subtask"}, "state": {"operator", "subtask", "backend"},
		"kgBackend": {"operator", "subtask", "backend"}, "migrated": {"operator", "subtask"}, "migrating": {"operator", "subtask"},
		"stall": {"operator", "subtask"}, "pending": {"operator", "subtask"},
	}
)

func (c *engineCollector) desc(key string) *prometheus.Desc { return c.descs[key] }

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(key string, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(c.desc(key), prometheus.CounterValue, v, lv...)
	}
	gauge := func(key string, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(c.desc(key), prometheus.GaugeValue, v, lv...)
	}
	watermark := func(wm int64) float64 {
		if wm == flow.WatermarkNone || wm == flow.WatermarkMax {
			return math.NaN()
		}
		return float64(wm)
	}
	j := c.j
	counter("dropped", float64(j.lateDropped.Load()))
	counter("sideOutput", float64(j.lateSideOutput.Load()))
	var emitted, written, bp int64
	if eng := j.eng.Load(); eng != nil {
		keyed := len(eng.KeyedStats) > 0
		for i, s := range eng.SourceStats {
			sub := strconv.Itoa(i)
			emitted += s.RecordsIn.Load()
			bp += s.BackpressuredNs.Load()
			counter("recordsOut", float64(s.RecordsIn.Load()), opSource, sub)
			counter("idle", time.Duration(s.IdleNs.Load()).Seconds(), opSource, sub)
			counter("subtaskBP", time.Duration(s.BackpressuredNs.Load()).Seconds(), opSource, sub)
			gauge("watermark", watermark(s.Watermark.Load()), opSource, sub)
			if !keyed {
				written += s.SinkRecords.Load()
				counter("recordsIn", float64(s.SinkRecords.Load()), opSink, sub)
				counter("recordsOut", float64(s.SinkRecords.Load()), opSink, sub)
			}
		}
		for i, s := range eng.KeyedStats {
			sub := strconv.Itoa(i)
			written += s.SinkRecords.Load()
			bp += s.BackpressuredNs.Load()
			counter("recordsIn", float64(s.RecordsIn.Load()), opWindow, sub)
			counter("recordsOut", float64(s.SinkRecords.Load()), opWindow, sub)
			counter("recordsIn", float64(s.SinkRecords.Load()), opSink, sub)
			counter("recordsOut", float64(s.SinkRecords.Load()), opSink, sub)
			counter("subtaskBP", time.Duration(s.BackpressuredNs.Load()).Seconds(), opWindow, sub)
			gauge("watermark", watermark(s.Watermark.Load()), opWindow, sub)
			onPebble := s.PebbleEntries.Load()
			gauge("state", float64(s.StateEntries.Load()-onPebble), opWindow, sub, BackendHeap)
			gauge("state", float64(onPebble), opWindow, sub, BackendPebble)
			kgs := int64(state.RangeForSubtask(j.spec.MaxParallelism, len(eng.KeyedStats), i).Len())
			gauge("kgBackend", float64(kgs-s.PebbleKeyGroups.Load()), opWindow, sub, BackendHeap)
			gauge("kgBackend", float64(s.PebbleKeyGroups.Load()), opWindow, sub, BackendPebble)
			counter("migrated", float64(s.MigratedEntries.Load()), opWindow, sub)
			counter("migrating", time.Duration(s.MigrationNs.Load()).Seconds(), opWindow, sub)
			gauge("stall", time.Duration(s.MigrationLongestStallNs.Load()).Seconds(), opWindow, sub)
			gauge("pending", float64(s.MigrationPending.Load()), opWindow, sub)
		}
	}
	counter("emitted", float64(emitted))
	counter("written", float64(written))
	counter("backpressure", time.Duration(bp).Seconds())
}

// unregister removes what newJobMetrics registered, so a registry can be
// reused by a later job master in the same process.
func (m *jobMetrics) unregister() {
	for _, c := range m.mine {
		m.reg.Unregister(c)
	}
	m.mine = nil
}
