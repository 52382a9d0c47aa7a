package notify

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	alerts        *prometheus.CounterVec
	notifications *prometheus.CounterVec
	deliveries    *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	pending       prometheus.Gauge
	sendSeconds   *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidewatch_notify_alerts_total",
			Help: "Alerts received by the notifier, by action (raised, resolved).",
		}, []string{"action"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidewatch_notify_notifications_total",
			Help: "Notifications queued in the outbox, by receiver.",
		}, []string{"receiver"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidewatch_notify_delivery_attempts_total",
			Help: "Delivery attempts by channel (receiver/name) and outcome (delivered, retry, failed, interrupted).",
		}, []string{"channel", "outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidewatch_notify_rate_limited_total",
			Help: "Deliveries postponed by a channel's rate limit.",
		}, []string{"channel"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tidewatch_notify_outbox_pending",
			Help: "Deliveries waiting in the outbox.",
		}),
		sendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tidewatch_notify_send_seconds",
			Help:    "Duration of one delivery attempt, by channel type.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 8),
		}, []string{"type"}),
	}
	if reg != nil {
		reg.MustRegister(m.alerts, m.notifications, m.deliveries, m.rateLimited, m.pending, m.sendSeconds)
	}
	return m
}
