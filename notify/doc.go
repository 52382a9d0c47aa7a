// Package notify delivers alerts to people: the notifier of the daemon.
//
// Alerts come from the monitor (or anything else) through Notifier.Raise and
// Notifier.Resolve. The notifier follows Prometheus Alertmanager's pipeline:
// each alert is fingerprinted by its labels (job, alertname = the event,
// level, family and any others), routed by level, job, event and label
// matchers to a receiver, and put in an aggregation group (by job and event
// unless configured otherwise). A group waits group_wait before its first
// notification and group_interval between later ones; at each flush,
// inhibited alerts (a FATAL inhibits the WARN and INFO alerts of its job and
// family; a JOB_RESTARTING inhibits its job's other alerts) and silenced ones
// are held back, and the group is notified only if something changed since
// its last notification, or repeat_interval has passed. Resolved alerts are
// notified to the channels that want them.
//
// Notifications are written to a durable outbox in the daemon's database (the
// tables notify_*), in the same transaction as the notification log that
// deduplicates them, and delivered at least once by workers with exponential
// backoff and jitter, each delivery carrying an idempotency key per
// notification and channel; a daemon that restarts sends what was not
// delivered, including what was being sent when it died. Per-channel rate
// limits space deliveries out instead of dropping them.
//
// Channels are packages of their own: wecom (WeChat Work group robot), sms
// (Tencent Cloud SMS), email (SMTP with STARTTLS), webhook (Alertmanager's
// webhook body, HMAC-signed) and alertmanager (forward to Alertmanager's API
// v2). Package alert holds the types they share with this one, and package
// channel what they have in common.
//
// The history of every alert and every delivery attempt is kept, and served by
// the REST endpoints that RegisterRoutes mounts: GET /api/v1/alerts and
// GET/POST/DELETE /api/v1/silences.
package notify
