package supportlayer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/supportlayer/deploy"
)

// fakeCluster is a deployer whose "processes" are entries in a map, and a job
// master (httptest) that serves Flink's /jobs/overview, stop and cancel for them.
type fakeCluster struct {
	mu         sync.Mutex
	procs      map[int]*fakeProc
	nextPID    int
	deploys    []deploy.Request
	onExit     func(string)
	srv        *httptest.Server
	failDeploy bool
}

type fakeProc struct {
	jobID     string
	alive     bool
	state     string // job master state while alive
	final     string
	savepoint string
}

func newFakeCluster(t *testing.T) *fakeCluster {
	f := &fakeCluster{procs: map[int]*fakeProc{}, nextPID: 1000}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jobs/overview", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var jobs []map[string]any
		for _, p := range f.procs {
			if p.alive {
				jobs = append(jobs, map[string]any{"jid": p.jobID, "name": "x", "state": p.state})
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"jobs": jobs})
	})
	end := func(jobID, final, savepoint string) {
		f.mu.Lock()
		for _, p := range f.procs {
			if p.jobID == jobID && p.alive {
				p.alive, p.final, p.savepoint = false, final, savepoint
			}
		}
		f.mu.Unlock()
		f.onExit(jobID)
	}
	mux.HandleFunc("POST /jobs/{id}/stop", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		io.WriteString(w, `{"request-id":"00000000000000000000000000000001"}`)
		go end(r.PathValue("id"), "FINISHED", "/savepoints/sp-1")
	})
	mux.HandleFunc("GET /jobs/{id}/yarn-cancel", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		io.WriteString(w, `{}`)
		go end(r.PathValue("id"), "CANCELED", "")
	})
	mux.HandleFunc("POST /jobs/{id}/savepoints", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		io.WriteString(w, `{"request-id":"00000000000000000000000000000002"}`)
	})
	mux.HandleFunc("GET /jobs/{id}/savepoints/{tid}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":{"id":"COMPLETED"},"operation":{"location":"/savepoints/manual-1"}}`)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCluster) factory(_ Options, _ *logrus.Entry, onExit func(string)) (deploy.Deployer, error) {
	f.onExit = onExit
	return f, nil
}

func (f *fakeCluster) Name() string { return "fake" }

func (f *fakeCluster) Deploy(_ context.Context, req deploy.Request) (deploy.Handle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failDeploy {
		return deploy.Handle{}, fmt.Errorf("fake: no capacity")
	}
	f.nextPID++
	f.procs[f.nextPID] = &fakeProc{jobID: req.JobID, alive: true, state: "RUNNING"}
	f.deploys = append(f.deploys, req)
	return deploy.Handle{Deployer: "fake", PID: f.nextPID, WorkDir: "/fake", LogPath: "/fake/log"}, nil
}

func (f *fakeCluster) Observe(_ context.Context, h deploy.Handle) (deploy.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.procs[h.PID]
	if !ok {
		return deploy.Status{}, deploy.ErrUnknownHandle
	}
	if p.alive {
		return deploy.Status{Alive: true, Endpoint: f.srv.URL}, nil
	}
	return deploy.Status{FinalState: p.final, Savepoint: p.savepoint, Diagnostics: "fake exit"}, nil
}

func (f *fakeCluster) Kill(_ context.Context, h deploy.Handle) error {
	f.mu.Lock()
	p := f.procs[h.PID]
	wasAlive := p != nil && p.alive
	if p != nil {
		p.alive = false
	}
	f.mu.Unlock()
	if wasAlive {
		f.onExit(p.jobID)
	}
	return nil
}

func (f *fakeCluster) Logs(context.Context, deploy.Handle, int64) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("fake log line\n")), nil
}

func (f *fakeCluster) alivePIDs(jobID string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var pids []int
	for pid, p := range f.procs {
		if p.jobID == jobID && p.alive {
			pids = append(pids, pid)
		}
	}
	return pids
}

func testOptions(t *testing.T) Options {
	o := DefaultOptions()
	o.Listen = "127.0.0.1:0"
	o.DataDir = t.TempDir()
	o.Runtime.Binary = "/bin/true"
	o.Watch.Interval = 200 * time.Millisecond
	o.Restart = RestartPolicy{Strategy: "fixed", Delay: 0, MaxDelay: time.Second, MaxRestarts: 2, Window: time.Hour}
	return o
}

func testLogger() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

type testDaemon struct {
	*Daemon
	t    *testing.T
	base string
}

func startTestDaemon(t *testing.T, o Options, f *fakeCluster) *testDaemon {
	t.Helper()
	d, err := newDaemon(o, testLogger(), f.factory)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return &testDaemon{Daemon: d, t: t, base: "http://" + d.Addr()}
}

func (td *testDaemon) call(method, path, body string, header ...string) (int, []byte) {
	td.t.Helper()
	req, _ := http.NewRequest(method, td.base+path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		td.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (td *testDaemon) job(id string) JobView {
	td.t.Helper()
	code, b := td.call("GET", "/api/v1/jobs/"+id, "")
	if code != 200 {
		td.t.Fatalf("GET job: %d %s", code, b)
	}
	var j JobView
	if err := json.Unmarshal(b, &j); err != nil {
		td.t.Fatal(err)
	}
	return j
}

// waitState polls the job until cond holds, or fails after a deadline.
func (td *testDaemon) waitFor(id, what string, cond func(JobView) bool) JobView {
	td.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j := td.job(id)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			td.t.Fatalf("job %s: waited for %s; now %s (%s), restarts %d", id, what, j.State, j.Message, j.Restarts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stateIs(s string) func(JobView) bool { return func(j JobView) bool { return j.State == s } }

const goodSpec = `name: clicks
source:
  type: datagen
  datagen: {rate: 100, keys: 10}
keyBy: key
window: {type: tumbling, size: 5s}
aggregate: count
sink:
  type: file
  file: {path: out.jsonl}
`

func submit(t *testing.T, td *testDaemon, spec string) JobView {
	t.Helper()
	code, b := td.call("POST", "/api/v1/jobs", spec, "Content-Type", "application/yaml")
	if code != 201 {
		t.Fatalf("submit: %d %s", code, b)
	}
	var j JobView
	json.Unmarshal(b, &j)
	return j
}

func TestDaemonLifecycle(t *testing.T) {
	f := newFakeCluster(t)
	td := startTestDaemon(t, testOptions(t), f)

	j := submit(t, td, goodSpec)
	if len(j.ID) != 32 || j.State != StateSubmitted {
		t.Fatalf("submitted job = %+v", j)
	}
	j = td.waitFor(j.ID, "RUNNING", stateIs(StateRunning))
	if j.Deployment == nil || j.Deployment.PID == 0 || j.Deployment.Attempt != 1 || j.Deployment.Reason != ReasonSubmit {
		t.Fatalf("deployment = %+v", j.Deployment)
	}
	if td.deployer.(*fakeCluster).deploys[0].CheckpointDir != filepath.Join(td.opts.Checkpoints.Dir, j.ID) {
		t.Errorf("checkpoint dir = %s", f.deploys[0].CheckpointDir)
	}

	// The process dies: the watcher restarts it, counting the restart.
	f.Kill(context.Background(), deploy.Handle{PID: j.Deployment.PID})
	j = td.waitFor(j.ID, "restart", func(j JobView) bool { return j.State == StateRunning && j.Restarts == 1 })
	if j.Deployment.Attempt != 2 || j.Deployment.Reason != ReasonRestart || j.Deployment.Restore != "latest" {
		t.Fatalf("deployment after restart = %+v", j.Deployment)
	}

	// A user restart does not count against the policy.
	if code, b := td.call("POST", "/api/v1/jobs/"+j.ID[:8]+"/restart", ""); code != 202 {
		t.Fatalf("restart: %d %s", code, b)
	}
	j = td.waitFor(j.ID, "manual restart", func(j JobView) bool {
		return j.State == StateRunning && j.Deployment != nil && j.Deployment.Attempt == 3
	})
	if j.Restarts != 1 || j.Deployment.Reason != ReasonManual {
		t.Fatalf("after manual restart: restarts %d, deployment %+v", j.Restarts, j.Deployment)
	}

	// Savepoint through the daemon.
	code, b := td.call("POST", "/api/v1/jobs/"+j.ID+"/savepoints", "")
	if code != 200 || !strings.Contains(string(b), "/savepoints/manual-1") {
		t.Fatalf("savepoint: %d %s", code, b)
	}

	// Graceful stop.
	if code, b := td.call("POST", "/api/v1/jobs/"+j.ID+"/stop", ""); code != 202 {
		t.Fatalf("stop: %d %s", code, b)
	}
	j = td.waitFor(j.ID, "STOPPED", stateIs(StateStopped))
	if !strings.Contains(j.Message, "/savepoints/sp-1") || j.Deployment.Active {
		t.Fatalf("stopped job = %+v, deployment %+v", j, j.Deployment)
	}
	if pids := f.alivePIDs(j.ID); len(pids) != 0 {
		t.Fatalf("processes still alive: %v", pids)
	}
	// Stopping an ended job is a conflict.
	if code, _ := td.call("POST", "/api/v1/jobs/"+j.ID+"/stop", ""); code != 409 {
		t.Errorf("stop of a stopped job: %d, want 409", code)
	}

	// Restarting a stopped job continues from its final savepoint.
	if code, b := td.call("POST", "/api/v1/jobs/"+j.ID+"/restart", ""); code != 202 {
		t.Fatalf("restart stopped: %d %s", code, b)
	}
	j = td.waitFor(j.ID, "RUNNING again", stateIs(StateRunning))
	if j.Deployment.Restore != "/savepoints/sp-1" {
		t.Errorf("restored from %q, want the stop savepoint", j.Deployment.Restore)
	}

	// Cancel.
	td.call("POST", "/api/v1/jobs/"+j.ID+"/cancel", "")
	td.waitFor(j.ID, "CANCELED", stateIs(StateCanceled))

	// Deployments and events tell the story.
	code, b = td.call("GET", "/api/v1/jobs/"+j.ID+"/deployments", "")
	var ds struct{ Deployments []DeploymentView }
	json.Unmarshal(b, &ds)
	if code != 200 || len(ds.Deployments) != 4 || ds.Deployments[0].Attempt != 4 {
		t.Fatalf("deployments: %d %s", code, b)
	}
	code, b = td.call("GET", "/api/v1/jobs/"+j.ID+"/events?limit=100", "")
	for _, typ := range []string{"JOB_SUBMITTED", "JOB_DEPLOYED", "JOB_RUNNING", "JOB_RESTARTING", "RESTART_REQUESTED", "SAVEPOINT", "JOB_STOPPED", "JOB_CANCELED"} {
		if !strings.Contains(string(b), `"`+typ+`"`) {
			t.Errorf("no %s event in %s", typ, b)
		}
	}
	if code, b := td.call("GET", "/api/v1/jobs/"+j.ID+"/logs", ""); code != 200 || string(b) != "fake log line\n" {
		t.Errorf("logs: %d %q", code, b)
	}
}

func TestRestartLimitFailsJob(t *testing.T) {
	f := newFakeCluster(t)
	td := startTestDaemon(t, testOptions(t), f) // at most 2 restarts
	j := submit(t, td, goodSpec)
	for i := 0; i < 3; i++ {
		j = td.waitFor(j.ID, fmt.Sprintf("RUNNING %d", i), func(v JobView) bool {
			return v.State == StateRunning && v.Deployment != nil && v.Deployment.Attempt == i+1
		})
		f.Kill(context.Background(), deploy.Handle{PID: j.Deployment.PID})
	}
	j = td.waitFor(j.ID, "FAILED", stateIs(StateFailed))
	if j.Restarts != 2 || !strings.Contains(j.Message, "restart limit reached") {
		t.Fatalf("failed job = %+v", j)
	}
	_, b := td.call("GET", "/api/v1/jobs/"+j.ID+"/events", "")
	if !strings.Contains(string(b), `"JOB_FAILED"`) {
		t.Errorf("no JOB_FAILED event: %s", b)
	}
}

func TestDeployFailureUsesThePolicy(t *testing.T) {
	f := newFakeCluster(t)
	f.failDeploy = true
	td := startTestDaemon(t, testOptions(t), f)
	j := submit(t, td, goodSpec)
	j = td.waitFor(j.ID, "FAILED", stateIs(StateFailed))
	_, b := td.call("GET", "/api/v1/jobs/"+j.ID+"/events", "")
	if !strings.Contains(string(b), "no capacity") {
		t.Errorf("the deploy error is not in the events: %s", b)
	}
}

func TestDaemonRestartAdoptsRunningJobs(t *testing.T) {
	f := newFakeCluster(t)
	o := testOptions(t)
	td := startTestDaemon(t, o, f)
	j := submit(t, td, goodSpec)
	j = td.waitFor(j.ID, "RUNNING", stateIs(StateRunning))
	if err := td.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	td2 := startTestDaemon(t, o, f)
	deadline := time.Now().Add(5 * time.Second)
	for !td2.watcher.Ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// Several full cycles pass; nothing new is deployed.
	target := td2.watcher.cycles.Load() + 3
	for td2.watcher.cycles.Load() < target {
		if time.Now().After(deadline) {
			t.Fatal("watch cycles did not run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	j2 := td2.job(j.ID)
	if j2.State != StateRunning || j2.Deployment.Attempt != 1 || len(f.deploys) != 1 {
		t.Fatalf("after daemon restart: state %s, attempt %d, %d deploys", j2.State, j2.Deployment.Attempt, len(f.deploys))
	}
	if pids := f.alivePIDs(j.ID); len(pids) != 1 {
		t.Fatalf("alive copies = %v, want exactly one", pids)
	}
}

// TestOneDaemonPerDatabase: a second daemon on the same database (its own
// data directory) waits for the first one's lease and then refuses to
// start, saying who holds it; once the first stops, it starts at once. A
// daemon whose lease is taken from it stops.
func TestOneDaemonPerDatabase(t *testing.T) {
	f := newFakeCluster(t)
	db := filepath.Join(t.TempDir(), "shared.db")
	opts := func() Options {
		o := testOptions(t)
		o.Database.DSN = db
		o.Database.LeaseTTL = time.Second
		return o
	}
	td := startTestDaemon(t, opts(), f)
	start := time.Now()
	_, err := newDaemon(opts(), testLogger(), f.factory)
	if err == nil || !strings.Contains(err.Error(), "another daemon uses this database") || !strings.Contains(err.Error(), "127.0.0.1:0") {
		t.Fatalf("second daemon on the database: %v", err)
	}
	t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
	if err := td.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	td2 := startTestDaemon(t, opts(), f)
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("the lease released by Stop took %v to take", d)
	}

	// Another holder takes the lease (as if this daemon had stalled past
	// its expiry): the daemon reports the loss and stops its watcher.
	if err := td2.store.db.Model(&Lease{}).Where("name = ?", daemonLease).Update("holder", "usurper").Error; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-td2.leaseLost:
		if !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("lease loss: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the daemon did not notice that its lease was taken")
	}
	td2.watcher.mu.Lock()
	stopped := td2.watcher.stopped
	td2.watcher.mu.Unlock()
	if !stopped {
		t.Error("the watcher still runs without the lease")
	}
}

func TestDataDirLock(t *testing.T) {
	f := newFakeCluster(t)
	o := testOptions(t)
	startTestDaemon(t, o, f)
	if _, err := newDaemon(o, testLogger(), f.factory); err == nil || !strings.Contains(err.Error(), "in use by another daemon") {
		t.Fatalf("second daemon on the same data dir: %v", err)
	}
}

func TestSubmitRejectsBadSpecsAndStoresNothing(t *testing.T) {
	f := newFakeCluster(t)
	td := startTestDaemon(t, testOptions(t), f)
	tests := []struct{ name, body, field string }{
		{"not yaml", "name: [unclosed", ""},
		{"missing name", strings.Replace(goodSpec, "name: clicks\n", "", 1), "name"},
		{"negative rate", strings.Replace(goodSpec, "rate: 100", "rate: -5", 1), "source.datagen.rate"},
		{"unknown field", goodSpec + "colour: blue\n", "colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b := td.call("POST", "/api/v1/jobs", tt.body)
			if code != 400 {
				t.Fatalf("code %d, body %s", code, b)
			}
			var e struct{ Error apiError }
			if err := json.Unmarshal(b, &e); err != nil || e.Error.Code != "invalid_spec" || e.Error.Message == "" {
				t.Fatalf("error body %s", b)
			}
			if tt.field != "" && !strings.Contains(e.Error.Field+" "+e.Error.Message, tt.field) {
				t.Errorf("error %+v does not name %s", e.Error, tt.field)
			}
		})
	}
	_, b := td.call("GET", "/api/v1/jobs", "")
	if !bytes.Contains(b, []byte(`"jobs": []`)) {
		t.Fatalf("jobs stored after bad submits: %s", b)
	}
	if len(f.deploys) != 0 {
		t.Fatalf("deployed %d jobs", len(f.deploys))
	}
}

func TestSubmitSameNameTwiceConflicts(t *testing.T) {
	f := newFakeCluster(t)
	td := startTestDaemon(t, testOptions(t), f)
	submit(t, td, goodSpec)
	if code, b := td.call("POST", "/api/v1/jobs", goodSpec); code != 409 {
		t.Fatalf("second submit: %d %s", code, b)
	}
}

func TestAuthToken(t *testing.T) {
	f := newFakeCluster(t)
	o := testOptions(t)
	o.Auth.Token = "s3cret-token"
	td := startTestDaemon(t, o, f)
	if code, b := td.call("GET", "/api/v1/jobs", ""); code != 401 || bytes.Contains(b, []byte("s3cret")) {
		t.Fatalf("no token: %d %s", code, b)
	}
	if code, _ := td.call("GET", "/api/v1/jobs", "", "Authorization", "Bearer wrong"); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code, _ := td.call("GET", "/api/v1/jobs", "", "Authorization", "Bearer s3cret-token"); code != 200 {
		t.Fatalf("right token: %d", code)
	}
	for _, p := range []string{"/healthz", "/metrics"} {
		if code, _ := td.call("GET", p, ""); code != 200 {
			t.Errorf("%s needs no token: %d", p, code)
		}
	}
}

func TestHealthReadyMetricsAndErrors(t *testing.T) {
	f := newFakeCluster(t)
	td := startTestDaemon(t, testOptions(t), f)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := td.call("GET", "/readyz", "")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	j := submit(t, td, goodSpec)
	td.waitFor(j.ID, "RUNNING", stateIs(StateRunning))
	_, b := td.call("GET", "/metrics", "")
	for _, m := range []string{"tidewatch_watch_cycle_seconds_count", `tidewatch_http_requests_total{code="201",method="POST"} 1`, "go_goroutines"} {
		if !strings.Contains(string(b), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	for _, tt := range []struct {
		path string
		code int
	}{
		{"/api/v1/jobs/ffffffffffffffffffffffffffffffff", 404},
		{"/api/v1/jobs/zz", 404},
		{"/api/v1/nope", 404},
		{"/api/v1/events?limit=-1", 400},
	} {
		code, b := td.call("GET", tt.path, "")
		var e struct{ Error apiError }
		if code != tt.code || json.Unmarshal(b, &e) != nil || e.Error.Message == "" {
			t.Errorf("GET %s = %d %s, want %d with a JSON error", tt.path, code, b, tt.code)
		}
	}
}
