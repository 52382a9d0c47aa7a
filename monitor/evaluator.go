package monitor

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tidewatch/tidewatch/monitor/cep"
	"github.com/tidewatch/tidewatch/monitor/rules"
)

// EvalOptions configure an Evaluator.
type EvalOptions struct {
	// AllowedLateness is how far behind the newest event an event may be
	// and still be processed in order (cep.Options.AllowedLateness). The
	// scraper stamps all events of a cycle with the cycle's time, so it
	// needs none.
	AllowedLateness time.Duration
	// MaxPartialMatches bounds each rule's partial matches per partition.
	MaxPartialMatches int
	// MaxBufferedEvents bounds each rule's reorder buffer per partition.
	MaxBufferedEvents int
	// MaxSamples bounds the matched samples a Firing carries.
	MaxSamples int
	// RefireInterval, if positive, fires an active key again (Repeat set)
	// when it matches at least this long after it was last fired: for sinks
	// that expire alerts not raised again. Zero fires each key once.
	RefireInterval time.Duration
}

// DefaultEvalOptions allows no lateness, 256 partial matches and 64
// buffered events per rule and partition, 64 samples per firing.
func DefaultEvalOptions() EvalOptions {
	return EvalOptions{MaxPartialMatches: 256, MaxBufferedEvents: 64, MaxSamples: 64}
}

// Validate names the first unusable option.
func (o EvalOptions) Validate() error {
	switch {
	case o.AllowedLateness < 0:
		return fmt.Errorf("monitor: EvalOptions.AllowedLateness must not be negative, got %v", o.AllowedLateness)
	case o.MaxPartialMatches <= 0:
		return fmt.Errorf("monitor: EvalOptions.MaxPartialMatches must be positive, got %d", o.MaxPartialMatches)
	case o.MaxBufferedEvents <= 0:
		return fmt.Errorf("monitor: EvalOptions.MaxBufferedEvents must be positive, got %d", o.MaxBufferedEvents)
	case o.MaxSamples <= 0:
		return fmt.Errorf("monitor: EvalOptions.MaxSamples must be positive, got %d", o.MaxSamples)
	case o.RefireInterval < 0:
		return fmt.Errorf("monitor: EvalOptions.RefireInterval must not be negative, got %v", o.RefireInterval)
	}
	return nil
}

// Evaluator runs a rule set over metric events in event time: one CEP
// engine per rule, fed only the events of the rule's scope and metrics. It
// turns matches into firings, fires each key once while it keeps matching,
// and resolves it when its rule has not matched it for the rule's
// resolveAfter. It is used from one goroutine.
type Evaluator struct {
	opts EvalOptions
	sink Sink
	ctx  context.Context // of the call in progress, for the sink

	set  *rules.Set
	runs []*ruleRun
	// route[scope][metric] holds the runs that read the metric; open[scope]
	// the runs of rules without a metrics list, which read every metric.
	route [2]map[string]*routeEntry
	open  [2][]*ruleRun
	// begun holds, per series read by guarded rules, the time of the latest
	// event that could begin a match of each guarded run of the series'
	// route entry (noBegin if none): see guard. It is keyed by a hash of the
	// series: two series that collide share their times, which only makes
	// the guards skip less.
	begun map[uint64]begunTimes
	seed  maphash.Seed

	noGuards  bool      // tests: deliver every routed event
	now       time.Time // the newest event time seen or advanced to
	matches   uint64
	delivered uint64
	skipped   uint64
}

// routeEntry is the runs that read one metric of one scope, with their
// guards (nil: every event is delivered).
type routeEntry struct {
	runs    []*ruleRun
	guards  []guard
	guarded bool
}

// maxGuarded is how many runs of one route entry can have guards; the
// catalogue has at most four rules per metric.
const maxGuarded = 8

type begunTimes [maxGuarded]int64

var noBegunTimes = func() (b begunTimes) {
	for i := range b {
		b[i] = noBegin
	}
	return b
}()

const noBegin = math.MinInt64

// seriesHash hashes what identifies a series: scope, job, worker, metric
// and key.
func (e *Evaluator) seriesHash(ev *Event) uint64 {
	h := maphash.String(e.seed, ev.JobID)
	h = h*0x9E3779B97F4A7C15 ^ maphash.String(e.seed, ev.TMID)
	h = h*0x9E3779B97F4A7C15 ^ maphash.String(e.seed, ev.MetricsName)
	h = h*0x9E3779B97F4A7C15 ^ maphash.String(e.seed, ev.MetricsKey)
	h = h*0x9E3779B97F4A7C15 ^ uint64(scopeIndex(ev.Scope))
	return h
}

// ruleRun is one rule's engine and its active firings by partition key.
type ruleRun struct {
	rule   *rules.Rule
	engine *cep.Engine
	active map[string]*active
	eval   *Evaluator
	within int64 // the rule's window, ns
	// skipFrom is the event time from which the guard may skip events: a
	// run kept by a reload has partial matches its new begun state does not
	// know of until they have timed out.
	skipFrom int64
	// begunAny is the latest begin time in any series: while it is older
	// than the window, no series needs looking up.
	begunAny int64
}

type active struct {
	firing    Firing
	lastMatch time.Time
	lastFired time.Time
}

// ErrNilSink is returned by NewEvaluator without a sink.
var ErrNilSink = errors.New("monitor: nil sink")

// NewEvaluator returns an evaluator of set reporting to sink.
func NewEvaluator(set *rules.Set, opts EvalOptions, sink Sink) (*Evaluator, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, ErrNilSink
	}
	e := &Evaluator{opts: opts, sink: sink, ctx: context.Background(), seed: maphash.MakeSeed()}
	if err := e.SetRules(context.Background(), set); err != nil {
		return nil, err
	}
	return e, nil
}

func scopeIndex(s rules.Scope) int {
	if s == rules.ScopeTaskManager {
		return 1
	}
	return 0
}

// SetRules replaces the rule set. The engines of rules whose pattern is
// unchanged (same name and fingerprint) keep their partial matches and
// active firings; the firings of rules removed or changed are resolved.
func (e *Evaluator) SetRules(ctx context.Context, set *rules.Set) error {
	if set == nil {
		set = &rules.Set{}
	}
	old := map[string]*ruleRun{}
	for _, r := range e.runs {
		old[r.rule.Name] = r
	}
	var runs []*ruleRun
	for _, r := range set.Enabled() {
		if prev, ok := old[r.Name]; ok && prev.rule.Fingerprint() == r.Fingerprint() {
			prev.rule = r // outputs, level, action may have changed
			for _, a := range prev.active {
				a.firing.Level, a.firing.Action = r.Level, r.Action
			}
			if !e.now.IsZero() {
				prev.skipFrom = e.now.UnixNano() + prev.within
			}
			runs = append(runs, prev)
			delete(old, r.Name)
			continue
		}
		run := &ruleRun{rule: r, active: map[string]*active{}, eval: e, within: int64(r.Within), skipFrom: noBegin, begunAny: noBegin}
		opts := cep.Options{
			KeyFields:         r.PartitionBy,
			AllowedLateness:   e.opts.AllowedLateness,
			MaxBufferedEvents: e.opts.MaxBufferedEvents,
			MaxPartialMatches: e.opts.MaxPartialMatches,
		}
		eng, err := cep.NewEngine(r.NFA(), opts, run.emit)
		if err != nil {
			return fmt.Errorf("monitor: rule %s: %w", r.Name, err)
		}
		run.engine = eng
		runs = append(runs, run)
	}
	e.ctx = ctx
	for _, r := range e.runs {
		if _, gone := old[r.rule.Name]; gone {
			for _, key := range sortedKeys(r.active) {
				e.resolve(r, key, ResolvedRuleChanged)
			}
		}
	}
	e.ctx = context.Background()
	e.set, e.runs = set, runs
	for i := range e.route {
		e.route[i] = map[string]*routeEntry{}
		e.open[i] = nil
	}
	e.begun = map[uint64]begunTimes{}
	for _, r := range runs {
		si := scopeIndex(r.rule.Scope)
		if len(r.rule.Metrics) == 0 {
			e.open[si] = append(e.open[si], r)
			continue
		}
		g := compileGuard(r.rule)
		if e.noGuards {
			g = nil
		}
		for _, m := range r.rule.Metrics {
			rt := e.route[si][m]
			if rt == nil {
				rt = &routeEntry{}
				e.route[si][m] = rt
			}
			if !slices.Contains(rt.runs, r) {
				if len(rt.runs) >= maxGuarded {
					g = nil
				}
				rt.runs = append(rt.runs, r)
				rt.guards = append(rt.guards, g)
				rt.guarded = rt.guarded || g != nil
			}
		}
	}
	return nil
}

// Rules returns the rule set being evaluated.
func (e *Evaluator) Rules() *rules.Set { return e.set }

// Process feeds one event to the rules that read it.
func (e *Evaluator) Process(ctx context.Context, ev Event) {
	e.ctx = ctx
	si := scopeIndex(ev.Scope)
	if rt := e.route[si][ev.MetricsName]; rt != nil {
		ts := ev.Time.UnixNano()
		var k uint64
		var begun begunTimes
		changed, lookedUp := false, false
		if rt.guarded {
			// look the series up unless every guarded run can skip the event
			// on what it knows of all series
			for i, r := range rt.runs {
				if g := rt.guards[i]; g != nil && (g(ev.MetricsValue) || ts < r.skipFrom ||
					r.begunAny != noBegin && ts-r.begunAny < r.within) {
					lookedUp = true
					break
				}
			}
			if lookedUp {
				k = e.seriesHash(&ev)
				var ok bool
				if begun, ok = e.begun[k]; !ok {
					begun = noBegunTimes
				}
			} else {
				begun = noBegunTimes
			}
		}
		for i, r := range rt.runs {
			if g := rt.guards[i]; g != nil {
				if g(ev.MetricsValue) {
					if ts > begun[i] {
						begun[i], changed = ts, true
					}
					r.begunAny = max(r.begunAny, ts)
				} else if ts >= r.skipFrom && (begun[i] == noBegin || ts-begun[i] >= r.within) {
					e.skipped++
					continue
				}
			}
			e.delivered++
			r.engine.Process(ev.Event)
		}
		if changed {
			e.begun[k] = begun
		}
	}
	for _, r := range e.open[si] {
		e.delivered++
		r.engine.Process(ev.Event)
	}
	if ev.Time.After(e.now) {
		e.now = ev.Time
	}
	e.ctx = context.Background()
}

// AdvanceTo moves event time on to t: windows that closed by t end (which
// completes patterns ending in a negative event) and firings whose rule has
// not matched for its resolveAfter are resolved.
func (e *Evaluator) AdvanceTo(ctx context.Context, t time.Time) {
	e.ctx = ctx
	defer func() { e.ctx = context.Background() }()
	for _, r := range e.runs {
		r.engine.AdvanceWatermark(t)
	}
	if t.After(e.now) {
		e.now = t
	}
	for _, r := range e.runs {
		if len(r.active) == 0 {
			continue
		}
		for _, key := range sortedKeys(r.active) {
			if a := r.active[key]; !e.now.Before(a.lastMatch.Add(r.rule.ResolveAfter)) {
				e.resolve(r, key, ResolvedQuiet)
			}
		}
	}
}

// Flush processes every buffered event.
func (e *Evaluator) Flush(ctx context.Context) {
	e.ctx = ctx
	for _, r := range e.runs {
		r.engine.Flush()
	}
	e.ctx = context.Background()
}

// Adopt takes over a firing raised before a restart, whose state the
// evaluator has lost, as if its rule had last matched at at: a new match of
// the same rule and key keeps it (without firing it again), and without one
// it resolves after the rule's resolveAfter, as any firing does. It returns
// false for a firing it cannot keep, whose rule is gone or does not give its
// key; the caller resolves that one.
func (e *Evaluator) Adopt(f Firing, at time.Time) bool {
	for _, r := range e.runs {
		if r.rule.Name != f.Rule {
			continue
		}
		key, ok := strings.CutPrefix(f.Key, f.Rule+"/")
		if !ok {
			return false
		}
		if _, dup := r.active[key]; !dup {
			r.active[key] = &active{firing: f, lastMatch: at, lastFired: at}
		}
		return true
	}
	return false
}

// ForgetJob resolves the active firings of a job that is no longer
// monitored.
func (e *Evaluator) ForgetJob(ctx context.Context, jobID string) {
	e.ctx = ctx
	for _, r := range e.runs {
		for _, key := range sortedKeys(r.active) {
			if r.active[key].firing.JobID == jobID {
				e.resolve(r, key, ResolvedJobGone)
			}
		}
	}
	// begun keeps the job's entries: they say nothing once its windows
	// have passed, and Compact drops them then
	e.ctx = context.Background()
}

// Compact drops the state of partitions that hold nothing; call it now and
// then so that jobs that ended leave nothing behind.
func (e *Evaluator) Compact() int {
	n := 0
	for _, r := range e.runs {
		n += r.engine.Compact()
	}
	var longest int64
	for _, r := range e.runs {
		longest = max(longest, r.within)
	}
	now := e.now.UnixNano()
	for k, b := range e.begun {
		if slices.Max(b[:]) == noBegin || now-slices.Max(b[:]) >= longest {
			delete(e.begun, k)
		}
	}
	return n
}

// Active returns the active firings, ordered by rule and key.
func (e *Evaluator) Active() []Firing {
	var out []Firing
	for _, r := range e.runs {
		for _, key := range sortedKeys(r.active) {
			out = append(out, r.active[key].firing)
		}
	}
	return out
}

// EvalStats are the evaluator's counters.
type EvalStats struct {
	Rules           int
	Matches         uint64
	Active          int
	Partitions      int
	PartialMatches  int
	Late            uint64
	ConditionErrors uint64
	Pruned          uint64
	// Delivered counts events given to rule engines; Skipped the deliveries
	// the rules' guards spared.
	Delivered uint64
	Skipped   uint64
}

// Stats sums the counters of the rules' engines.
func (e *Evaluator) Stats() EvalStats {
	s := EvalStats{Rules: len(e.runs), Matches: e.matches, Delivered: e.delivered, Skipped: e.skipped}
	for _, r := range e.runs {
		st := r.engine.Stats()
		s.Active += len(r.active)
		s.Partitions += st.Partitions
		s.PartialMatches += st.PartialMatches
		s.Late += st.Late
		s.ConditionErrors += st.ConditionErrors
		s.Pruned += st.PrunedPartialMatches
	}
	return s
}

// emit receives a match of the run's rule from its engine.
func (r *ruleRun) emit(m cep.Match) {
	if m.TimedOut {
		return
	}
	e := r.eval
	e.matches++
	if a, ok := r.active[m.Key]; ok {
		a.lastMatch = m.At
		if e.opts.RefireInterval > 0 && m.At.Sub(a.lastFired) >= e.opts.RefireInterval {
			f := r.firing(m, e.opts.MaxSamples)
			f.Repeat = true
			a.lastFired = m.At
			e.sink.Fire(e.ctx, f)
		}
		return
	}
	f := r.firing(m, e.opts.MaxSamples)
	r.active[m.Key] = &active{firing: f, lastMatch: m.At, lastFired: m.At}
	e.sink.Fire(e.ctx, f)
}

func (e *Evaluator) resolve(r *ruleRun, key string, reason string) {
	a := r.active[key]
	delete(r.active, key)
	at := e.now
	if quiet := a.lastMatch.Add(r.rule.ResolveAfter); reason == ResolvedQuiet && quiet.Before(at) {
		at = quiet // when it became quiet, if time jumped past that
	}
	e.sink.Resolve(e.ctx, Resolved{Key: a.firing.Key, Rule: a.firing.Rule, JobID: a.firing.JobID,
		TMID: a.firing.TMID, At: at, Reason: reason})
}

// firing builds the Firing of a first match.
func (r *ruleRun) firing(m cep.Match, maxSamples int) Firing {
	rule := r.rule
	f := Firing{
		Key:          rule.Name + "/" + m.Key,
		Rule:         rule.Name,
		Level:        rule.Level,
		Scope:        rule.Scope,
		Description:  rule.Description,
		RuleLocation: rule.Location(),
		Start:        m.Start,
		End:          m.End,
		At:           m.At,
		Fields:       rule.EvalOutputs(m.Events),
	}
	if rule.Action != nil {
		a := *rule.Action
		f.Action = &a
	}
	var last *cep.Event
	for _, name := range rule.StageNames() {
		evs := m.Events[name]
		for i := range evs {
			ev := &evs[i]
			last = ev
			if len(f.Samples) < maxSamples {
				f.Samples = append(f.Samples, MatchedSample{Stage: name, Time: ev.Time, TMID: ev.TMID,
					MetricsName: ev.MetricsName, MetricsKey: ev.MetricsKey, Value: ev.MetricsValue})
			}
		}
	}
	if last != nil {
		f.JobID, f.TMID, f.Hostname = last.JobID, last.TMID, last.Hostname
		if n, ok := last.Labels[LabelJobName].(string); ok {
			f.JobName = n
		}
	}
	return f
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
