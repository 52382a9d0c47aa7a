package supportlayer

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/supportlayer/deploy"
	yarndeploy "github.com/tidewatch/tidewatch/supportlayer/deploy/yarn"
	"github.com/tidewatch/tidewatch/yarn/hdfs"
	"github.com/tidewatch/tidewatch/yarn/rm/rmtest"
)

// yarnCluster is the fake ResourceManager of rmtest with a stand-in for the
// NodeManagers and the job masters: every application the RM schedules is
// launched and registers at once with a tracking URL on one httptest server
// that answers for its job (/jobs/overview, stop, yarn-cancel) and ends the
// application the way `tidewatch am` does, with a tidewatch-result line.
type yarnCluster struct {
	t   *testing.T
	rm  *rmtest.Server
	jm  *httptest.Server
	mux *http.ServeMux
	fs  *hdfs.LocalFS
	ctx context.Context

	mu      sync.Mutex
	stopped map[string]bool // applications whose job master no longer serves
}

const testSavepoint = "file:///checkpoints/savepoints/savepoint-1"

func newYARNCluster(t *testing.T) *yarnCluster {
	t.Setenv("HADOOP_CONF_DIR", "")
	c := &yarnCluster{t: t, rm: rmtest.New(rmtest.Options{}), fs: &hdfs.LocalFS{Root: t.TempDir()}, stopped: map[string]bool{}}
	t.Cleanup(c.rm.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{app}/jobs/overview", func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.rm.App(r.PathValue("app"))
		var jobs []map[string]any
		if ok {
			jobs = append(jobs, map[string]any{"jid": jobOfApp(s), "name": s.Name, "state": "RUNNING"})
		}
		json.NewEncoder(w).Encode(map[string]any{"jobs": jobs})
	})
	mux.HandleFunc("POST /{app}/jobs/{id}/stop", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		io.WriteString(w, `{"request-id":"00000000000000000000000000000001"}`)
		go c.finish(r.PathValue("app"), "SUCCEEDED", `{"state":"FINISHED","savepoint":"`+testSavepoint+`","error":""}`)
	})
	mux.HandleFunc("GET /{app}/jobs/{id}/yarn-cancel", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		io.WriteString(w, `{}`)
		go c.finish(r.PathValue("app"), "KILLED", `{"state":"CANCELED","savepoint":"","error":""}`)
	})
	c.jm = httptest.NewServer(mux)
	t.Cleanup(c.jm.Close)
	c.mux = mux

	ctx, cancel := context.WithCancel(context.Background())
	c.ctx = ctx
	var wg sync.WaitGroup
	wg.Go(c.nodeManagers)
	t.Cleanup(func() { cancel(); wg.Wait() })
	return c
}

func jobOfApp(s rmtest.Snapshot) string {
	for _, tag := range s.Tags {
		if id, ok := strings.CutPrefix(tag, "tidewatch-job-"); ok {
			return id
		}
	}
	return ""
}

// nodeManagers launches every scheduled AM attempt, which registers at once.
func (c *yarnCluster) nodeManagers() {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		for _, id := range c.rm.AppIDs() {
			s, _ := c.rm.App(id)
			if s.State != rmtest.StateAccepted || len(s.Attempts) == 0 || s.Attempts[len(s.Attempts)-1].State != rmtest.AttemptScheduled {
				continue
			}
			if err := c.rm.LaunchAttempt(id); err != nil {
				continue
			}
			// Each AM's job master at its own address, registered as the
			// tracking URL and (its port) as the RPC port, as the real AM does.
			app := id
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r2 := r.Clone(r.Context())
				r2.URL.Path = "/" + app + r.URL.Path
				c.mux.ServeHTTP(w, r2)
			}))
			c.t.Cleanup(srv.Close)
			u, _ := url.Parse(srv.URL)
			port, _ := strconv.Atoi(u.Port())
			_ = c.rm.RegisterAttemptRPC(id, u.Hostname(), int64(port), srv.URL)
		}
	}
}

// finish unregisters an application's AM with a result, as the job master does.
func (c *yarnCluster) finish(app, finalStatus, result string) {
	if err := c.rm.Finish(app, finalStatus, "job ended\n"+yarndeploy.ResultPrefix+result); err != nil {
		c.t.Errorf("finish %s: %v", app, err)
		return
	}
	_ = c.rm.AMContainerExited(app)
}

// options is a daemon on this cluster.
func (c *yarnCluster) options(t *testing.T) Options {
	o := testOptions(t)
	o.Deployer = "yarn"
	o.Checkpoints.Dir = "file://" + filepath.Join(t.TempDir(), "checkpoints")
	o.Yarn.ResourceManager = []string{c.rm.URL()}
	o.HDFS.User = "tester"
	return o
}

// factory opens the YARN deployer from the options, staging to a local
// directory instead of HDFS.
func (c *yarnCluster) factory(o Options, log *logrus.Entry, _ func(string)) (deploy.Deployer, error) {
	return yarndeploy.Open(o.yarnConfig(), c.fs, log)
}

func (c *yarnCluster) countGET(match func(string) bool) int {
	n := 0
	for _, r := range c.rm.Requests() {
		if r.Method == http.MethodGet && match(r.Path) {
			n++
		}
	}
	return n
}

func startYARNDaemon(t *testing.T, o Options, c *yarnCluster) *testDaemon {
	t.Helper()
	d, err := newDaemon(o, testLogger(), c.factory)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return &testDaemon{Daemon: d, t: t, base: "http://" + d.Addr()}
}

// The daemon runs a job as a YARN application: RUNNING through the RM proxy,
// an AM crash that YARN recovers by itself, an application out of AM
// attempts that the restart policy replaces, and a stop with savepoint
// whose result comes back in the application's diagnostics.
func TestDaemonOnYARN(t *testing.T) {
	c := newYARNCluster(t)
	o := c.options(t)
	td := startYARNDaemon(t, o, c)

	j := submit(t, td, goodSpec)
	j = td.waitFor(j.ID, "RUNNING", stateIs(StateRunning))
	app := j.Deployment.ApplicationID
	// The endpoint is the job master itself (amRPCAddress), not the RM's
	// proxy, which would refuse the POSTs of stop and savepoint.
	if s, _ := c.rm.App(app); j.Deployment.Deployer != "yarn" || app == "" || !strings.HasPrefix(j.Deployment.Endpoint, "http://127.0.0.1:") || s.State != rmtest.StateRunning {
		t.Fatalf("deployment = %+v", j.Deployment)
	}
	s, _ := c.rm.App(app)
	if s.Name != "clicks" || !strings.Contains(s.Commands[0], "--checkpoint-dir "+o.Checkpoints.Dir+"/"+j.ID+" ") ||
		!strings.Contains(s.Commands[0], "--attempt 1 ") {
		t.Fatalf("application = %+v", s)
	}
	// A URL is passed on, not taken for a relative path ("file:/…" below the working directory).
	if _, err := os.Stat("file:"); err == nil {
		t.Error("the daemon created a local directory named after the checkpoints.dir URL")
	}

	// The AM dies; YARN starts attempt 2 of the same application.
	if err := c.rm.FailAttempt(app, "Container killed on request. Exit code is 137"); err != nil {
		t.Fatal(err)
	}
	waitApp(t, c, app, func(s rmtest.Snapshot) bool { return s.State == "RUNNING" && len(s.Attempts) == 2 })
	for range 3 { // a few cycles: nothing for the daemon to do
		td.waitCycle()
	}
	if j = td.job(j.ID); j.State != StateRunning || j.Restarts != 0 || j.Deployment.Attempt != 1 {
		t.Fatalf("after YARN restarted the AM: %s, restarts %d, deployment %+v", j.State, j.Restarts, j.Deployment)
	}

	// Out of AM attempts: the application FAILED, the restart policy makes
	// deployment 2, a new application.
	if err := c.rm.FailAttempt(app, "Exit code is 1"); err != nil {
		t.Fatal(err)
	}
	j = td.waitFor(j.ID, "restarted", func(v JobView) bool { return v.State == StateRunning && v.Restarts == 1 })
	if j.Deployment.Attempt != 2 || j.Deployment.ApplicationID == app || j.Deployment.ApplicationID == "" {
		t.Fatalf("deployment after the application failed: %+v", j.Deployment)
	}
	_, b := td.call("GET", "/api/v1/jobs/"+j.ID+"/events?limit=100", "")
	if !strings.Contains(string(b), "failed 2 times") {
		t.Errorf("the RM's diagnostics are not in the events: %s", b)
	}
	if _, err := c.fs.Stat("/user/tester/.staging/" + app); err == nil {
		t.Error("the failed application's staging directory is still there")
	}

	// Logs: a description with the links, not an error.
	code, b := td.call("GET", "/api/v1/jobs/"+j.ID+"/logs", "")
	if code != 200 || !strings.Contains(string(b), j.Deployment.ApplicationID) || !strings.Contains(string(b), "jobmaster.log") {
		t.Errorf("logs: %d %s", code, b)
	}

	// Stop with a savepoint: the AM unregisters with the result.
	if code, b := td.call("POST", "/api/v1/jobs/"+j.ID+"/stop", ""); code != 202 {
		t.Fatalf("stop: %d %s", code, b)
	}
	j = td.waitFor(j.ID, "STOPPED", stateIs(StateStopped))
	if !strings.Contains(j.Message, testSavepoint) || j.Deployment.Savepoint != testSavepoint || j.Deployment.FinalState != "FINISHED" {
		t.Fatalf("stopped job: %s; deployment %+v", j.Message, j.Deployment)
	}

	// Restarting continues from the savepoint; then cancel.
	if code, b := td.call("POST", "/api/v1/jobs/"+j.ID+"/restart", ""); code != 202 {
		t.Fatalf("restart: %d %s", code, b)
	}
	j = td.waitFor(j.ID, "RUNNING from the savepoint", stateIs(StateRunning))
	s, _ = c.rm.App(j.Deployment.ApplicationID)
	if !strings.Contains(s.Commands[0], "--restore "+testSavepoint+" ") {
		t.Errorf("command %q does not restore the savepoint", s.Commands[0])
	}
	td.call("POST", "/api/v1/jobs/"+j.ID+"/cancel", "")
	j = td.waitFor(j.ID, "CANCELED", stateIs(StateCanceled))
	if j.Deployment.FinalState != "CANCELED" {
		t.Errorf("cancelled deployment: %+v", j.Deployment)
	}
	if n := len(c.rm.AppIDs()); n != 3 {
		t.Errorf("%d applications, want 3 (one per deployment)", n)
	}
}

// A daemon restarted while its jobs run on YARN adopts them.
func TestDaemonOnYARNRestartAdopts(t *testing.T) {
	c := newYARNCluster(t)
	o := c.options(t)
	td := startYARNDaemon(t, o, c)
	j := submit(t, td, goodSpec)
	j = td.waitFor(j.ID, "RUNNING", stateIs(StateRunning))
	if err := td.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	td2 := startYARNDaemon(t, o, c)
	for range 3 {
		td2.waitCycle()
	}
	j2 := td2.job(j.ID)
	if j2.State != StateRunning || j2.Deployment.ApplicationID != j.Deployment.ApplicationID || len(c.rm.AppIDs()) != 1 {
		t.Fatalf("after the daemon restarted: %s, deployment %+v, applications %v", j2.State, j2.Deployment, c.rm.AppIDs())
	}
}

// However many jobs run, a watch cycle asks the RM one question.
func TestDaemonOnYARNOneListPerCycle(t *testing.T) {
	c := newYARNCluster(t)
	td := startYARNDaemon(t, c.options(t), c)
	const jobs = 6
	var ids []string
	for i := range jobs {
		spec := strings.Replace(goodSpec, "name: clicks", "name: clicks-"+string(rune('a'+i)), 1)
		ids = append(ids, submit(t, td, spec).ID)
	}
	for _, id := range ids {
		td.waitFor(id, "RUNNING", stateIs(StateRunning))
	}
	td.waitCycle()
	isList := func(p string) bool { return p == "/ws/v1/cluster/apps" }
	isReport := func(p string) bool { return strings.HasPrefix(p, "/ws/v1/cluster/apps/application_") }
	c0, lists0, reports0 := td.watcher.cycles.Load(), c.countGET(isList), c.countGET(isReport)
	for range 5 {
		td.waitCycle()
	}
	c1, lists1, reports1 := td.watcher.cycles.Load(), c.countGET(isList), c.countGET(isReport)
	cycles, lists := int(c1-c0), lists1-lists0
	if lists < cycles-1 || lists > cycles+1 {
		t.Errorf("%d list requests in %d cycles of %d jobs, want one per cycle", lists, cycles, jobs)
	}
	if reports1 != reports0 {
		t.Errorf("%d application reports in %d cycles; the listing must serve every job", reports1-reports0, cycles)
	}
}

// waitCycle waits until the watcher has completed one more cycle.
func (td *testDaemon) waitCycle() {
	td.t.Helper()
	target := td.watcher.cycles.Load() + 1
	deadline := time.Now().Add(10 * time.Second)
	for td.watcher.cycles.Load() < target {
		if time.Now().After(deadline) {
			td.t.Fatal("no watch cycle completed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitApp(t *testing.T, c *yarnCluster, id string, cond func(rmtest.Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _ := c.rm.App(id)
		if cond(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("application %s: %s, %d attempts", id, s.State, len(s.Attempts))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
