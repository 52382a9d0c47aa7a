package jobrunner

import (
	"errors"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// Operator ids used as the "operator" label and as checkpoint state names.
const (
	opSource = "source"
	opWindow = "window"
	opSink   = "sink"
)

// jobMetrics are the job's Prometheus metrics. Every series carries the
// constant labels job_name and job_id.
type jobMetrics struct {
	recordsIn            *prometheus.CounterVec
	recordsOut           *prometheus.CounterVec
	sourceEmitted        prometheus.Counter
	sinkWritten          prometheus.Counter
	lateDropped          prometheus.Counter
	lateSideOutput       prometheus.Counter
	backpressure         prometheus.Counter
	checkpointsCompleted prometheus.Counter
	checkpointsFailed    prometheus.Counter
	lastCkptDuration     prometheus.Gauge
	lastCkptSize         prometheus.Gauge
	watermark            prometheus.Gauge
	restored             prometheus.Counter

	reg  prometheus.Registerer
	mine []prometheus.Collector // registered by us, unregistered by unregister
}

// newJobMetrics registers the job's metrics in reg. watermarkMs returns the
// current watermark (watermarkNone if none yet) for the lag gauge, which is
// computed at scrape time.
func newJobMetrics(reg prometheus.Registerer, jobName, jobID string, watermarkMs func() int64, now func() time.Time) (*jobMetrics, error) {
	labels := prometheus.Labels{"job_name": jobName, "job_id": jobID}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "tidewatch", Subsystem: "job", Name: name, Help: help, ConstLabels: labels}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts(opts(name, help)))
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts(opts(name, help)))
	}
	m := &jobMetrics{
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts(opts("operator_records_in_total",
			"Records received by an operator.")), []string{"operator"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts(opts("operator_records_out_total",
			"Records emitted by an operator.")), []string{"operator"}),
		sourceEmitted:        counter("source_records_emitted_total", "Records emitted by the source."),
		sinkWritten:          counter("sink_records_written_total", "Records written by the sink."),
		lateDropped:          counter("late_records_dropped_total", "Records later than the window allows, dropped (the job has no lateSink)."),
		lateSideOutput:       counter("late_records_side_output_total", "Records later than the window allows, sent to the lateSink."),
		backpressure:         counter("backpressured_seconds_total", "Time subtasks spent blocked on a full downstream channel."),
		checkpointsCompleted: counter("checkpoints_completed_total", "Checkpoints and savepoints completed."),
		checkpointsFailed:    counter("checkpoints_failed_total", "Checkpoints and savepoints that failed."),
		lastCkptDuration:     gauge("last_checkpoint_duration_seconds", "Duration of the last completed checkpoint."),
		lastCkptSize:         gauge("last_checkpoint_size_bytes", "Size on disk of the last completed checkpoint."),
		watermark:            gauge("current_watermark_milliseconds", "Current event-time watermark, epoch ms (NaN before the first record)."),
		restored:             counter("restored_total", "Times this job master restored the job from a checkpoint or savepoint."),
		reg:                  reg,
	}
	m.watermark.Set(math.NaN())
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("watermark_lag_seconds",
		"Wall time minus the current watermark (NaN before the first record and after the final watermark).")),
		func() float64 {
			wm := watermarkMs()
			if wm == flow.WatermarkNone || wm == flow.WatermarkMax {
				return math.NaN()
			}
			return float64(now().UnixMilli()-wm) / 1000
		})
	// Pre-create the operator series so they are exported from the start.
	for _, op := range []string{opWindow, opSink} {
		m.recordsIn.WithLabelValues(op)
	}
	for _, op := range []string{opSource, opWindow, opSink} {
		m.recordsOut.WithLabelValues(op)
	}
	for _, c := range []prometheus.Collector{
		m.recordsIn, m.recordsOut, m.sourceEmitted, m.sinkWritten, m.lateDropped, m.lateSideOutput, m.backpressure,
		m.checkpointsCompleted, m.checkpointsFailed, m.lastCkptDuration, m.lastCkptSize,
		m.watermark, m.restored, lag,
	} {
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

// unregister removes what newJobMetrics registered, so a registry can be
// reused by a later job master in the same process.
func (m *jobMetrics) unregister() {
	for _, c := range m.mine {
		m.reg.Unregister(c)
	}
	m.mine = nil
}
