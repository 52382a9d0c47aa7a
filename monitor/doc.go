// Package monitor watches running jobs through their metrics and raises
// the events of the rule catalogue.
//
// It owns metric collection and rule evaluation, not delivery:
//
//   - The scraper reads every running job's job master on a schedule
//     (GET /metrics in Prometheus's text format, parsed with expfmt, plus
//     the Flink JobManager metrics numRunningJobs and
//     numRegisteredTaskManagers) and derives metric events (event.go
//     lists them): gauges, ratios of gauges (heap load = heap in use /
//     memory limit), rates and increases of counters with reset handling,
//     quantiles of the latency histogram's increase, the spread of
//     per-subtask rates. YARN facts come in as events too, from a
//     callback.
//   - A History keeps the last samples of every series in ring buffers,
//     for the console and the forecaster (Monitor.History).
//   - An Evaluator runs a rules.Set over the events: one monitor/cep engine
//     per rule, fed only the events of the rule's scope and metrics,
//     partitioned by job, worker and metric key, in event time. A key that
//     starts matching is fired once to the Sink and resolved when its rule
//     stops matching it.
//   - Monitor ties them together (New → Start → Stop): the scrape cycle,
//     the rule files' hot reload (polling their size and modification
//     time; Reload for the daemon's POST /api/v1/rules/reload; a bad file
//     keeps the previous rules), and rule actions through an Actor, with a
//     cooldown per job and action.
//
// Traces (trace.go) record metric events as JSONL or CSV; a Replayer runs
// rules over one, as `tidewatch rules test` does. docs/RULES.md describes
// the rule language, the metric events and the catalogue.
package monitor
