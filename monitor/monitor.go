package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/tidewatch/tidewatch/monitor/rules"
)

// Options configure a Monitor.
type Options struct {
	// Rules are the rule files and directories (their *.yaml and *.yml
	// files) to load.
	Rules []string
	// Interval between two scrape cycles. The catalogue's counts of samples
	// assume 15 s.
	Interval time.Duration
	// Timeout bounds the scrape of one job master (all its requests).
	Timeout time.Duration
	// Concurrency bounds how many job masters one cycle scrapes at once.
	Concurrency int
	// ReloadInterval is how often the rule files are checked for changes
	// (size, modification time, files added or removed); 0 turns the
	// watch off, leaving Reload.
	ReloadInterval time.Duration
	// HistorySize is how many samples each series keeps for History.
	HistorySize int
	// HistoryRetention is how long the history of a job that is no longer
	// monitored is kept.
	HistoryRetention time.Duration
	// Eval configures the rule evaluation.
	Eval EvalOptions
}

// DefaultOptions scrape every 15 s with a 5 s timeout, 16 job masters at a
// time, check the rule files every 10 s, and keep an hour of history per
// series (240 samples) for an hour after a job leaves.
func DefaultOptions() Options {
	return Options{
		Interval:         15 * time.Second,
		Timeout:          5 * time.Second,
		Concurrency:      16,
		ReloadInterval:   10 * time.Second,
		HistorySize:      240,
		HistoryRetention: time.Hour,
		Eval:             DefaultEvalOptions(),
	}
}

// Validate names the first unusable option.
func (o Options) Validate() error {
	switch {
	case len(o.Rules) == 0:
		return errors.New("monitor: Options.Rules must name at least one rule file or directory")
	case o.Interval < time.Second:
		return fmt.Errorf("monitor: Options.Interval must be at least 1s, got %v", o.Interval)
	case o.Timeout <= 0 || o.Timeout > o.Interval:
		return fmt.Errorf("monitor: Options.Timeout must be positive and at most Interval (%v), got %v", o.Interval, o.Timeout)
	case o.Concurrency <= 0:
		return fmt.Errorf("monitor: Options.Concurrency must be positive, got %d", o.Concurrency)
	case o.ReloadInterval < 0:
		return fmt.Errorf("monitor: Options.ReloadInterval must not be negative, got %v", o.ReloadInterval)
	case o.HistorySize <= 0:
		return fmt.Errorf("monitor: Options.HistorySize must be positive, got %d", o.HistorySize)
	case o.HistoryRetention <= 0:
		return fmt.Errorf("monitor: Options.HistoryRetention must be positive, got %v", o.HistoryRetention)
	}
	return o.Eval.Validate()
}

// Actor carries out rule actions on jobs; the daemon implements it over its
// job operations (migrations, savepoints, restarts).
type Actor interface {
	Act(ctx context.Context, req ActionRequest) error
}

// ActionRequest is one action a firing asks for.
type ActionRequest struct {
	Target    Target
	Rule      string
	FiringKey string
	Action    rules.Action
}

// Deps are what a Monitor uses of its surroundings.
type Deps struct {
	// Targets lists the jobs to scrape; required.
	Targets TargetsFunc
	// Sink receives firings and resolutions; required.
	Sink Sink
	// Facts, when set, adds YARN's facts about the jobs every cycle.
	Facts FactsFunc
	// Actor, when set, carries out the actions of firings that are not dry
	// runs; without it actions are only reported.
	Actor Actor
	// Log; nil discards.
	Log *logrus.Entry
	// Registerer takes the monitor's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// HTTPClient scrapes the job masters; nil is a plain client (Timeout
	// bounds each scrape).
	HTTPClient *http.Client
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// actionTimeout bounds one action.
const actionTimeout = 2 * time.Minute

// compactEvery is how many cycles pass between two compactions of the
// rules' partitions.
const compactEvery = 20

// Monitor scrapes every running job's job master on a schedule, derives
// metric events, keeps their recent history and runs the rules over them,
// reporting firings to a Sink and carrying out their actions through an
// Actor. New → Start → Stop.
type Monitor struct {
	opts    Options
	deps    Deps
	log     *logrus.Entry
	met     *metrics
	scraper scraper
	hist    *History

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // loops
	actWG  sync.WaitGroup // actions in flight

	reloadMu sync.Mutex // one reload at a time

	mu         sync.Mutex // the rest
	started    bool
	stopped    bool
	eval       *Evaluator
	status     RulesStatus
	snap       string              // of the rule files at the last load
	derivers   map[string]*deriver // by endpoint
	targets    map[string]Target   // the job masters' by job id, as of the last cycle
	workers    map[string]string   // worker id by endpoint
	lastAt     time.Time
	cycles     int
	acting     map[string]bool      // jobs with an action in flight
	lastAction map[string]time.Time // by job id and action type
	batch      []Event
}

// RulesStatus says what rules a monitor runs and how the last load went.
type RulesStatus struct {
	Rules    int       `json:"rules"`
	Files    []string  `json:"files"`
	LoadedAt time.Time `json:"loadedAt"`
	// LastError is the error of the last failed load, if it came after the
	// last successful one (the previous rules then still run).
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// Errors are LastError's problems one by one, with file, line and field.
	Errors []*rules.Error `json:"errors,omitempty"`
}

// New loads the rules and prepares a monitor; nothing runs until Start. A
// rule file with errors is an error here: there are no previous rules to
// keep.
func New(opts Options, deps Deps) (*Monitor, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Targets == nil:
		return nil, errors.New("monitor: Deps.Targets is required")
	case deps.Sink == nil:
		return nil, errors.New("monitor: Deps.Sink is required")
	}
	if deps.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		deps.Log = logrus.NewEntry(l)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{}
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	met, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	m := &Monitor{
		opts: opts, deps: deps, log: deps.Log.WithField("component", "monitor"), met: met,
		scraper: scraper{client: deps.HTTPClient}, hist: NewHistory(opts.HistorySize),
		derivers: map[string]*deriver{}, targets: map[string]Target{}, workers: map[string]string{},
		acting: map[string]bool{}, lastAction: map[string]time.Time{},
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	snap := snapshot(opts.Rules)
	set, err := rules.Load(opts.Rules...)
	if err != nil {
		m.cancel()
		return nil, err
	}
	if m.eval, err = NewEvaluator(set, opts.Eval, monitorSink{m}); err != nil {
		m.cancel()
		return nil, err
	}
	m.snap = snap
	m.status = RulesStatus{Rules: len(set.Enabled()), Files: set.Files, LoadedAt: deps.Now()}
	m.met.rules.Set(float64(len(set.Enabled())))
	m.met.reloads.WithLabelValues("ok").Inc()
	return m, nil
}

// Start begins the scrape cycles (the first at once) and the watch of the
// rule files.
func (m *Monitor) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.stopped {
		return
	}
	m.started = true
	m.wg.Add(1)
	go m.run()
	if m.opts.ReloadInterval > 0 {
		m.wg.Add(1)
		go m.watch()
	}
	m.log.WithFields(logrus.Fields{"rules": m.status.Rules, "interval": m.opts.Interval}).Info("monitor started")
}

// Stop ends the cycles and the watch and waits for them and for actions in
// flight, or until ctx is done. It is idempotent.
func (m *Monitor) Stop(ctx context.Context) error {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return nil
	}
	m.stopped = true
	m.mu.Unlock()
	m.cancel()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		m.actWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("monitor: stop: %w", ctx.Err())
	}
}

func (m *Monitor) run() {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	m.cycle(m.ctx)
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.cycle(m.ctx)
		}
	}
}

// cycle scrapes every target, derives their events and runs the rules.
func (m *Monitor) cycle(ctx context.Context) {
	start := time.Now()
	defer func() { m.met.cycleSeconds.Observe(time.Since(start).Seconds()) }()
	m.mu.Lock()
	at := m.deps.Now()
	if !at.After(m.lastAt) {
		at = m.lastAt.Add(time.Millisecond) // event time never goes back
	}
	m.lastAt = at
	m.mu.Unlock()

	targets, err := m.deps.Targets(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.WithError(err).Warn("list targets")
		}
		return
	}
	m.mu.Lock()
	known := make([]string, len(targets))
	for i, t := range targets {
		known[i] = t.WorkerID
		if known[i] == "" {
			known[i] = m.workers[t.Endpoint]
		}
	}
	m.mu.Unlock()

	results := make([]*Scrape, len(targets))
	g := errgroup.Group{}
	g.SetLimit(m.opts.Concurrency)
	for i, t := range targets {
		g.Go(func() error {
			sctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
			defer cancel()
			began := time.Now()
			results[i] = m.scraper.scrape(sctx, t, known[i], at, m.deps.Now)
			m.met.scrapeSeconds.Observe(time.Since(began).Seconds())
			return nil
		})
	}
	_ = g.Wait()
	var facts []Fact
	if m.deps.Facts != nil && len(targets) > 0 {
		fctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
		facts, err = m.deps.Facts(fctx, targets)
		cancel()
		if err != nil && ctx.Err() == nil {
			m.met.factErrors.Inc()
			m.log.WithError(err).Warn("YARN facts")
		}
	}
	if ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ingest(ctx, at, results, facts)
}

// ingest derives the events of a cycle's scrapes and facts and runs the
// rules over them; m.mu is held.
func (m *Monitor) ingest(ctx context.Context, at time.Time, results []*Scrape, facts []Fact) {
	seen := make(map[string]bool, len(results))
	endpoints := make(map[string]bool, len(results))
	batch := m.batch[:0]
	for _, s := range results {
		t := s.Target
		seen[t.JobID], endpoints[t.Endpoint] = true, true
		if !t.Worker {
			m.targets[t.JobID] = t
		}
		d := m.derivers[t.Endpoint]
		if d == nil {
			d = newDeriver(t.Endpoint)
			m.derivers[t.Endpoint] = d
		}
		if s.Err != nil {
			m.met.scrapes.WithLabelValues("error").Inc()
			if ctx.Err() == nil {
				m.log.WithError(s.Err).WithFields(logrus.Fields{"job": t.JobID, "endpoint": t.Endpoint}).Debug("scrape failed")
			}
		} else {
			m.met.scrapes.WithLabelValues("ok").Inc()
			if t.WorkerID == "" {
				m.workers[t.Endpoint] = s.WorkerID
			}
		}
		d.derive(s, func(ev Event) { batch = append(batch, ev) })
	}
	for _, f := range facts {
		t, ok := m.targets[f.JobID]
		d := m.derivers[t.Endpoint]
		if !ok || !seen[f.JobID] || d == nil || f.Name == "" {
			continue
		}
		ev := Event{Scope: rules.ScopeJobManager}
		ev.Time, ev.JobID, ev.Hostname, ev.Labels = at, f.JobID, hostOf(d.endpoint), d.labels
		ev.MetricsName, ev.MetricsKey, ev.MetricsValue = f.Name, f.Key, f.Value
		batch = append(batch, ev)
	}
	m.hist.Add(batch...)
	for _, ev := range batch {
		m.eval.Process(ctx, ev)
	}
	m.met.events.Add(float64(len(batch)))
	clear(batch)
	m.batch = batch[:0]
	m.eval.AdvanceTo(ctx, at)

	for ep := range m.derivers {
		if !endpoints[ep] {
			delete(m.derivers, ep)
		}
	}
	for id := range m.targets {
		if !seen[id] {
			delete(m.targets, id)
			m.eval.ForgetJob(ctx, id)
		}
	}
	for ep := range m.workers {
		if !endpoints[ep] {
			delete(m.workers, ep)
		}
	}
	for k, last := range m.lastAction {
		if at.Sub(last) > 24*time.Hour {
			delete(m.lastAction, k)
		}
	}
	m.hist.ForgetBefore(at.Add(-m.opts.HistoryRetention))
	m.cycles++
	if m.cycles%compactEvery == 0 {
		m.eval.Compact()
	}
	st := m.eval.Stats()
	m.met.targets.Set(float64(len(results)))
	m.met.active.Set(float64(st.Active))
	m.met.partitions.Set(float64(st.Partitions))
	m.met.partialMatches.Set(float64(st.PartialMatches))
	m.met.condErrors.Set(float64(st.ConditionErrors))
}

// monitorSink counts and passes on what the evaluator raises, and starts
// the actions of firings. It runs with m.mu held.
type monitorSink struct{ m *Monitor }

func (s monitorSink) Fire(ctx context.Context, f Firing) {
	m := s.m
	if !f.Repeat {
		m.met.firings.WithLabelValues(f.Rule, string(f.Level)).Inc()
		m.log.WithFields(logrus.Fields{"rule": f.Rule, "level": f.Level, "job": f.JobID, "key": f.Key}).Info("rule fired")
	}
	m.deps.Sink.Fire(ctx, f)
	if !f.Repeat {
		m.act(f)
	}
}

func (s monitorSink) Resolve(ctx context.Context, r Resolved) {
	s.m.met.resolved.WithLabelValues(r.Reason).Inc()
	s.m.deps.Sink.Resolve(ctx, r)
}

// act starts f's action unless it is a dry run, its job has an action in
// flight, or the same action ran for the job within its cooldown.
func (m *Monitor) act(f Firing) {
	a := f.Action
	if a == nil {
		return
	}
	result := func(r string) { m.met.actions.WithLabelValues(string(a.Type), r).Inc() }
	log := m.log.WithFields(logrus.Fields{"rule": f.Rule, "job": f.JobID, "action": a.Type})
	t, ok := m.targets[f.JobID]
	switch {
	case a.DryRun:
		result("dry-run")
		log.Info("action recommended (dry run)")
		return
	case m.deps.Actor == nil:
		result("no-actor")
		log.Info("action recommended (no actor configured)")
		return
	case !ok:
		return
	case m.acting[f.JobID]:
		result("busy")
		return
	}
	key := f.JobID + "/" + string(a.Type)
	now := m.deps.Now()
	if last, ok := m.lastAction[key]; ok && now.Sub(last) < a.Cooldown {
		result("cooldown")
		return
	}
	m.acting[f.JobID], m.lastAction[key] = true, now
	req := ActionRequest{Target: t, Rule: f.Rule, FiringKey: f.Key, Action: *a}
	m.actWG.Add(1)
	go func() {
		defer m.actWG.Done()
		ctx, cancel := context.WithTimeout(m.ctx, actionTimeout)
		err := m.deps.Actor.Act(ctx, req)
		cancel()
		m.mu.Lock()
		delete(m.acting, req.Target.JobID)
		m.mu.Unlock()
		if err != nil {
			result("error")
			log.WithError(err).Warn("action failed")
			return
		}
		result("ok")
		log.Info("action taken")
	}()
}

// Reload loads the rule files again. On success the new rules replace the
// old ones; rules whose pattern did not change keep their state. On error
// the previous rules stay and the error (an rules.ErrorList naming file,
// line and field) is returned and kept in the status. This is what the
// daemon's POST /api/v1/rules/reload calls.
func (m *Monitor) Reload(ctx context.Context) (RulesStatus, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	snap := snapshot(m.opts.Rules)
	set, err := rules.Load(m.opts.Rules...)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snap = snap
	if err == nil {
		err = m.eval.SetRules(ctx, set)
	}
	if err != nil {
		m.status.LastError, m.status.LastErrorAt, m.status.Errors = err.Error(), m.deps.Now(), rules.Errors(err)
		m.met.reloads.WithLabelValues("error").Inc()
		m.log.WithError(err).Warn("rule reload failed; the previous rules stay")
		return m.status, err
	}
	m.status = RulesStatus{Rules: len(set.Enabled()), Files: set.Files, LoadedAt: m.deps.Now()}
	m.met.reloads.WithLabelValues("ok").Inc()
	m.met.rules.Set(float64(len(set.Enabled())))
	m.log.WithField("rules", m.status.Rules).Info("rules reloaded")
	return m.status, nil
}

// Status returns the rule status.
func (m *Monitor) Status() RulesStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// Rules returns the rules being evaluated.
func (m *Monitor) Rules() *rules.Set {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.eval.Rules()
}

// Adopt takes over the firings a previous run of the monitor raised and
// did not resolve (the notifier remembers them across a restart; the
// monitor does not). Each is kept as if its rule had just matched: if the
// condition holds it matches again and the alert stays as it is, and if the
// condition ended while the daemon was down it resolves after the rule's
// resolveAfter. A firing whose rule no longer exists resolves now. Call it
// before Start.
func (m *Monitor) Adopt(ctx context.Context, firings []Firing) (adopted int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.deps.Now()
	for _, f := range firings {
		if m.eval.Adopt(f, now) {
			adopted++
			continue
		}
		monitorSink{m}.Resolve(ctx, Resolved{Key: f.Key, Rule: f.Rule, JobID: f.JobID, TMID: f.TMID, At: now, Reason: ResolvedRuleChanged})
	}
	if len(firings) > 0 {
		m.log.WithFields(logrus.Fields{"adopted": adopted, "resolved": len(firings) - adopted}).Info("took over the firings of the previous run")
	}
	return adopted
}

// Active returns the firings not yet resolved.
func (m *Monitor) Active() []Firing {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.eval.Active()
}

// History returns a job's samples of one series at or after since, oldest
// first; series is a SeriesKey's String form (a bare name is the job
// master's series). Unknown jobs and series have none.
func (m *Monitor) History(job, series string, since time.Time) []Sample {
	k, err := ParseSeriesKey(series)
	if err != nil {
		return nil
	}
	return m.hist.Query(job, k, since)
}

// Series lists the series a job has history of, in SeriesKey's String form.
func (m *Monitor) Series(job string) []string {
	keys := m.hist.Series(job)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.String()
	}
	return out
}

// watch reloads the rules when their files change.
func (m *Monitor) watch() {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		changed := snapshot(m.opts.Rules) != m.snap
		m.mu.Unlock()
		if changed {
			_, _ = m.Reload(m.ctx) // logged and kept in the status
		}
	}
}

// snapshot describes the rule files: names, sizes and modification times.
func snapshot(paths []string) string {
	files, err := rules.Files(paths...)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(&b, "%s:missing;", f)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}
