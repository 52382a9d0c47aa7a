package supportlayer

// The daemon's side of the monitor (package monitor): which jobs it
// scrapes, where its firings go (the notifier), how it carries out rule
// actions (the daemon's job operations), and its REST endpoints. The
// daemon starts the monitor when monitor.rules is set; see wireMonitor for
// the lines that hook it into Daemon.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/monitor"
	"github.com/tidewatch/tidewatch/monitor/rules"
	"github.com/tidewatch/tidewatch/notify"
	"github.com/tidewatch/tidewatch/notify/alert"
	yarndeploy "github.com/tidewatch/tidewatch/supportlayer/deploy/yarn"
	"github.com/tidewatch/tidewatch/supportlayer/jobmaster"
)

// MonitorOptions are the monitor section of the daemon's configuration.
type MonitorOptions struct {
	// Rules is a rule file or a directory of them (configs/rules); empty
	// leaves the monitor off.
	Rules string `yaml:"rules"`
	// Interval between two scrapes of every running job; the catalogue's
	// sample counts assume 15s.
	Interval time.Duration `yaml:"interval"`
	// Timeout of one job master's scrape.
	Timeout time.Duration `yaml:"timeout"`
	// Actions carries out the rule actions that are not dry runs; false
	// only reports them.
	Actions bool `yaml:"actions"`
}

// DefaultMonitorOptions scrape every 15s with a 5s timeout and carry out
// actions; without rules the monitor stays off.
func DefaultMonitorOptions() MonitorOptions {
	return MonitorOptions{Interval: 15 * time.Second, Timeout: 5 * time.Second, Actions: true}
}

// Validate names the first monitor key whose value cannot work.
func (o MonitorOptions) Validate() error {
	if o.Rules == "" {
		return nil
	}
	if o.Interval < time.Second {
		return fmt.Errorf("monitor.interval: must be at least 1s, got %s", o.Interval)
	}
	if o.Timeout <= 0 || o.Timeout > o.Interval {
		return fmt.Errorf("monitor.timeout: must be positive and at most monitor.interval (%s), got %s", o.Interval, o.Timeout)
	}
	return nil
}

// newMonitor builds the daemon's monitor: it scrapes the jobs of d's store
// that run and should, raises its firings as alerts through n (nil: they
// are only logged) and, if o.Actions, carries out rule actions through d's
// job operations. A rule file with errors is an error.
func (d *Daemon) newMonitor(o MonitorOptions, n *notify.Notifier, reg prometheus.Registerer) (*monitor.Monitor, error) {
	opts := monitor.DefaultOptions()
	opts.Rules = []string{o.Rules}
	opts.Interval, opts.Timeout = o.Interval, o.Timeout
	log := d.log.WithField("component", "monitor")
	deps := monitor.Deps{
		Targets:    monitorTargets(d.store, d.master, o.Timeout),
		Sink:       notifySink{n: n, log: log},
		Log:        d.log,
		Registerer: reg,
	}
	if o.Actions {
		deps.Actor = monitorActor{d: d}
	}
	if y, ok := d.deployer.(yarnFacts); ok {
		deps.Facts = monitorFacts(d.store, y)
	}
	m, err := monitor.New(opts, deps)
	if err != nil {
		return nil, fmt.Errorf("monitor.rules: %w", err)
	}
	return m, nil
}

// monitorTargets lists the jobs to scrape: RUNNING, wanted running, not
// about to be restarted, with a job master endpoint. Jobs being stopped or
// cancelled are left out, so that their job master reporting no running job
// is not taken for a failure. A job on YARN spread over worker containers
// adds its running workers that registered an endpoint, which its job
// master lists (master; one request per such job, within timeout).
func monitorTargets(store *Store, master *jobmaster.Client, timeout time.Duration) monitor.TargetsFunc {
	return func(ctx context.Context) ([]monitor.Target, error) {
		jobs, err := store.Jobs(ctx, []string{StateRunning})
		if err != nil {
			return nil, err
		}
		out := make([]monitor.Target, 0, len(jobs))
		for _, j := range jobs {
			if j.DesiredState != DesiredRunning || j.RestartRequested {
				continue
			}
			d, err := store.ActiveDeployment(ctx, j.ID)
			if err != nil {
				return nil, err
			}
			if d == nil || d.Endpoint == "" {
				continue
			}
			out = append(out, monitor.Target{JobID: j.ID, JobName: j.Name, Endpoint: d.Endpoint})
			if d.Deployer != yarndeploy.Name || master == nil {
				continue
			}
			wctx, cancel := context.WithTimeout(ctx, timeout)
			workers, err := master.Workers(wctx, d.Endpoint, j.ID)
			cancel()
			if err != nil {
				continue // the job master's own scrape reports it unreachable
			}
			for _, w := range workers {
				if w.State == "RUNNING" && w.URL != "" {
					out = append(out, monitor.Target{JobID: j.ID, JobName: j.Name, Endpoint: w.URL, WorkerID: w.ContainerID, Worker: true})
				}
			}
		}
		return out, nil
	}
}

// Labels the monitor's alerts carry besides job, alertname and level.
const (
	labelScope      = "scope"
	labelWorker     = "worker"
	labelMonitorKey = "monitor_key" // the firing key: one alert per firing
)

// notifySink raises the monitor's firings as alerts of the notifier and
// resolves them by their firing key.
type notifySink struct {
	n   *notify.Notifier
	log *logrus.Entry
}

var _ monitor.Sink = notifySink{}

// notifyTimeout bounds one call into the notifier (a database write).
const notifyTimeout = 5 * time.Second

func (s notifySink) Fire(ctx context.Context, f monitor.Firing) {
	log := s.log.WithFields(logrus.Fields{"rule": f.Rule, "job": f.JobID, "level": f.Level})
	if s.n == nil {
		log.Warn("rule fired (no notifier)")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	if err := s.n.Raise(ctx, firingAlert(f)); err != nil {
		log.WithError(err).Warn("raise alert")
	}
}

func (s notifySink) Resolve(ctx context.Context, r monitor.Resolved) {
	if s.n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	if _, err := s.n.ResolveWhere(ctx, alert.Labels{labelMonitorKey: r.Key}, r.At); err != nil {
		s.log.WithError(err).WithFields(logrus.Fields{"rule": r.Rule, "job": r.JobID}).Warn("resolve alert")
	}
}

// monitorFirings turns the firing alerts the notifier kept across a
// restart back into the monitor's firings: those with a monitor_key label,
// which only the monitor's alerts have.
func monitorFirings(alerts []alert.Alert) []monitor.Firing {
	var out []monitor.Firing
	for _, a := range alerts {
		key := a.Labels[labelMonitorKey]
		if key == "" {
			continue
		}
		out = append(out, monitor.Firing{
			Key: key, Rule: a.Labels[alert.LabelEvent], JobID: a.Job(), TMID: a.Labels[labelWorker],
			Level: rules.Level(a.Labels[alert.LabelLevel]), Scope: rules.Scope(a.Labels[labelScope]), Start: a.StartsAt,
		})
	}
	return out
}

// firingAlert is the alert of a firing: its identity the firing key, its
// annotations what explains it.
func firingAlert(f monitor.Firing) alert.Alert {
	extra := alert.Labels{labelScope: string(f.Scope), labelMonitorKey: f.Key}
	if f.TMID != "" {
		extra[labelWorker] = f.TMID
	}
	a := alert.New(f.JobID, f.Rule, alert.Level(f.Level), extra)
	a.StartsAt = f.Start
	job := f.JobID
	if f.JobName != "" {
		job = f.JobName + " (" + f.JobID + ")"
	}
	a.Annotations["summary"] = f.Rule + " on job " + job
	if f.Description != "" {
		a.Annotations["description"] = truncate(f.Description, alert.MaxValueBytes)
	}
	a.Annotations["rule"] = f.RuleLocation
	if len(f.Samples) > 0 {
		last := f.Samples[len(f.Samples)-1]
		a.Annotations["value"] = strconv.FormatFloat(last.Value, 'g', 6, 64)
		var b strings.Builder
		for i, s := range f.Samples {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s %s %s=%.6g", s.Stage, s.Time.UTC().Format(time.TimeOnly), s.MetricsName, s.Value)
		}
		a.Annotations["samples"] = truncate(b.String(), alert.MaxValueBytes)
	}
	if len(f.Fields) > 0 {
		if b, err := json.Marshal(f.Fields); err == nil {
			a.Annotations["fields"] = truncate(string(b), alert.MaxValueBytes)
		}
	}
	if f.Action != nil {
		act := string(f.Action.Type)
		if f.Action.DryRun {
			act += " (recommended, not taken)"
		}
		a.Annotations["action"] = act
	}
	return a
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// errActionUnsupported is returned for actions the platform cannot take.
var errActionUnsupported = errors.New("supportlayer: action not supported")

// monitorActor carries out rule actions with the daemon's job operations,
// recording an event on the job for each.
type monitorActor struct{ d *Daemon }

var _ monitor.Actor = monitorActor{}

func (a monitorActor) Act(ctx context.Context, req monitor.ActionRequest) error {
	d, t := a.d, req.Target
	event := func(typ, msg string) {
		// The firing key is the alert's monitor_key label: the event leads
		// to the alert, and the alert holds the matched samples.
		ev := Event{JobID: t.JobID, Time: d.now(), Level: "INFO", Type: typ,
			Message: msg + " (rule " + req.Rule + ", alert monitor_key=" + req.FiringKey + ")"}
		if dep, err := d.store.ActiveDeployment(ctx, t.JobID); err == nil && dep != nil {
			ev.DeploymentID = dep.ID
		}
		if err := d.store.AddEvent(ctx, ev); err != nil {
			d.log.WithError(err).WithField("job", t.JobID).Warn("record monitor action event")
		}
	}
	switch req.Action.Type {
	case rules.ActionMigrateToPebble, rules.ActionMigrateToHeap:
		target := "pebble"
		if req.Action.Type == rules.ActionMigrateToHeap {
			target = "heap"
		}
		kgs, _ := req.Action.Params["keyGroups"].(string)
		if kgs == "" {
			kgs = "all"
		}
		if _, err := d.master.Migrate(ctx, t.Endpoint, t.JobID, target, kgs); err != nil {
			return err
		}
		event("STATE_MIGRATION", fmt.Sprintf("moving key groups %s to %s", kgs, target))
		return nil
	case rules.ActionSavepoint:
		dir, _ := req.Action.Params["targetDirectory"].(string)
		trigger, err := d.master.TriggerSavepoint(ctx, t.Endpoint, t.JobID, dir)
		if err != nil {
			return err
		}
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			res, err := d.master.SavepointStatus(ctx, t.Endpoint, t.JobID, trigger)
			switch {
			case err != nil:
				return err
			case res.Done && res.Failure != "":
				return fmt.Errorf("savepoint failed: %s", res.Failure)
			case res.Done:
				event("SAVEPOINT", "savepoint written to "+res.Location)
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
	case rules.ActionRestart:
		return d.requestRestart(ctx, t.JobID, "restart from the latest checkpoint requested by rule "+req.Rule)
	}
	return fmt.Errorf("%w: %s", errActionUnsupported, req.Action.Type)
}

// requestRestart asks the watcher to restart a running job from its latest
// checkpoint, as POST /api/v1/jobs/{id}/restart does.
func (d *Daemon) requestRestart(ctx context.Context, jobID, msg string) error {
	unlock := d.watcher.locks.lock(jobID)
	j, err := d.store.Job(ctx, jobID)
	if err == nil {
		if j.State != StateRunning || j.DesiredState != DesiredRunning {
			err = fmt.Errorf("%w: job %s is %s", ErrConflict, j.ID, strings.ToLower(j.State))
		} else {
			j.RestartRequested = true
			err = d.store.SaveJob(ctx, &j, Event{Time: d.now(), Level: "INFO", Type: "RESTART_REQUESTED", Message: msg})
		}
	}
	unlock()
	if err != nil {
		return err
	}
	d.watcher.Kick(jobID)
	return nil
}

// monitorRoutes serves the monitor's endpoints on mux (under the API's
// authentication):
//
//	GET  /api/v1/rules                the rules and the status of the last load
//	POST /api/v1/rules/reload         load the rule files again; 400 with every problem (file, line, field) keeps the previous rules
//	GET  /api/v1/monitor/alerts       the firings not yet resolved
//	GET  /api/v1/monitor/series?job=ID                          a job's series
//	GET  /api/v1/monitor/history?job=ID&series=S&since=10m      a series' recent samples (since: a duration back or an RFC 3339 time)
func monitorRoutes(mux *http.ServeMux, m *monitor.Monitor, now func() time.Time) {
	mux.HandleFunc("GET /api/v1/rules", func(w http.ResponseWriter, r *http.Request) {
		type ruleView struct {
			Name     string        `json:"name"`
			Level    rules.Level   `json:"level"`
			Scope    rules.Scope   `json:"scope"`
			Location string        `json:"location"`
			Metrics  []string      `json:"metrics,omitempty"`
			Within   string        `json:"within,omitempty"`
			Action   *rules.Action `json:"action,omitempty"`
			Disabled bool          `json:"disabled,omitempty"`
		}
		views := []ruleView{}
		for _, ru := range m.Rules().Rules {
			v := ruleView{Name: ru.Name, Level: ru.Level, Scope: ru.Scope, Location: ru.Location(), Metrics: ru.Metrics,
				Action: ru.Action, Disabled: ru.Disabled}
			if ru.Within > 0 {
				v.Within = ru.Within.String()
			}
			views = append(views, v)
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": m.Status(), "rules": views})
	})
	mux.HandleFunc("POST /api/v1/rules/reload", func(w http.ResponseWriter, r *http.Request) {
		st, err := m.Reload(r.Context())
		if err != nil {
			type problem struct {
				File    string `json:"file"`
				Line    int    `json:"line,omitempty"`
				Field   string `json:"field,omitempty"`
				Message string `json:"message"`
			}
			var ps []problem
			for _, e := range rules.Errors(err) {
				ps = append(ps, problem{File: e.File, Line: e.Line, Field: e.Field, Message: e.Msg})
			}
			body := map[string]any{"code": "invalid_rules", "message": err.Error(), "problems": ps}
			if len(ps) > 0 {
				body["field"], body["line"] = ps[0].Field, ps[0].Line
			}
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": body})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": st})
	})
	mux.HandleFunc("GET /api/v1/monitor/alerts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"firings": m.Active()})
	})
	mux.HandleFunc("GET /api/v1/monitor/series", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"series": m.Series(r.URL.Query().Get("job"))})
	})
	mux.HandleFunc("GET /api/v1/monitor/history", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		since := time.Time{}
		if s := q.Get("since"); s != "" {
			if d, err := time.ParseDuration(s); err == nil {
				since = now().Add(-d)
			} else if t, err := time.Parse(time.RFC3339, s); err == nil {
				since = t
			} else {
				writeError(w, http.StatusBadRequest, "bad_parameter", "since: must be a duration like 10m or an RFC 3339 time")
				return
			}
		}
		if _, err := monitor.ParseSeriesKey(q.Get("series")); err != nil {
			writeError(w, http.StatusBadRequest, "bad_parameter", "series: "+err.Error())
			return
		}
		samples := m.History(q.Get("job"), q.Get("series"), since)
		if samples == nil {
			samples = []monitor.Sample{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"samples": samples})
	})
}

// wireMonitor is what Daemon needs to run a monitor, for the lead to hook
// in (the lines are not in daemon.go yet):
//
//	Options:        Monitor MonitorOptions `yaml:"monitor"`   (default DefaultMonitorOptions(); Validate calls o.Monitor.Validate())
//	Daemon:         monitor *monitor.Monitor
//	newDaemon:      after the notifier and the watcher exist, and reg:
//	                    if d.monitor, err = wireMonitor(d, opts.Monitor, d.notifier, reg); err != nil { …close and return }
//	api.handler:    if a.d.monitor != nil { monitorRoutes(api, a.d.monitor, a.d.now) }
//	Start:          after the watcher: if d.monitor != nil { d.monitor.Start() }
//	Stop:           before the store closes: if d.monitor != nil { err = errors.Join(err, d.monitor.Stop(ctx)) }
func wireMonitor(d *Daemon, o MonitorOptions, n *notify.Notifier, reg prometheus.Registerer) (*monitor.Monitor, error) {
	if o.Rules == "" {
		return nil, nil
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return d.newMonitor(o, n, reg)
}

// yarnFacts is the YARN deployer's view of an application.
type yarnFacts interface {
	Facts(ctx context.Context, appID string) (yarndeploy.AppFacts, error)
}

// monitorFacts reports YARN's facts about the monitored jobs as metric
// events: AM attempts so far and the application's share of its queue.
func monitorFacts(store *Store, y yarnFacts) monitor.FactsFunc {
	return func(ctx context.Context, targets []monitor.Target) ([]monitor.Fact, error) {
		var out []monitor.Fact
		var errs []error
		for _, t := range targets {
			dep, err := store.ActiveDeployment(ctx, t.JobID)
			if err != nil || dep == nil || dep.ApplicationID == "" {
				continue
			}
			f, err := y.Facts(ctx, dep.ApplicationID)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", dep.ApplicationID, err))
				continue
			}
			out = append(out,
				monitor.Fact{JobID: t.JobID, Name: monitor.MetricYARNAMAttempts, Value: float64(f.Attempts)},
				monitor.Fact{JobID: t.JobID, Name: monitor.MetricYARNQueueUsed, Key: f.Queue, Value: f.QueueUsedRatio})
		}
		return out, errors.Join(errs...)
	}
}
