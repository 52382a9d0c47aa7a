package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/supportlayer"
	"github.com/tidewatch/tidewatch/supportlayer/apiclient"
	"github.com/tidewatch/tidewatch/supportlayer/jobmaster"
)

// TestMain lets this test binary stand in for the tidewatch binary: the daemon
// under test starts it as `tidewatch am`, with TIDEWATCH_E2E_MAIN set.
func TestMain(m *testing.M) {
	if os.Getenv("TIDEWATCH_E2E_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const e2eSpec = `name: e2e-clicks
checkpoint:
  interval: 300ms
  retained: 3
source:
  type: datagen
  datagen:
    rate: 2000
    keys: 20
    seed: 7
keyBy: key
window:
  type: tumbling
  size: 200ms
aggregate: count
sink:
  type: file
  file:
    path: output/counts
`

type jobView = supportlayer.JobView

// defaultTestOptions is the embedded default in a temporary directory, with
// this test binary as the runtime and a 2s watch interval.
func defaultTestOptions(t *testing.T) supportlayer.Options {
	opts := supportlayer.DefaultOptions()
	opts.Listen = "127.0.0.1:0"
	opts.DataDir = t.TempDir()
	opts.Runtime.Binary = os.Args[0]
	opts.Watch.Interval = 2 * time.Second
	return opts
}

type e2e struct {
	t      *testing.T
	opts   supportlayer.Options
	daemon *supportlayer.Daemon
	api    *apiclient.Client
}

func (e *e2e) startDaemon() {
	e.t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	d, err := supportlayer.New(e.opts, logrus.NewEntry(l))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.daemon = d
	if e.api, err = apiclient.New("http://"+d.Addr(), "", 10*time.Second); err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2e) stopDaemon() {
	if e.daemon != nil {
		e.daemon.Stop(context.Background())
		e.daemon = nil
	}
}

// waitJob polls until cond holds, failing after a deadline.
func (e *e2e) waitJob(id, what string, limit time.Duration, cond func(supportlayer.JobView) bool) supportlayer.JobView {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		j, err := e.api.Job(context.Background(), id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("waited %s for %s: job %+v, err %v; log:\n%s", limit, what, j, err, e.log(id))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (e *e2e) log(id string) string {
	var b bytes.Buffer
	_ = e.api.Logs(context.Background(), id, 4096, &b)
	return b.String()
}

func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err != nil || !bytes.Contains(stat, []byte(") Z "))
}

// jobMasters counts live `am` processes of a job, from /proc.
func jobMasters(t *testing.T, jobID string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, []byte("\x00am\x00")) || !bytes.Contains(b, []byte(jobID)) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if processAlive(pid) {
			n++
		}
	}
	return n
}

// outputLines counts the lines of the committed part files in dir.
func outputLines(t *testing.T, dir string) int {
	files, err := filepath.Glob(filepath.Join(dir, "part-*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		n += bytes.Count(b, []byte("\n"))
	}
	return n
}

func TestEndToEndLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real job processes")
	}
	t.Setenv("TIDEWATCH_E2E_MAIN", "1")
	opts := defaultTestOptions(t)
	e := &e2e{t: t, opts: opts}
	e.startDaemon()
	defer e.stopDaemon()

	start := time.Now()
	j, err := e.api.Submit(context.Background(), []byte(e2eSpec), "e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { // never leave a job process behind
		if j, err := e.api.Job(context.Background(), j.ID); err == nil && j.Deployment != nil && processAlive(j.Deployment.PID) {
			syscall.Kill(j.Deployment.PID, syscall.SIGKILL)
		}
	}()
	j = e.waitJob(j.ID, "RUNNING", 30*time.Second, func(j supportlayer.JobView) bool { return j.State == supportlayer.StateRunning })
	t.Logf("submit → RUNNING: %s", time.Since(start).Round(time.Millisecond))
	if j.Deployment == nil || j.Deployment.PID == 0 || j.Deployment.Endpoint == "" {
		t.Fatalf("deployment = %+v", j.Deployment)
	}
	out := filepath.Join(opts.DataDir, "jobs", j.ID, "output", "counts")
	jm := jobmaster.New(2 * time.Second)

	// Wait for a completed checkpoint and some output, then kill the process.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := jm.Checkpoints(context.Background(), j.Deployment.Endpoint, j.ID)
		if err == nil && st.Counts.Completed >= 2 && outputLines(t, out) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint or output: %+v %v; log:\n%s", st, err, e.log(j.ID))
		}
		time.Sleep(25 * time.Millisecond)
	}
	firstPID := j.Deployment.PID
	linesBefore := outputLines(t, out)
	killed := time.Now()
	if err := syscall.Kill(firstPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	// The watcher brings it back from its latest checkpoint within two watch intervals.
	j = e.waitJob(j.ID, "restart", 30*time.Second, func(j supportlayer.JobView) bool {
		return j.Restarts == 1 && j.State == supportlayer.StateRunning && j.Deployment != nil && j.Deployment.Attempt == 2
	})
	restartedIn := j.Deployment.StartedAt.Sub(killed)
	t.Logf("SIGKILL → new deployment started: %s; → RUNNING: %s", restartedIn.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	if restartedIn > 2*opts.Watch.Interval {
		t.Errorf("restart took %s, more than two watch intervals (%s)", restartedIn, 2*opts.Watch.Interval)
	}
	if processAlive(firstPID) {
		t.Errorf("killed process %d still alive", firstPID)
	}
	st, err := jm.Checkpoints(context.Background(), j.Deployment.Endpoint, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Latest.Restored == nil || st.Latest.Restored.ExternalPath == "" {
		t.Fatalf("the new deployment did not restore a checkpoint: %+v", st.Latest)
	}
	t.Logf("restored from %s", st.Latest.Restored.ExternalPath)
	// The job master of attempt 2 reports the restart as Flink's numRestarts.
	resp, err := http.Get(j.Deployment.Endpoint + "/jobs/" + j.ID + "/metrics?get=numRestarts")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `[{"id":"numRestarts","value":"1"}]`; string(body) != want {
		t.Errorf("job metrics after the restart: %s, want %s", body, want)
	}
	// Output continues past what was there before the kill.
	deadline = time.Now().Add(30 * time.Second)
	for outputLines(t, out) <= linesBefore {
		if time.Now().After(deadline) {
			t.Fatalf("output did not continue after the restart (%d lines)", linesBefore)
		}
		time.Sleep(25 * time.Millisecond)
	}

	// Restarting the daemon adopts the job and starts no second copy.
	secondPID := j.Deployment.PID
	e.stopDaemon()
	e.startDaemon()
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, ready := 0, false
		if resp, err := httpGet("http://" + e.daemon.Addr() + "/readyz"); err == nil {
			code = resp
			ready = code == 200
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready: %d", code)
		}
		time.Sleep(25 * time.Millisecond)
	}
	j = e.waitJob(j.ID, "adopted", 10*time.Second, func(j supportlayer.JobView) bool { return j.State == supportlayer.StateRunning })
	if j.Deployment.PID != secondPID || j.Deployment.Attempt != 2 || j.Restarts != 1 {
		t.Fatalf("after daemon restart: pid %d attempt %d restarts %d; want pid %d attempt 2 restarts 1", j.Deployment.PID, j.Deployment.Attempt, j.Restarts, secondPID)
	}
	if n := jobMasters(t, j.ID); n != 1 {
		t.Fatalf("%d job master processes for the job, want 1", n)
	}

	// Stop: STOPPED with a savepoint, process gone.
	if _, err := e.api.Action(context.Background(), j.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	j = e.waitJob(j.ID, "STOPPED", 30*time.Second, func(j supportlayer.JobView) bool { return j.State == supportlayer.StateStopped })
	if processAlive(secondPID) {
		t.Fatalf("process %d alive after stop", secondPID)
	}
	if j.Deployment.Savepoint == "" {
		t.Errorf("stopped without a savepoint: %+v", j.Deployment)
	}
	if n := jobMasters(t, j.ID); n != 0 {
		t.Fatalf("%d job master processes after stop", n)
	}
	evs, err := e.api.Events(context.Background(), j.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	for _, want := range []string{"JOB_SUBMITTED", "JOB_RUNNING", "JOB_RESTARTING", "JOB_STOPPED"} {
		if !strings.Contains(strings.Join(types, " "), want) {
			t.Errorf("events %v lack %s", types, want)
		}
	}
}
