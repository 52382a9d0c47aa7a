package supportlayer

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	cycleSeconds prometheus.Histogram
	watchErrors  *prometheus.CounterVec
	restarts     prometheus.Counter
	jobs         *prometheus.GaugeVec
	httpRequests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		cycleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tidewatch_watch_cycle_seconds",
			Help:    "Duration of one watch cycle over every unfinished job.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		watchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidewatch_watch_errors_total",
			Help: "Watch failures by stage (list, observe, reconcile).",
		}, []string{"stage"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tidewatch_job_restarts_total",
			Help: "Automatic restarts of jobs whose deployment died.",
		}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tidewatch_jobs",
			Help: "Jobs by daemon state.",
		}, []string{"state"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidewatch_http_requests_total",
			Help: "REST API requests by method and status code.",
		}, []string{"method", "code"}),
	}
	reg.MustRegister(m.cycleSeconds, m.watchErrors, m.restarts, m.jobs, m.httpRequests)
	return m
}

var allStates = []string{StateSubmitted, StateDeploying, StateRunning, StateRestarting, StateStopping,
	StateCancelling, StateStopped, StateCanceled, StateFinished, StateFailed}

func (m *metrics) setJobStates(counts map[string]int) {
	for _, s := range allStates {
		m.jobs.WithLabelValues(s).Set(float64(counts[s]))
	}
}
