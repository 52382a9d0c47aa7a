// Package notify delivers alerts: grouping, deduplication, inhibition,
// silences, a durable outbox and channels (SMS, WeChat Work, e-mail, webhook),
// and the action channel into job masters.
//
// It has no code in this build; the daemon's events are read through its REST
// API and CLI.
package notify
