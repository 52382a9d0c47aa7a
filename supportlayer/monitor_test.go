package supportlayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidewatch/tidewatch/monitor"
	"github.com/tidewatch/tidewatch/monitor/rules"
	"github.com/tidewatch/tidewatch/notify"
	"github.com/tidewatch/tidewatch/notify/alert"
	yarndeploy "github.com/tidewatch/tidewatch/supportlayer/deploy/yarn"
	"github.com/tidewatch/tidewatch/supportlayer/jobmaster"
)

func TestMonitorTargetsAndActions(t *testing.T) {
	f := newFakeCluster(t)
	td := startTestDaemon(t, testOptions(t), f)
	j := submit(t, td, goodSpec)
	td.waitFor(j.ID, "RUNNING", stateIs(StateRunning))

	ctx := context.Background()
	targets, err := monitorTargets(td.store, nil, time.Second)(ctx)
	if err != nil || len(targets) != 1 || targets[0].JobID != j.ID || targets[0].JobName != "clicks" || targets[0].Endpoint != f.srv.URL {
		t.Fatalf("targets %+v, %v", targets, err)
	}

	act := monitorActor{d: td.Daemon}
	req := monitor.ActionRequest{Target: targets[0], Rule: "SOME_RULE", FiringKey: "k1", Action: rules.Action{Type: rules.ActionSavepoint}}
	if err := act.Act(ctx, req); err != nil {
		t.Fatalf("savepoint: %v", err)
	}
	req.Action.Type = rules.ActionRescale
	if err := act.Act(ctx, req); !errors.Is(err, errActionUnsupported) {
		t.Errorf("rescale: %v", err)
	}
	req.Action.Type = rules.ActionRestart
	if err := act.Act(ctx, req); err != nil {
		t.Fatalf("restart: %v", err)
	}
	evs, err := td.store.Events(ctx, j.ID, 50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, e := range evs {
		seen[e.Type] = e.Message
	}
	if !strings.Contains(seen["SAVEPOINT"], "/savepoints/manual-1 (rule SOME_RULE, alert monitor_key=k1)") {
		t.Errorf("savepoint event %q", seen["SAVEPOINT"])
	}
	if !strings.Contains(seen["RESTART_REQUESTED"], "SOME_RULE") {
		t.Errorf("restart event %q", seen["RESTART_REQUESTED"])
	}

	// a job being restarted is not scraped
	jj, _ := td.store.Job(ctx, j.ID)
	if jj.RestartRequested {
		if targets, _ := monitorTargets(td.store, nil, time.Second)(ctx); len(targets) != 0 {
			t.Errorf("targets of a job being restarted: %+v", targets)
		}
	}
}

func TestFiringAlert(t *testing.T) {
	at := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	f := monitor.Firing{Key: "R/j1/tm-1/", Rule: "TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH", Level: rules.LevelFatal,
		Scope: rules.ScopeTaskManager, Description: "heap", RuleLocation: "configs/rules/taskmanager.yaml:5",
		JobID: "j1", JobName: "clicks", TMID: "tm-1", Start: at, End: at.Add(45 * time.Second), At: at.Add(45 * time.Second),
		Fields:  map[string]any{"peak": 0.91},
		Samples: []monitor.MatchedSample{{Stage: "e1", Time: at, MetricsName: "heap_load", Value: 0.9}, {Stage: "e1", Time: at.Add(15 * time.Second), MetricsName: "heap_load", Value: 0.91}},
		Action:  &rules.Action{Type: rules.ActionMigrateToPebble, DryRun: true}}
	a := firingAlert(f)
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	want := alert.Labels{"job": "j1", "alertname": f.Rule, "level": "FATAL", "scope": "taskmanager", "worker": "tm-1", "monitor_key": f.Key}
	if a.Labels.String() != want.String() {
		t.Errorf("labels %v, want %v", a.Labels, want)
	}
	if a.Annotations["value"] != "0.91" || a.Annotations["action"] != "migrate-to-pebble (recommended, not taken)" ||
		a.Annotations["summary"] != f.Rule+" on job clicks (j1)" || !strings.Contains(a.Annotations["samples"], "e1 10:00:15 heap_load=0.91") ||
		!a.StartsAt.Equal(at) {
		t.Errorf("alert %+v", a)
	}
}

func TestMonitorRoutes(t *testing.T) {
	f := newFakeCluster(t)
	td := startTestDaemon(t, testOptions(t), f)
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	good := "rules:\n  - name: CPU\n    level: INFO\n    scope: jobmanager\n    metrics: [cpu_load]\n    within: 1m\n    pattern:\n      - name: e1\n        where: metricsValue > 0.9\n"
	os.WriteFile(file, []byte(good), 0o644)
	o := DefaultMonitorOptions()
	o.Rules, o.Actions = file, false
	m, err := wireMonitor(td.Daemon, o, nil, prometheus.NewRegistry())
	if err != nil || m == nil {
		t.Fatalf("monitor %v, %v", m, err)
	}
	if none, err := wireMonitor(td.Daemon, DefaultMonitorOptions(), nil, prometheus.NewRegistry()); none != nil || err != nil {
		t.Errorf("without rules: %v, %v", none, err)
	}
	mux := http.NewServeMux()
	monitorRoutes(mux, m, time.Now)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, path string) (int, map[string]any) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, body := call("GET", "/api/v1/rules"); code != 200 || len(body["rules"].([]any)) != 1 {
		t.Errorf("GET rules: %d %v", code, body)
	}
	os.WriteFile(file, []byte(strings.Replace(good, "level: INFO", "level: LOUD", 1)), 0o644)
	code, body := call("POST", "/api/v1/rules/reload")
	e, _ := body["error"].(map[string]any)
	if code != 400 || e["code"] != "invalid_rules" || e["line"] != 3.0 || e["field"] != "rules[0].level" {
		t.Errorf("reload of a bad file: %d %v", code, body)
	}
	os.WriteFile(file, []byte(good), 0o644)
	if code, body := call("POST", "/api/v1/rules/reload"); code != 200 {
		t.Errorf("reload: %d %v", code, body)
	}
	if code, _ := call("GET", "/api/v1/monitor/history?job=x&series=bad%20name"); code != 400 {
		t.Errorf("history of a bad series: %d", code)
	}
	if code, body := call("GET", "/api/v1/monitor/history?job=x&series=heap_load&since=10m"); code != 200 || len(body["samples"].([]any)) != 0 {
		t.Errorf("history: %d %v", code, body)
	}
	if err := (MonitorOptions{Rules: "x", Interval: time.Second, Timeout: 2 * time.Second}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "monitor.timeout") {
		t.Errorf("validate: %v", err)
	}
}

type fakeYARNFacts map[string]yarndeploy.AppFacts

func (f fakeYARNFacts) Facts(_ context.Context, appID string) (yarndeploy.AppFacts, error) {
	a, ok := f[appID]
	if !ok {
		return a, errors.New("no such application")
	}
	return a, nil
}

func TestMonitorYARNFacts(t *testing.T) {
	f := newFakeCluster(t)
	td := startTestDaemon(t, testOptions(t), f)
	j := submit(t, td, goodSpec)
	td.waitFor(j.ID, "RUNNING", stateIs(StateRunning))
	ctx := context.Background()
	dep, err := td.store.ActiveDeployment(ctx, j.ID)
	if err != nil || dep == nil {
		t.Fatal(dep, err)
	}
	dep.ApplicationID = "application_1795472519589_0007"
	if err := td.store.SaveDeployment(ctx, dep); err != nil {
		t.Fatal(err)
	}
	facts := monitorFacts(td.store, fakeYARNFacts{dep.ApplicationID: {Attempts: 2, Queue: "etl", QueueUsedRatio: 0.4}})
	got, err := facts(ctx, []monitor.Target{{JobID: j.ID}})
	if err != nil || len(got) != 2 {
		t.Fatalf("facts %+v, %v", got, err)
	}
	if got[0].Name != monitor.MetricYARNAMAttempts || got[0].Value != 2 || got[1].Name != monitor.MetricYARNQueueUsed || got[1].Key != "etl" || got[1].Value != 0.4 {
		t.Errorf("facts %+v", got)
	}
}

// A job on YARN spread over worker containers adds its running, registered
// workers as targets of their own.
func TestMonitorTargetsIncludeYARNWorkers(t *testing.T) {
	ctx := context.Background()
	store, err := OpenStore("sqlite", filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const jobID = "0123456789abcdef0123456789abcdef"
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jobs/"+jobID+"/workers" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"workers": [
			{"index": 1, "state": "RUNNING", "containerId": "container_1_0001_01_000002", "url": "http://node2:40001"},
			{"index": 2, "state": "RUNNING", "containerId": "container_1_0001_01_000003"},
			{"index": 3, "state": "REQUESTED"}]}`)
	}))
	defer am.Close()
	j := &Job{ID: jobID, Name: "spread", DesiredState: DesiredRunning, State: StateRunning}
	if err := store.CreateJob(ctx, j, Event{Type: "SUBMITTED"}); err != nil {
		t.Fatal(err)
	}
	d := &Deployment{JobID: jobID, Attempt: 1, Deployer: yarndeploy.Name, Endpoint: am.URL, Active: true, State: "RUNNING"}
	if err := store.SaveDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	targets, err := monitorTargets(store, jobmaster.New(time.Second), time.Second)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []monitor.Target{
		{JobID: jobID, JobName: "spread", Endpoint: am.URL},
		{JobID: jobID, JobName: "spread", Endpoint: "http://node2:40001", WorkerID: "container_1_0001_01_000002", Worker: true},
	}
	if fmt.Sprint(targets) != fmt.Sprint(want) {
		t.Errorf("targets\n%+v\nwant\n%+v", targets, want)
	}
}

// TestDaemonRestartAdoptsMonitorAlerts: the monitor's alerts that were
// firing when the daemon stopped are taken over by the next daemon's
// monitor (the one whose rule still exists stays firing, to resolve when
// its condition has been gone for the rule's resolveAfter); one whose rule
// was removed meanwhile resolves at start.
func TestDaemonRestartAdoptsMonitorAlerts(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	f := newFakeCluster(t)
	o := testOptions(t)
	cfg, err := notify.ParseConfig([]byte(`
route: {receiver: ops, group_wait: 0s}
receivers:
  - name: ops
    channels: [{webhook: {url: "` + hook.URL + `"}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	o.Notify = &cfg
	file := filepath.Join(t.TempDir(), "rules.yaml")
	rulesText := "rules:\n  - name: CPU\n    level: INFO\n    scope: jobmanager\n    metrics: [cpu_load]\n    within: 1m\n    pattern:\n      - name: e1\n        where: metricsValue > 0.9\n"
	if err := os.WriteFile(file, []byte(rulesText), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Monitor.Rules = file
	const job = "0123456789abcdef0123456789abcdef"
	td := startTestDaemon(t, o, f)
	for _, rule := range []string{"CPU", "DISK_FULL"} {
		a := alert.New(job, rule, alert.LevelInfo, alert.Labels{labelScope: "jobmanager", labelMonitorKey: rule + "/" + job + "/"})
		if err := td.Notifier().Raise(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := td.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	td2 := startTestDaemon(t, o, f)
	firing := td2.Notifier().Firing()
	if len(firing) != 1 || firing[0].Labels[alert.LabelEvent] != "CPU" {
		t.Fatalf("firing after the restart: %v", firing)
	}
	active := td2.monitor.Active()
	if len(active) != 1 || active[0].Key != "CPU/"+job+"/" || active[0].JobID != job {
		t.Fatalf("the monitor's active firings: %+v", active)
	}
}
