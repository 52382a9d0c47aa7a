package monitor

import (
	"context"
	"sync"
	"time"

	"github.com/tidewatch/tidewatch/monitor/rules"
)

// Sink receives what the rules raise. The monitor calls it from its
// evaluation loop, synchronously and from one goroutine at a time: an
// implementation queues what it has to deliver and returns. Package notify
// implements delivery.
type Sink interface {
	// Fire reports a rule that began to match for a key (rule and partition:
	// job, worker, metric key). While the rule keeps matching for that key
	// it is not fired again, unless EvalOptions.RefireInterval asks for
	// repeats (Firing.Repeat).
	Fire(ctx context.Context, f Firing)
	// Resolve reports that a fired key stopped matching: no match for the
	// rule's resolveAfter, its job left the monitor, or its rule was removed
	// or changed by a reload.
	Resolve(ctx context.Context, r Resolved)
}

// Firing is one rule beginning to match for one key.
type Firing struct {
	// Key identifies the firing until it is resolved: the rule name and the
	// partition key (by default job/worker/metric key), "/"-joined.
	Key         string      `json:"key"`
	Rule        string      `json:"rule"`
	Level       rules.Level `json:"level"`
	Scope       rules.Scope `json:"scope"`
	Description string      `json:"description,omitempty"`
	// RuleLocation is "file:line" of the rule's definition.
	RuleLocation string `json:"ruleLocation"`

	JobID    string `json:"jobID"`
	JobName  string `json:"jobName,omitempty"`
	TMID     string `json:"tmID,omitempty"`
	Hostname string `json:"hostname,omitempty"`

	// Start and End are the times of the first and last matched events; At
	// is the event time of the match (End, or the end of the window for a
	// pattern ending in a negative event).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	At    time.Time `json:"at"`

	// Fields are the rule's output fields.
	Fields map[string]any `json:"fields,omitempty"`
	// Samples are the matched events, in pattern order: why it fired.
	Samples []MatchedSample `json:"samples"`
	// Action is the rule's action, nil if it has none. With DryRun set it
	// is a recommendation only.
	Action *rules.Action `json:"action,omitempty"`
	// Repeat marks a key fired again while it kept matching; its action is
	// not taken again.
	Repeat bool `json:"repeat,omitempty"`
}

// MatchedSample is one event of a match.
type MatchedSample struct {
	Stage       string    `json:"stage"`
	Time        time.Time `json:"time"`
	TMID        string    `json:"tmID,omitempty"`
	MetricsName string    `json:"metricsName"`
	MetricsKey  string    `json:"metricsKey,omitempty"`
	Value       float64   `json:"value"`
}

// Resolved reports the end of a firing.
type Resolved struct {
	Key   string    `json:"key"`
	Rule  string    `json:"rule"`
	JobID string    `json:"jobID"`
	TMID  string    `json:"tmID,omitempty"`
	At    time.Time `json:"at"`
	// Reason is why: ResolvedQuiet, ResolvedJobGone or ResolvedRuleChanged.
	Reason string `json:"reason"`
}

// The reasons of a Resolved.
const (
	ResolvedQuiet       = "no-match"     // no match for the rule's resolveAfter
	ResolvedJobGone     = "job-gone"     // the job is no longer monitored
	ResolvedRuleChanged = "rule-changed" // a reload removed or changed the rule
)

// Recorder is a Sink that keeps what it receives, in order; for tests and
// the rules CLI. It is safe for concurrent use.
type Recorder struct {
	mu       sync.Mutex
	firings  []Firing
	resolved []Resolved
	order    []Notice
}

// Notice is one call a Recorder received: a Firing or a Resolved.
type Notice struct {
	Firing   *Firing   `json:"firing,omitempty"`
	Resolved *Resolved `json:"resolved,omitempty"`
}

var _ Sink = (*Recorder)(nil)

// Fire records f.
func (r *Recorder) Fire(_ context.Context, f Firing) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.firings = append(r.firings, f)
	r.order = append(r.order, Notice{Firing: &f})
}

// Resolve records res.
func (r *Recorder) Resolve(_ context.Context, res Resolved) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resolved = append(r.resolved, res)
	r.order = append(r.order, Notice{Resolved: &res})
}

// Firings returns the firings recorded so far.
func (r *Recorder) Firings() []Firing {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Firing(nil), r.firings...)
}

// Resolutions returns the resolutions recorded so far.
func (r *Recorder) Resolutions() []Resolved {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Resolved(nil), r.resolved...)
}

// Notices returns every call recorded so far, in order.
func (r *Recorder) Notices() []Notice {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Notice(nil), r.order...)
}

// NopSink discards everything.
type NopSink struct{}

// Fire does nothing.
func (NopSink) Fire(context.Context, Firing) {}

// Resolve does nothing.
func (NopSink) Resolve(context.Context, Resolved) {}
