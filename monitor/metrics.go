package monitor

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the monitor's own Prometheus metrics.
type metrics struct {
	cycleSeconds   prometheus.Histogram
	scrapes        *prometheus.CounterVec // result: ok, error
	scrapeSeconds  prometheus.Histogram
	events         prometheus.Counter
	firings        *prometheus.CounterVec // rule, level
	resolved       *prometheus.CounterVec // reason
	active         prometheus.Gauge
	rules          prometheus.Gauge
	reloads        *prometheus.CounterVec // result: ok, error
	actions        *prometheus.CounterVec // action, result: ok, error, dry-run, cooldown, busy, no-actor
	targets        prometheus.Gauge
	partitions     prometheus.Gauge
	partialMatches prometheus.Gauge
	condErrors     prometheus.Gauge
	factErrors     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	ns, sub := "tidewatch", "monitor"
	m := &metrics{
		cycleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "cycle_duration_seconds",
			Help: "Duration of a monitor cycle: targets, scrapes and rule evaluation.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "scrapes_total",
			Help: "Scrapes of job masters, by result."}, []string{"result"}),
		scrapeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "scrape_duration_seconds",
			Help: "Duration of one job master's scrape.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Metric events fed to the rules."}),
		firings: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "firings_total",
			Help: "Rule firings, by rule and level."}, []string{"rule", "level"}),
		resolved: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "resolved_total",
			Help: "Firings resolved, by reason."}, []string{"reason"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "active_firings",
			Help: "Firings not yet resolved."}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "rules",
			Help: "Rules being evaluated."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rule_reloads_total",
			Help: "Loads of the rule files, by result; a failed load keeps the previous rules."}, []string{"result"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "actions_total",
			Help: "Rule actions, by action and result (ok, error, dry-run, cooldown, busy, no-actor)."}, []string{"action", "result"}),
		targets: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "targets",
			Help: "Job masters scraped in the last cycle."}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "partitions",
			Help: "Partitions with state, summed over the rules."}),
		partialMatches: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "partial_matches",
			Help: "Partial matches held, summed over the rules."}),
		condErrors: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "condition_errors",
			Help: "Condition evaluations that failed at run time (taken as false) since the rules were loaded."}),
		factErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "fact_errors_total",
			Help: "Failed calls for YARN facts."}),
	}
	for _, c := range []prometheus.Collector{m.cycleSeconds, m.scrapes, m.scrapeSeconds, m.events, m.firings, m.resolved,
		m.active, m.rules, m.reloads, m.actions, m.targets, m.partitions, m.partialMatches, m.condErrors, m.factErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("monitor: metrics: %w", err)
		}
	}
	return m, nil
}
