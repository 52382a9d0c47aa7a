package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/yarn/am"
	"github.com/tidewatch/tidewatch/yarn/rm"
	"github.com/tidewatch/tidewatch/yarn/yarntest"
)

// TestYARNWorkers runs the bounded exactly-once job, whose keyed parallelism
// (2) exceeds its container's vcores (1), as a YARN application on the fake
// cluster: the AM asks for a worker container and starts `tidewatch worker`
// in it through the NodeManager; the worker is SIGKILLed mid-run, reported
// lost, and replaced by a new container that resumes from the worker's own
// checkpoints; the AM waits for the worker to finish its share and ends the
// application SUCCEEDED. The committed output equals a one-process run's.
// The fake cluster runs with hadoop.rpc.protection=privacy.
func TestYARNWorkers(t *testing.T) {
	ref := newEOJob(t, "reference")
	want := ref.runToEnd(1, "latest", 2*time.Minute)

	j := newEOJob(t, "yarn")
	// The cluster runs with hadoop.rpc.protection=privacy: every AM-RM
	// and AM-NM connection carries its calls in 3DES-sealed WRAP messages.
	h := startWorkersApp(t, yarntest.Options{Dir: filepath.Join(t.TempDir(), "nm"), QOP: "auth-conf"}, j)
	cluster, client, app, ctx := h.cluster, h.client, h.app, context.Background()
	logs, waitFor, running := h.logs, h.waitFor, h.running

	// The worker checkpoints its share in a directory of its own; kill it
	// once it has a checkpoint there, while the job still has input to read.
	var first yarntest.WorkerContainer
	waitFor("a worker container", time.Minute, func() bool {
		r := running()
		if len(r) == 1 {
			first = r[0]
		}
		return len(r) == 1
	})
	workerCkpts := filepath.Join(j.ckptDir, "container-1-subtasks-1-1-of-2")
	waitFor("a checkpoint of the worker", time.Minute, func() bool {
		m, _ := filepath.Glob(filepath.Join(workerCkpts, "chk-*", "_metadata"))
		return len(m) > 0
	})
	if err := cluster.KillContainer(first.ID); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// Allocation is asynchronous, as on a real RM: the loss is reported in
	// one heartbeat, the new ask goes out in the next and its container
	// comes in the one after, when the AM starts it.
	waitFor("a replacement worker", time.Minute, func() bool {
		r := running()
		return len(r) == 1 && r[0].ID != first.ID && r[0].PID != 0
	})
	t.Logf("worker SIGKILL → replacement container started: %s", time.Since(killed).Round(time.Millisecond))

	// The job master lists its workers.
	var workerURL string
	a, err := client.Application(ctx, app.ApplicationID)
	if err != nil {
		t.Fatal(err)
	}
	waitFor("the job master to list the replacement", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + a.AMRPCAddress + "/jobs/" + j.jobID + "/workers")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct{ Workers []am.WorkerStatus }
		if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Workers) != 1 {
			return false
		}
		w := body.Workers[0]
		workerURL = w.URL
		return w.Index == 1 && w.Launches == 2 && strings.Contains(w.LastExit, "137") && w.URL != ""
	})
	// The worker registered its own REST endpoint, which serves its share.
	resp, err := http.Get(workerURL + "/jobs/" + j.jobID + "/checkpoints")
	if err != nil {
		t.Fatalf("the worker's endpoint %s: %v", workerURL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET checkpoints at the worker's endpoint: %s", resp.Status)
	}

	final := h.waitEnd(2 * time.Minute)
	if final.State != "FINISHED" || final.FinalStatus != "SUCCEEDED" {
		t.Fatalf("application ended %s/%s: %s\n%s", final.State, final.FinalStatus, final.Diagnostics, logs())
	}
	ws := cluster.WorkerContainers(app.ApplicationID)
	if len(ws) != 2 || ws[0].ExitStatus != 137 || ws[1].ExitStatus != 0 {
		t.Errorf("worker containers %+v, want a killed one (137) and its replacement (0)", ws)
	}
	if sched, nm := cluster.WrappedConnections(); sched < 1 || nm < 1 {
		t.Errorf("%d scheduler and %d NodeManager connections negotiated the privacy layer, want at least one each", sched, nm)
	}
	checkSameOutput(t, "AM and worker containers", want.lines, j.output())
}

// workersApp is a job spread over worker containers, submitted to a fake
// cluster as the deployer would.
type workersApp struct {
	t       *testing.T
	cluster *yarntest.Cluster
	client  *rm.Client
	app     *rm.NewApplication
	job     *eoJob
}

func startWorkersApp(t *testing.T, opts yarntest.Options, j *eoJob) *workersApp {
	t.Helper()
	cluster, client := newFakeYARNWith(t, opts)
	ctx := context.Background()
	resources := map[string]rm.LocalResource{"tidewatch": fileResource(t, executable(t)), "job.yaml": fileResource(t, j.spec)}
	encoded, err := am.EncodeLocalResources(resources)
	if err != nil {
		t.Fatal(err)
	}
	app, err := client.NewApplication(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = client.Submit(ctx, &rm.ApplicationSubmission{
		ApplicationID: app.ApplicationID, Name: "workers", ApplicationType: "TIDEWATCH", Queue: "default",
		MaxAppAttempts: 1, Resource: rm.Resource{MemoryMB: 1024, VCores: 1},
		AMContainerSpec: rm.ContainerLaunchContext{
			LocalResources: resources,
			Environment:    map[string]string{am.EnvLocalResources: encoded},
			Commands: []string{fmt.Sprintf("./tidewatch am --spec job.yaml --job-id %s --attempt 1 --work-dir . --checkpoint-dir %s "+
				"--listen 127.0.0.1:0 --restore latest --log-format json 1><LOG_DIR>/jobmaster.log 2>&1", j.jobID, j.ckptDir)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &workersApp{t: t, cluster: cluster, client: client, app: app, job: j}
}

// logs tails the AM's and the workers' logs, for failure messages.
func (h *workersApp) logs() string {
	var b strings.Builder
	for _, l := range h.cluster.Launches() {
		data, _ := os.ReadFile(filepath.Join(l.Dir, "logs", "jobmaster.log"))
		fmt.Fprintf(&b, "--- AM %s:\n%s", l.ContainerID, tail(string(data), 3000))
	}
	for _, w := range h.cluster.WorkerContainers(h.app.ApplicationID) {
		data, _ := os.ReadFile(filepath.Join(w.Dir, "logs", "worker.log"))
		fmt.Fprintf(&b, "--- worker %s (exit %d, %s):\n%s", w.ID, w.ExitStatus, w.Diagnostics, tail(string(data), 3000))
	}
	return b.String()
}

// waitFor polls ok until it holds, failing if the application ends first.
func (h *workersApp) waitFor(what string, limit time.Duration, ok func() bool) {
	h.t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(10 * time.Millisecond) {
		a, err := h.client.Application(context.Background(), h.app.ApplicationID)
		if err == nil && rm.IsFinalState(a.State) {
			h.t.Fatalf("waiting for %s: the application ended %s/%s: %s\n%s", what, a.State, a.FinalStatus, a.Diagnostics, h.logs())
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s\n%s", what, h.logs())
		}
	}
}

// running lists the worker containers that have not completed.
func (h *workersApp) running() []yarntest.WorkerContainer {
	var out []yarntest.WorkerContainer
	for _, w := range h.cluster.WorkerContainers(h.app.ApplicationID) {
		if !w.Completed {
			out = append(out, w)
		}
	}
	return out
}

// waitEnd waits for the application to end.
func (h *workersApp) waitEnd(limit time.Duration) *rm.Application {
	h.t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		a, err := h.client.Application(context.Background(), h.app.ApplicationID)
		if err != nil {
			h.t.Fatal(err)
		}
		if rm.IsFinalState(a.State) {
			return a
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the application did not end: %s\n%s", a.State, h.logs())
		}
	}
}

// TestYARNStopSpreadJob stops an unbounded job spread over an AM and a
// worker container: the worker sees the stopped (FINISHED) job master,
// takes a final checkpoint of its share and exits by itself, and the AM
// waits for that instead of having the NodeManager kill it (whose grace
// after SIGTERM, 250 ms by default, is too short for a checkpoint).
func TestYARNStopSpreadJob(t *testing.T) {
	j := newEOJob(t, "unbounded")
	spec, err := os.ReadFile(j.spec)
	if err != nil {
		t.Fatal(err)
	}
	unbounded := regexp.MustCompile(`count: \d+`).ReplaceAll(spec, []byte("count: 0"))
	if err := os.WriteFile(j.spec, unbounded, 0o644); err != nil {
		t.Fatal(err)
	}
	h := startWorkersApp(t, yarntest.Options{Dir: filepath.Join(t.TempDir(), "nm")}, j)
	h.waitFor("a running worker", time.Minute, func() bool {
		r := h.running()
		return len(r) == 1 && r[0].PID != 0
	})
	workerCkpts := filepath.Join(j.ckptDir, "container-1-subtasks-1-1-of-2")
	h.waitFor("a checkpoint of the worker", time.Minute, func() bool {
		m, _ := filepath.Glob(filepath.Join(workerCkpts, "chk-*", "_metadata"))
		return len(m) > 0
	})
	a, err := h.client.Application(context.Background(), h.app.ApplicationID)
	if err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now()
	resp, err := http.Post("http://"+a.AMRPCAddress+"/jobs/"+j.jobID+"/stop", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST stop: %s", resp.Status)
	}
	final := h.waitEnd(time.Minute)
	if final.FinalStatus != "SUCCEEDED" {
		t.Fatalf("application ended %s/%s: %s\n%s", final.State, final.FinalStatus, final.Diagnostics, h.logs())
	}
	ws := h.cluster.WorkerContainers(h.app.ApplicationID)
	if len(ws) != 1 || ws[0].ExitStatus != 0 {
		t.Fatalf("worker containers %+v, want one that exited by itself (0), not stopped (-105)\n%s", ws, h.logs())
	}
	// The worker's newest checkpoint was taken after the stop.
	m, _ := filepath.Glob(filepath.Join(workerCkpts, "chk-*", "_metadata"))
	newest := time.Time{}
	for _, f := range m {
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	if !newest.After(stopAt) {
		t.Errorf("the worker's newest checkpoint (%s) is older than the stop (%s)", newest, stopAt)
	}
	t.Logf("stop → application FINISHED: %s", time.Since(stopAt).Round(time.Millisecond))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
