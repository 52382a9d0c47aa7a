package yarn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/supportlayer/deploy"
	"github.com/tidewatch/tidewatch/yarn/am"
	"github.com/tidewatch/tidewatch/yarn/hdfs"
	"github.com/tidewatch/tidewatch/yarn/rm"
	"github.com/tidewatch/tidewatch/yarn/rm/rmtest"
)

const testSpec = `name: clicks
source:
  type: datagen
  datagen: {rate: 100, keys: 10}
keyBy: key
window: {type: tumbling, size: 5s}
aggregate: count
sink:
  type: file
  file: {path: out.jsonl}
resources: {memory: 1536m, vcores: 2}
`

const (
	testUser    = "tester"
	testStaging = "/user/tester/.staging"
	listPath    = "/ws/v1/cluster/apps"
)

func discard() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// testEnv is a fake RM, a local directory standing in for HDFS, and a
// deployer on both.
type testEnv struct {
	t      *testing.T
	rm     *rmtest.Server
	fs     *hdfs.LocalFS
	bin    string
	cfg    Config
	client *rm.Client
	d      *Deployer
}

func newTestEnv(t *testing.T, ro rmtest.Options, mut func(*Config)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, fs: &hdfs.LocalFS{Root: t.TempDir()}}
	// The fake RM checks every local resource the way the NodeManager's
	// localizer would (exact timestamp), so a wrong one fails the launch.
	ro.CheckResource = func(_ string, lr rmtest.LocalResource) error {
		u, err := url.Parse(lr.URL)
		if err != nil || u.Scheme != "file" {
			return fmt.Errorf("resource %q is not a file:// URL", lr.URL)
		}
		p := strings.TrimPrefix(u.Path, filepath.ToSlash(e.fs.Root))
		return hdfs.VerifyLocalResource(e.fs, p, rm.LocalResource{URL: lr.URL, Type: rm.LocalResourceType(lr.Type),
			Visibility: rm.Visibility(lr.Visibility), Size: lr.Size, Timestamp: lr.Timestamp})
	}
	e.rm = rmtest.New(ro)
	t.Cleanup(e.rm.Close)
	e.bin = filepath.Join(t.TempDir(), "tidewatch")
	if err := os.WriteFile(e.bin, []byte("#!/bin/sh\necho tidewatch\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A long observe interval: only BeginCycle (or a kill) refreshes the
	// listing, so tests control exactly when the deployer asks the RM.
	e.cfg = Config{Binary: e.bin, User: testUser, ObserveInterval: time.Hour, KillPoll: time.Millisecond}
	if mut != nil {
		mut(&e.cfg)
	}
	e.client = e.newClient(e.rm.URL())
	e.d = e.newDeployer()
	return e
}

func (e *testEnv) newClient(urls ...string) *rm.Client {
	e.t.Helper()
	c, err := rm.New(rm.Options{BaseURLs: urls, User: testUser, MaxRetries: 2,
		Backoff: rm.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// newDeployer is a fresh deployer on the same RM and staging area, as a
// restarted daemon builds.
func (e *testEnv) newDeployer() *Deployer {
	e.t.Helper()
	st, err := hdfs.NewStager(e.fs, hdfs.Options{StagingDir: testStaging})
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := New(e.cfg, e.client, st, discard())
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func jobID(n int) string { return fmt.Sprintf("%032x", 0xabc000+n) }

func request(n, attempt int) deploy.Request {
	return deploy.Request{JobID: jobID(n), Attempt: attempt, Spec: []byte(testSpec),
		CheckpointDir: "hdfs://nn.example.com:8020/tidewatch/checkpoints/" + jobID(n), Restore: "latest"}
}

func (e *testEnv) deploy(req deploy.Request) deploy.Handle {
	e.t.Helper()
	h, err := e.d.Deploy(context.Background(), req)
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// observe begins a cycle and observes h.
func (e *testEnv) observe(h deploy.Handle) deploy.Status {
	e.t.Helper()
	e.d.BeginCycle()
	st, err := e.d.Observe(context.Background(), h)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// run drives the fake RM until the application's AM has registered.
func (e *testEnv) run(appID, trackingURL string) {
	e.t.Helper()
	if err := e.rm.LaunchAttempt(appID); err != nil {
		e.t.Fatal(err)
	}
	if err := e.rm.RegisterAttempt(appID, "node1.example.com", trackingURL); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) stagingExists(appID string) bool {
	_, err := e.fs.Stat(testStaging + "/" + appID)
	return err == nil
}

func (e *testEnv) count(method string, match func(path string) bool) int {
	n := 0
	for _, r := range e.rm.Requests() {
		if r.Method == method && match(r.Path) {
			n++
		}
	}
	return n
}

func isList(p string) bool { return p == listPath }
func isReport(p string) bool {
	return strings.HasPrefix(p, listPath+"/application_") && strings.Count(p, "/") == 5
}

func resultDiag(state, savepoint, errMsg string) string {
	b, _ := json.Marshal(map[string]string{"state": state, "savepoint": savepoint, "error": errMsg})
	return "job " + strings.ToLower(state) + "\n" + ResultPrefix + string(b)
}

func TestDeployRunFinish(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	req := request(1, 3)
	h := e.deploy(req)
	if h.Deployer != Name || h.JobID != req.JobID || h.Attempt != 3 || h.ApplicationID == "" {
		t.Fatalf("handle = %+v", h)
	}
	app, ok := e.rm.App(h.ApplicationID)
	if !ok {
		t.Fatal("the RM has no application")
	}
	if app.Name != "clicks" || app.ApplicationType != "TIDEWATCH" || app.Queue != "default" || app.MaxAttempts != 2 ||
		app.KeepContainers || app.VCores != 2 || app.User != testUser {
		t.Errorf("application = %+v", app)
	}
	var sub struct {
		Resource struct{ Memory int64 } `json:"resource"`
	}
	if json.Unmarshal(app.Submission, &sub); sub.Resource.Memory != 1536 {
		t.Errorf("AM container memory = %d MB, want the spec's 1536", sub.Resource.Memory)
	}
	wantTags := []string{DeployTag(req.JobID, 3), JobTag(req.JobID)}
	if strings.Join(app.Tags, ",") != strings.Join(wantTags, ",") {
		t.Errorf("tags = %v, want %v", app.Tags, wantTags)
	}
	wantCmd := "./tidewatch am --spec job.yaml --job-id " + req.JobID + " --attempt 3 --work-dir . --checkpoint-dir " + req.CheckpointDir +
		" --listen 0.0.0.0:0 --restore latest --log-format json 1><LOG_DIR>/jobmaster.log 2>&1"
	if len(app.Commands) != 1 || app.Commands[0] != wantCmd {
		t.Errorf("commands = %q\nwant       %q", app.Commands, wantCmd)
	}
	if len(app.Environment) != 2 || app.Environment["HADOOP_USER_NAME"] != testUser {
		t.Errorf("environment = %v", app.Environment)
	}
	// The AM gets its own local resources, to start worker containers with.
	passed, err := am.LocalResources(func(string) string { return app.Environment[am.EnvLocalResources] })
	if err != nil || len(passed) != 2 || passed["tidewatch"].URL != app.LocalResources["tidewatch"].URL ||
		passed["job.yaml"].Timestamp != app.LocalResources["job.yaml"].Timestamp {
		t.Errorf("%s passes %+v (%v), want the AM's local resources", am.EnvLocalResources, passed, err)
	}
	bin, spec := app.LocalResources["tidewatch"], app.LocalResources["job.yaml"]
	if len(app.LocalResources) != 2 || !strings.Contains(bin.URL, testStaging+"/.tidewatch/bin/") || bin.Visibility != "PRIVATE" ||
		!strings.HasSuffix(spec.URL, testStaging+"/"+h.ApplicationID+"/job.yaml") || spec.Visibility != "APPLICATION" {
		t.Errorf("local resources = %+v", app.LocalResources)
	}
	if b, err := os.ReadFile(filepath.Join(e.fs.Root, testStaging, h.ApplicationID, "job.yaml")); err != nil || string(b) != testSpec {
		t.Errorf("staged spec = %q, %v", b, err)
	}

	// ACCEPTED: alive, no endpoint yet.
	if st := e.observe(h); !st.Alive || st.Endpoint != "" {
		t.Fatalf("accepted: %+v", st)
	}
	// The AM container runs but has not registered.
	if err := e.rm.LaunchAttempt(h.ApplicationID); err != nil {
		t.Fatal(err) // includes the localizer's check of both resources
	}
	if st := e.observe(h); !st.Alive || st.Endpoint != "" {
		t.Fatalf("launched: %+v", st)
	}
	// Registered: the endpoint is the RM proxy's tracking URL.
	if err := e.rm.RegisterAttempt(h.ApplicationID, "node1.example.com", "http://node1.example.com:41234"); err != nil {
		t.Fatal(err)
	}
	st := e.observe(h)
	if want := e.rm.URL() + "/proxy/" + h.ApplicationID + "/"; !st.Alive || st.Endpoint != want {
		t.Fatalf("running: %+v, want endpoint %s", st, want)
	}

	// The AM unregisters with its result.
	if err := e.rm.Finish(h.ApplicationID, "SUCCEEDED", resultDiag("FINISHED", "hdfs://nn.example.com:8020/ck/savepoints/sp-7", "")); err != nil {
		t.Fatal(err)
	}
	st = e.observe(h)
	if st.Alive || st.Endpoint != "" || st.FinalState != "FINISHED" || st.Savepoint != "hdfs://nn.example.com:8020/ck/savepoints/sp-7" ||
		!strings.Contains(st.Diagnostics, "FINISHED (final status SUCCEEDED)") {
		t.Fatalf("finished: %+v", st)
	}
	if e.stagingExists(h.ApplicationID) {
		t.Error("the staging directory of an ended application is still there")
	}
	if _, err := e.fs.Stat(testStaging + "/.tidewatch/bin"); err != nil {
		t.Errorf("the shared binary must stay: %v", err)
	}

	rc, err := e.d.Logs(context.Background(), h, 0)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(rc)
	rc.Close()
	for _, want := range []string{h.ApplicationID, "FINISHED, final status SUCCEEDED", "jobmaster.log", "/node/containerlogs/", "tidewatch-result"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("logs text lacks %q:\n%s", want, text)
		}
	}
}

func TestJobResults(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	for i, tt := range []struct {
		final, diag     string
		state, diagPart string
	}{
		{"KILLED", resultDiag("CANCELED", "", ""), "CANCELED", "FINISHED (final status KILLED)"},
		{"FAILED", resultDiag("FAILED", "", "source: connection refused"), "FAILED", "source: connection refused"},
		{"SUCCEEDED", "no result line", "", "no result line"},
	} {
		h := e.deploy(request(10+i, 1))
		e.run(h.ApplicationID, "http://node1.example.com:4000")
		if err := e.rm.Finish(h.ApplicationID, tt.final, tt.diag); err != nil {
			t.Fatal(err)
		}
		st := e.observe(h)
		if st.Alive || st.FinalState != tt.state || !strings.Contains(st.Diagnostics, tt.diagPart) {
			t.Errorf("%s with %q: %+v", tt.final, tt.diag, st)
		}
	}
}

// An AM that dies is restarted by YARN (the deployment stays alive, without
// an endpoint until the new attempt registers); once it has failed on every
// attempt the application is FAILED and the RM's diagnostics say why.
func TestAMFailures(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	h := e.deploy(request(1, 1))
	e.run(h.ApplicationID, "http://node1.example.com:4000")
	if err := e.rm.FailAttempt(h.ApplicationID, "Container killed on request. Exit code is 137"); err != nil {
		t.Fatal(err)
	}
	if st := e.observe(h); !st.Alive || st.Endpoint != "" {
		t.Fatalf("between attempts: %+v", st)
	}
	e.run(h.ApplicationID, "http://node2.example.com:4001")
	if st := e.observe(h); !st.Alive || !strings.Contains(st.Endpoint, "/proxy/"+h.ApplicationID) {
		t.Fatalf("attempt 2 running: %+v", st)
	}
	if err := e.rm.FailAttempt(h.ApplicationID, "Exit code is 2"); err != nil {
		t.Fatal(err)
	}
	st := e.observe(h)
	if st.Alive || st.FinalState != "" || !strings.Contains(st.Diagnostics, "FAILED (final status FAILED)") || !strings.Contains(st.Diagnostics, "failed 2 times") {
		t.Fatalf("out of attempts: %+v", st)
	}
	if strings.Contains(st.Diagnostics, "\n") || len(st.Diagnostics) > 2*maxDiagnostics {
		t.Errorf("diagnostics must be one bounded line: %q", st.Diagnostics)
	}
	if e.stagingExists(h.ApplicationID) {
		t.Error("staging directory left behind")
	}
}

func TestKill(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	h := e.deploy(request(1, 1))
	e.run(h.ApplicationID, "http://node1.example.com:4000")
	if st := e.observe(h); !st.Alive {
		t.Fatalf("before the kill: %+v", st)
	}
	if err := e.d.Kill(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	app, _ := e.rm.App(h.ApplicationID)
	if app.State != "KILLED" || app.FinalStatus != "KILLED" {
		t.Fatalf("after the kill the application is %s/%s", app.State, app.FinalStatus)
	}
	// The recorded two-step answer: 202 with the current state, then 200 KILLED.
	if n := e.rm.CountRequests(http.MethodPut, listPath+"/"+h.ApplicationID+"/state"); n != 2 {
		t.Errorf("%d kill requests, want 2", n)
	}
	if e.stagingExists(h.ApplicationID) {
		t.Error("staging directory left behind")
	}
	// No new cycle: the kill itself made the deployer ask again.
	st, err := e.d.Observe(context.Background(), h)
	if err != nil || st.Alive || st.FinalState != "" || !strings.Contains(st.Diagnostics, "KILLED") || !strings.Contains(st.Diagnostics, "killed by") {
		t.Fatalf("after the kill: %+v, %v", st, err)
	}
	if err := e.d.Kill(context.Background(), h); err != nil {
		t.Errorf("killing a killed application: %v", err)
	}
}

// dropSubmitAnswer loses the answer to the first submit after the RM has
// handled it, as a daemon that crashed (or a network that failed) mid-submit.
type dropSubmitAnswer struct {
	mu   sync.Mutex
	done bool
	// failChecks fails the client's check for the application afterwards.
	failChecks bool
}

func (d *dropSubmitAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.Method == http.MethodPost && r.URL.Path == listPath && !d.done {
		d.done = true
		if resp != nil {
			resp.Body.Close()
		}
		return nil, errors.New("connection reset by peer")
	}
	if d.done && d.failChecks && r.Method == http.MethodGet && r.URL.Path == listPath {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, errors.New("connection refused")
	}
	return resp, err
}

// A daemon that stopped after its submit reached the RM, before it stored
// the handle, finds the application by its deployment tag: its watcher
// observes the handle without an application id, and a deploy of the same
// deployment adopts the application instead of submitting a second one.
func TestAdoptionAfterCrashMidSubmit(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	req := request(1, 1)
	lost := e.deploy(req) // the daemon "crashes" before storing this handle
	e.run(lost.ApplicationID, "http://node1.example.com:4000")

	restarted := e.newDeployer()
	stored := deploy.Handle{Deployer: Name, JobID: req.JobID, Attempt: req.Attempt}
	restarted.BeginCycle()
	st, err := restarted.Observe(context.Background(), stored)
	if err != nil || !st.Alive || !strings.Contains(st.Endpoint, lost.ApplicationID) {
		t.Fatalf("observing the stored handle: %+v, %v", st, err)
	}
	h, err := restarted.Deploy(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if h.ApplicationID != lost.ApplicationID {
		t.Fatalf("adopted %s, want %s", h.ApplicationID, lost.ApplicationID)
	}
	if ids := e.rm.AppIDs(); len(ids) != 1 || e.rm.CountRequests(http.MethodPost, listPath) != 1 {
		t.Fatalf("applications %v, %d submits: want exactly one", ids, e.rm.CountRequests(http.MethodPost, listPath))
	}
	// Kill finds it by tag too.
	if err := restarted.Kill(context.Background(), stored); err != nil {
		t.Fatal(err)
	}
	if app, _ := e.rm.App(lost.ApplicationID); app.State != "KILLED" {
		t.Fatalf("state after kill by tag: %s", app.State)
	}
}

// A daemon that stopped before it submitted: the deployment ended.
func TestStoredHandleOfUnsubmittedDeployment(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	h := deploy.Handle{Deployer: Name, JobID: jobID(1), Attempt: 1}
	st := e.observe(h)
	if st.Alive || !strings.Contains(st.Diagnostics, "before it submitted") {
		t.Fatalf("status = %+v", st)
	}
	if err := e.d.Kill(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	rc, err := e.d.Logs(context.Background(), h, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	if !strings.Contains(string(b), "No YARN application was submitted") {
		t.Errorf("logs: %s", b)
	}
}

// The answer to a submit is lost: the client finds the application by the
// deployment tag and does not submit again.
func TestSubmitAnswerLost(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	c, err := rm.New(rm.Options{BaseURLs: []string{e.rm.URL()}, User: testUser, Transport: &dropSubmitAnswer{},
		Backoff: rm.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}})
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	e.d = e.newDeployer()
	h := e.deploy(request(1, 1))
	if ids := e.rm.AppIDs(); len(ids) != 1 || ids[0] != h.ApplicationID || e.rm.CountRequests(http.MethodPost, listPath) != 1 {
		t.Fatalf("applications %v, %d submits", ids, e.rm.CountRequests(http.MethodPost, listPath))
	}
}

// A submit whose outcome cannot be established fails the deploy, and the
// application it may have created is killed, so that no untracked copy of
// the job runs.
func TestUncertainSubmitIsKilled(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	c, err := rm.New(rm.Options{BaseURLs: []string{e.rm.URL()}, User: testUser, Transport: &dropSubmitAnswer{failChecks: true}, MaxRetries: 1,
		Backoff: rm.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}})
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	e.d = e.newDeployer()
	_, err = e.d.Deploy(context.Background(), request(1, 1))
	if !errors.Is(err, rm.ErrSubmitUncertain) {
		t.Fatalf("deploy error = %v, want ErrSubmitUncertain", err)
	}
	ids := e.rm.AppIDs()
	if len(ids) != 1 {
		t.Fatalf("applications %v", ids)
	}
	if app, _ := e.rm.App(ids[0]); app.InternalState != rmtest.StateKilling && app.State != "KILLED" {
		t.Errorf("the uncertain application is %s (%s), want it killed", app.State, app.InternalState)
	}
	if e.stagingExists(ids[0]) {
		t.Error("staging directory of the failed submit left behind")
	}
}

// A new deployment of a job kills live applications of its earlier ones.
func TestDeployKillsLeftovers(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	old := e.deploy(request(1, 1))
	e.run(old.ApplicationID, "http://node1.example.com:4000")
	other := e.deploy(request(2, 1)) // another job: untouched
	h := e.deploy(request(1, 2))
	if h.ApplicationID == old.ApplicationID {
		t.Fatal("deployment 2 adopted deployment 1's application")
	}
	if app, _ := e.rm.App(old.ApplicationID); app.InternalState != rmtest.StateKilling && app.State != "KILLED" {
		t.Errorf("leftover is %s (%s), want killed", app.State, app.InternalState)
	}
	if app, _ := e.rm.App(other.ApplicationID); app.State != "ACCEPTED" {
		t.Errorf("another job's application is %s", app.State)
	}
	// No handle was stored for the leftover, so no Observe will remove its
	// staging directory: the deployment that killed it does.
	if e.stagingExists(old.ApplicationID) {
		t.Error("staging directory of the killed leftover left behind")
	}
	if !e.stagingExists(h.ApplicationID) || !e.stagingExists(other.ApplicationID) {
		t.Error("staging directory of a live application removed")
	}
}

// One watch cycle costs one list request, whatever the number of jobs;
// observations between cycles cost nothing; an application that left the
// listing (ended) costs one report.
func TestOneListRequestPerCycle(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{MaxMemoryMB: 1 << 20, MaxVCores: 1 << 10}, nil)
	const jobs = 25
	var hs []deploy.Handle
	for i := range jobs {
		h := e.deploy(request(i, 1))
		e.run(h.ApplicationID, fmt.Sprintf("http://node%d.example.com:4000", i))
		hs = append(hs, h)
	}
	observeAll := func() []deploy.Status {
		out := make([]deploy.Status, len(hs))
		var wg sync.WaitGroup
		for i, h := range hs {
			wg.Go(func() {
				st, err := e.d.Observe(context.Background(), h)
				if err != nil {
					t.Error(err)
				}
				out[i] = st
			})
		}
		wg.Wait()
		return out
	}
	lists, reports := e.count(http.MethodGet, isList), e.count(http.MethodGet, isReport)
	for cycle := 1; cycle <= 3; cycle++ {
		e.d.BeginCycle()
		for i, st := range observeAll() {
			if !st.Alive || !strings.HasSuffix(st.Endpoint, "/proxy/"+hs[i].ApplicationID+"/") {
				t.Fatalf("cycle %d, job %d: %+v", cycle, i, st)
			}
		}
		observeAll() // kicks between cycles read the listing
		if got := e.count(http.MethodGet, isList) - lists; got != cycle {
			t.Fatalf("after %d cycles of %d jobs: %d list requests", cycle, jobs, got)
		}
	}
	if got := e.count(http.MethodGet, isReport) - reports; got != 0 {
		t.Fatalf("%d single reports for applications in the listing", got)
	}
	// The listing asks for this user's live TIDEWATCH applications only.
	var q url.Values
	for _, r := range e.rm.Requests() {
		if r.Method == http.MethodGet && r.Path == listPath {
			q = r.Query
		}
	}
	if q.Get("applicationTypes") != "TIDEWATCH" || q.Get("user") != testUser || !strings.Contains(q.Get("states"), "RUNNING") || strings.Contains(q.Get("states"), "FINISHED") {
		t.Errorf("list query = %v", q)
	}

	if err := e.rm.Finish(hs[0].ApplicationID, "SUCCEEDED", resultDiag("FINISHED", "", "")); err != nil {
		t.Fatal(err)
	}
	e.d.BeginCycle()
	sts := observeAll()
	if sts[0].Alive || sts[0].FinalState != "FINISHED" || !sts[1].Alive {
		t.Fatalf("after one job finished: %+v, %+v", sts[0], sts[1])
	}
	observeAll()
	if got := e.count(http.MethodGet, isReport) - reports; got != 1 {
		t.Errorf("%d single reports for the one ended application, want 1", got)
	}
	if got := e.count(http.MethodGet, isList) - lists; got != 4 {
		t.Errorf("%d list requests in 4 cycles", got)
	}
}

// Without cycles (a deployer used on its own) the listing is refreshed once
// it is older than the observe interval.
func TestListingExpires(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, func(c *Config) { c.ObserveInterval = 20 * time.Millisecond })
	h := e.deploy(request(1, 1))
	ctx := context.Background()
	if st, _ := e.d.Observe(ctx, h); !st.Alive || st.Endpoint != "" {
		t.Fatalf("accepted: %+v", st)
	}
	e.run(h.ApplicationID, "http://node1.example.com:4000")
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := e.d.Observe(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if st.Endpoint != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listing was never refreshed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An RM that fails costs one failed request per cycle, not one per job, and
// nothing is reported as ended.
func TestRMOutageCostsOneRequestPerCycle(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	var hs []deploy.Handle
	for i := range 5 {
		hs = append(hs, e.deploy(request(i, 1)))
	}
	e.rm.InjectFault(rmtest.Fault{Method: http.MethodGet, Path: listPath, Status: http.StatusInternalServerError, Times: 100})
	before := len(e.rm.Requests())
	e.d.BeginCycle()
	for _, h := range hs {
		if _, err := e.d.Observe(context.Background(), h); !errors.Is(err, rm.ErrServer) {
			t.Fatalf("observe during an outage: %v", err)
		}
	}
	// MaxRetries 2: three tries of the one list request.
	if n := len(e.rm.Requests()) - before; n != 3 {
		t.Errorf("%d requests in a failed cycle of 5 jobs, want 3 (one list, retried)", n)
	}
}

func TestHAStandby(t *testing.T) {
	active := rmtest.New(rmtest.Options{})
	t.Cleanup(active.Close)
	e := newTestEnv(t, rmtest.Options{}, nil)
	standby := e.rm
	standby.SetStandby(active.URL())
	e.client = e.newClient(standby.URL(), active.URL())
	e.d = e.newDeployer()
	e.rm = active

	h := e.deploy(request(1, 1))
	if _, ok := active.App(h.ApplicationID); !ok || len(standby.AppIDs()) != 0 {
		t.Fatalf("the application must be on the active RM: active %v, standby %v", active.AppIDs(), standby.AppIDs())
	}
	e.run(h.ApplicationID, "http://node1.example.com:4000")
	st := e.observe(h)
	if want := active.URL() + "/proxy/" + h.ApplicationID + "/"; st.Endpoint != want {
		t.Fatalf("endpoint %q, want the active RM's proxy %q", st.Endpoint, want)
	}
	// The standby goes away: the client stays with the active RM.
	standby.Close()
	if st := e.observe(h); !st.Alive {
		t.Fatalf("after the standby left: %+v", st)
	}
	if err := e.d.Kill(context.Background(), h); err != nil {
		t.Fatal(err)
	}
}

func TestDeployRejects(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{MaxMemoryMB: 1024}, nil)
	for _, tt := range []struct {
		name string
		mut  func(*deploy.Request)
		want string
	}{
		{"bad spec", func(r *deploy.Request) { r.Spec = []byte("name: [") }, "job spec"},
		{"space in checkpoint dir", func(r *deploy.Request) { r.CheckpointDir = "/tmp/my checkpoints" }, "launch shell"},
		{"quote in restore", func(r *deploy.Request) { r.Restore = `hdfs://nn/sp"; rm -rf /` }, "launch shell"},
		{"container too large", func(r *deploy.Request) {}, "largest container is 1024 MB"},
	} {
		req := request(1, 1)
		tt.mut(&req)
		if _, err := e.d.Deploy(context.Background(), req); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	if n := e.rm.CountRequests(http.MethodPost, listPath); n != 0 {
		t.Errorf("%d submits of rejected deployments", n)
	}
}

func TestSchedulerAddressAndQueue(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{Queues: []string{"default", "streaming"}}, func(c *Config) {
		c.SchedulerAddresses = []string{"rm1.example.com:8030", "rm2.example.com:8030"}
		c.Queue = "streaming"
		c.MaxAttempts = 4
		c.AttemptFailuresValidityInterval = 10 * time.Minute
	})
	h := e.deploy(request(1, 1))
	app, _ := e.rm.App(h.ApplicationID)
	if app.Environment[EnvSchedulerAddress] != "rm1.example.com:8030,rm2.example.com:8030" || app.Queue != "streaming" {
		t.Errorf("application = %+v", app)
	}
	var sub struct {
		MaxAttempts int   `json:"max-app-attempts"`
		Validity    int64 `json:"attempt-failures-validity-interval"`
	}
	if json.Unmarshal(app.Submission, &sub); sub.MaxAttempts != 4 || sub.Validity != 600000 {
		t.Errorf("submission: %+v", sub)
	}
}

func TestHandleOfAnotherDeployer(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	h := deploy.Handle{Deployer: "local", PID: 4242, JobID: jobID(1), Attempt: 1}
	if _, err := e.d.Observe(context.Background(), h); !errors.Is(err, deploy.ErrUnknownHandle) {
		t.Errorf("observe of a local deployment: %v", err)
	}
	if _, err := e.d.Observe(context.Background(), deploy.Handle{Deployer: Name}); !errors.Is(err, deploy.ErrUnknownHandle) {
		t.Errorf("observe of an empty handle: %v", err)
	}
}

// Open takes what the configuration leaves out from HADOOP_CONF_DIR.
func TestOpenFromHadoopConf(t *testing.T) {
	fake := rmtest.New(rmtest.Options{})
	t.Cleanup(fake.Close)
	confDir := t.TempDir()
	host := strings.TrimPrefix(fake.URL(), "http://")
	site := `<?xml version="1.0"?><configuration>
<property><name>yarn.resourcemanager.webapp.address</name><value>` + host + `</value></property>
</configuration>`
	if err := os.WriteFile(filepath.Join(confDir, "yarn-site.xml"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "tidewatch")
	os.WriteFile(bin, []byte("bin"), 0o755)
	fs := &hdfs.LocalFS{Root: t.TempDir()}
	d, err := Open(Config{Binary: bin, User: "alice", HadoopConfDir: confDir}, fs, discard())
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.Deploy(context.Background(), request(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if app, ok := fake.App(h.ApplicationID); !ok || app.User != "alice" {
		t.Fatalf("application %+v", app)
	}
	if _, err := fs.Stat("/user/alice/.staging/" + h.ApplicationID + "/job.yaml"); err != nil {
		t.Errorf("default staging dir: %v", err)
	}

	if _, err := Open(Config{Binary: bin, User: "alice", HadoopConfDir: t.TempDir()}, fs, discard()); err == nil || !strings.Contains(err.Error(), "yarn.resourcemanager: not set") {
		t.Errorf("no RM anywhere: %v", err)
	}
	if _, err := Open(Config{User: "alice", ResourceManagers: []string{fake.URL()}}, fs, discard()); err == nil || !strings.Contains(err.Error(), "runtime.binary") {
		t.Errorf("no binary: %v", err)
	}
}

// Without yarn.scheduler_address, Open passes the AM the scheduler
// address(es) of the yarn-site.xml it read, so that the AM does not depend
// on the NodeManager's copy (HADOOP_PROTOCOLS.md §2.4).
func TestOpenSchedulerAddressFromHadoopConf(t *testing.T) {
	fake := rmtest.New(rmtest.Options{})
	t.Cleanup(fake.Close)
	host := strings.TrimPrefix(fake.URL(), "http://")
	site := func(props map[string]string) string {
		var b strings.Builder
		b.WriteString(`<?xml version="1.0"?><configuration>`)
		for k, v := range props {
			fmt.Fprintf(&b, "<property><name>%s</name><value>%s</value></property>\n", k, v)
		}
		b.WriteString("</configuration>")
		return b.String()
	}
	tests := []struct {
		name string
		site map[string]string // nil: no yarn-site.xml
		cfg  Config
		want string
	}{
		{name: "single RM", site: map[string]string{
			"yarn.resourcemanager.hostname":       "rm1.example.com",
			"yarn.resourcemanager.webapp.address": host,
		}, want: "rm1.example.com:8030"},
		{name: "RM HA", site: map[string]string{
			"yarn.resourcemanager.ha.enabled":            "true",
			"yarn.resourcemanager.ha.rm-ids":             "rm1,rm2",
			"yarn.resourcemanager.hostname.rm1":          "rm1.example.com",
			"yarn.resourcemanager.webapp.address.rm1":    host,
			"yarn.resourcemanager.scheduler.address.rm2": "rm2.example.com:18030",
			"yarn.resourcemanager.webapp.address.rm2":    host,
		}, want: "rm1.example.com:8030,rm2.example.com:18030"},
		{name: "configured", site: map[string]string{
			"yarn.resourcemanager.hostname":       "rm1.example.com",
			"yarn.resourcemanager.webapp.address": host,
		}, cfg: Config{SchedulerAddresses: []string{"rm9.example.com:8030"}}, want: "rm9.example.com:8030"},
		{name: "no yarn-site.xml", cfg: Config{ResourceManagers: []string{fake.URL()}}, want: ""},
	}
	bin := filepath.Join(t.TempDir(), "tidewatch")
	if err := os.WriteFile(bin, []byte("bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			confDir := t.TempDir()
			if tt.site != nil {
				if err := os.WriteFile(filepath.Join(confDir, "yarn-site.xml"), []byte(site(tt.site)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg := tt.cfg
			cfg.Binary, cfg.User, cfg.HadoopConfDir = bin, "alice", confDir
			d, err := Open(cfg, &hdfs.LocalFS{Root: t.TempDir()}, discard())
			if err != nil {
				t.Fatal(err)
			}
			h, err := d.Deploy(context.Background(), request(i, 1))
			if err != nil {
				t.Fatal(err)
			}
			app, _ := fake.App(h.ApplicationID)
			if got, ok := app.Environment[EnvSchedulerAddress]; got != tt.want || ok != (tt.want != "") {
				t.Errorf("%s = %q (set %t), want %q", EnvSchedulerAddress, got, ok, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{ResourceManagers: []string{"http://rm1:8088", "https://rm2:8090"}, Queue: "default", StagingDir: "/user/tw/.staging",
		SchedulerAddresses: []string{"rm1:8030"}, MaxAttempts: 2, AttemptFailuresValidityInterval: time.Minute, NameNode: "nn:8020", User: "tw"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.ResourceManagers = []string{"rm1:8088"} }, "yarn.resourcemanager[0]"},
		{func(c *Config) { c.ResourceManagers = []string{"http://rm1:8088/?x=1"} }, "yarn.resourcemanager[0]"},
		{func(c *Config) { c.Queue = "" }, "yarn.queue"},
		{func(c *Config) { c.Queue = "a,b" }, "yarn.queue"},
		{func(c *Config) { c.StagingDir = "staging" }, "yarn.staging_dir"},
		{func(c *Config) { c.StagingDir = "/" }, "yarn.staging_dir"},
		{func(c *Config) { c.StagingDir = "hdfs://nn/user/tw" }, "yarn.staging_dir"},
		{func(c *Config) { c.SchedulerAddresses = []string{"rm1"} }, "yarn.scheduler_address[0]"},
		{func(c *Config) { c.MaxAttempts = 0 }, "yarn.max_attempts"},
		{func(c *Config) { c.AttemptFailuresValidityInterval = -time.Second }, "yarn.attempt_failures_validity_interval"},
		{func(c *Config) { c.AttemptFailuresValidityInterval = time.Microsecond }, "yarn.attempt_failures_validity_interval"},
		{func(c *Config) { c.NameNode = "nn" }, "hdfs.namenode"},
		{func(c *Config) { c.NameNode = "nn:0" }, "hdfs.namenode"},
		{func(c *Config) { c.User = "a b" }, "hdfs.user"},
	} {
		c := good
		tt.mut(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("err = %v, want it to start with %q", err, tt.want)
		}
	}
}

func TestValidateCheckpointDir(t *testing.T) {
	for dir, want := range map[string]string{
		"hdfs://nn:8020/tidewatch/ck": "",
		"hdfs:///tidewatch/ck":        "",
		"file:///var/tw/ck":           "",
		"":                            "must be set",
		"/var/tw/ck":                  "is a local path",
		"ck":                          "is a local path",
		"s3://bucket/ck":              `scheme "s3"`,
		"hdfs://nn:8020":              "absolute directory",
		"hdfs://nn:8020/my ck":        "launch shell",
	} {
		err := ValidateCheckpointDir(dir)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: err = %v, want %q", dir, err, want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "checkpoints.dir: ") {
			t.Errorf("%q: the error must name the key: %v", dir, err)
		}
	}
}

func TestParseResult(t *testing.T) {
	for _, tt := range []struct {
		diag string
		want result
		ok   bool
	}{
		{resultDiag("FINISHED", "hdfs://nn/sp", ""), result{State: "FINISHED", Savepoint: "hdfs://nn/sp"}, true},
		{"AM Container for appattempt_1_0001_000001 exited.\n" + resultDiag("FAILED", "", "boom"), result{State: "FAILED", Error: "boom"}, true},
		{`  tidewatch-result {"state":"CANCELED"}  `, result{State: "CANCELED"}, true},
		{`tidewatch-result {"state":"RUNNING"}`, result{}, false},
		{`tidewatch-result {not json`, result{}, false},
		{"Application killed by user.", result{}, false},
		{"", result{}, false},
	} {
		got, ok := parseResult(tt.diag)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseResult(%q) = %+v, %v; want %+v, %v", tt.diag, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseResult(f *testing.F) {
	f.Add(resultDiag("FINISHED", "hdfs://nn/sp", ""))
	f.Add("x\ntidewatch-result {\"state\":\"FAILED\",\"error\":\"e\"}\n")
	f.Fuzz(func(t *testing.T, diag string) {
		r, ok := parseResult(diag)
		if ok && r.State != "FINISHED" && r.State != "CANCELED" && r.State != "FAILED" {
			t.Fatalf("accepted state %q", r.State)
		}
		if c := clip(diag, 64); len(c) > 64+len("…") {
			t.Fatalf("clip returned %d bytes", len(c))
		}
	})
}

// An application the RM answers 404 for has ended (an RM restarted without
// recovery forgets it); a 404 for the listing is a misconfiguration and
// never ends a deployment.
func TestUnknownApplication(t *testing.T) {
	e := newTestEnv(t, rmtest.Options{}, nil)
	h := deploy.Handle{Deployer: Name, ApplicationID: "application_1795472519589_0999", JobID: jobID(1), Attempt: 1}
	st := e.observe(h)
	if st.Alive || !strings.Contains(st.Diagnostics, "unknown to the ResourceManager") {
		t.Fatalf("status = %+v", st)
	}
	if err := e.d.Kill(context.Background(), h); err != nil {
		t.Errorf("kill of an unknown application: %v", err)
	}

	e.rm.InjectFault(rmtest.Fault{Method: http.MethodGet, Path: listPath, Status: http.StatusNotFound, Body: "Not Found"})
	e.d.BeginCycle()
	if st, err := e.d.Observe(context.Background(), h); err == nil {
		t.Fatalf("a listing answered 404 ended the deployment: %+v", st)
	}
}

// A registered AM with an RPC port (the job master's REST port) is reached
// directly; without one, read-only through the RM's proxy.
func TestEndpointPrefersAMAddress(t *testing.T) {
	a := &rm.Application{ID: "application_1_0001", State: rm.StateRunning, TrackingURL: "http://rm:8088/proxy/application_1_0001/", AMRPCAddress: "node4:40123"}
	if st := statusOf(a); st.Endpoint != "http://node4:40123" {
		t.Errorf("endpoint %q, want the AM's address", st.Endpoint)
	}
	a.AMRPCAddress = ""
	if st := statusOf(a); st.Endpoint != a.TrackingURL {
		t.Errorf("endpoint %q, want the proxy", st.Endpoint)
	}
}
