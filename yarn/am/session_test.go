package am

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/nm"
	"github.com/tidewatch/tidewatch/yarn/rm"
	"github.com/tidewatch/tidewatch/yarn/yarntest"
)

// The tests below run a Session against the fake cluster of yarntest: the
// test process acts as the AM of an application whose AM container only
// sleeps, with that container's environment and AMRM token.

const testTrackingURL = "http://127.0.0.1:40123"

// testApp submits an application and returns its id and the environment
// of its AM container, once launched.
func testApp(t *testing.T, c *yarntest.Cluster) (string, func(string) string) {
	t.Helper()
	ctx := context.Background()
	client, err := rm.New(rm.Options{BaseURLs: []string{c.RM.URL()}, User: "tidewatch"})
	if err != nil {
		t.Fatal(err)
	}
	app, err := client.NewApplication(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = client.Submit(ctx, &rm.ApplicationSubmission{
		ApplicationID: app.ApplicationID, Name: "session", ApplicationType: "TEST", Queue: "default", MaxAppAttempts: 1,
		Resource: rm.Resource{MemoryMB: 1024, VCores: 1}, AMContainerSpec: rm.ContainerLaunchContext{Commands: []string{"sleep 60"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	waitUntil(t, "the AM container", func() bool { env = c.AMEnvironment(app.ApplicationID); return env != nil })
	return app.ApplicationID, func(k string) string { return env[k] }
}

func newTestCluster(t *testing.T) *yarntest.Cluster {
	t.Helper()
	return newTestClusterWith(t, yarntest.Options{})
}

func newTestClusterWith(t *testing.T, opts yarntest.Options) *yarntest.Cluster {
	t.Helper()
	opts.Dir = t.TempDir()
	c, err := yarntest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// waitUntil polls cond until it holds or 20s have passed.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// heartbeats counts the session's allocate calls (through Progress).
type heartbeats struct{ n atomic.Int64 }

func (h *heartbeats) progress() float32 { h.n.Add(1); return 0.5 }

// wait waits for n more heartbeats.
func (h *heartbeats) wait(t *testing.T, n int64) {
	t.Helper()
	target := h.n.Load() + n
	waitUntil(t, fmt.Sprintf("%d heartbeats", n), func() bool { return h.n.Load() >= target })
}

func appState(t *testing.T, c *yarntest.Cluster, app string) (state, finalStatus, diagnostics string) {
	t.Helper()
	s, ok := c.RM.App(app)
	if !ok {
		t.Fatalf("no application %s", app)
	}
	return s.State, s.FinalStatus, s.Diagnostics
}

// TestFinishRegistersAgainAfterRMRestart: the RM restarted (work-preserving)
// after the last heartbeat; unregistering gets ApplicationMasterNotRegistered,
// so Finish registers again, with the original host, port and tracking URL,
// and unregisters (§6.4.5, §8.1) rather than leaving the attempt to fail.
func TestFinishRegistersAgainAfterRMRestart(t *testing.T) {
	c := newTestCluster(t)
	app, getenv := testApp(t, c)
	s, err := Start(context.Background(), testTrackingURL, Options{Getenv: getenv, Heartbeat: time.Hour, RPCPort: 40123, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.LoseRegistrations()
	if err := s.Finish(context.Background(), Result{State: "FINISHED", Savepoint: "hdfs://nn/sp"}); err != nil {
		t.Fatalf("Finish after an RM restart: %v", err)
	}
	if state, final, diag := appState(t, c, app); state != "FINISHED" || final != "SUCCEEDED" || !strings.Contains(diag, "hdfs://nn/sp") {
		t.Errorf("application %s/%s %q, want FINISHED/SUCCEEDED with the result", state, final, diag)
	}
	regs := c.Registrations(app)
	if len(regs) != 2 || regs[1] != regs[0] || regs[1].TrackingURL != testTrackingURL || regs[1].RPCPort != 40123 {
		t.Errorf("registrations %+v, want the first repeated", regs)
	}
}

// TestHeartbeatRegistersAgainAfterRMRestart: the heartbeat registers again
// after an RM restart with the original host, port and tracking URL (an
// empty URL would become N/A and break the RM proxy's link), and goes on.
func TestHeartbeatRegistersAgainAfterRMRestart(t *testing.T) {
	c := newTestCluster(t)
	app, getenv := testApp(t, c)
	var hb heartbeats
	s, err := Start(context.Background(), testTrackingURL, Options{Getenv: getenv, Heartbeat: 10 * time.Millisecond, RPCPort: 40123,
		Progress: hb.progress, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hb.wait(t, 2)
	c.LoseRegistrations()
	waitUntil(t, "a second registration", func() bool { return len(c.Registrations(app)) == 2 })
	regs := c.Registrations(app)
	if regs[1] != regs[0] || regs[1].TrackingURL != testTrackingURL || regs[1].Host != "127.0.0.1" {
		t.Errorf("registered again with %+v, want %+v", regs[1], regs[0])
	}
	hb.wait(t, 3)
	if err := s.Finish(context.Background(), Result{State: "FINISHED"}); err != nil {
		t.Fatal(err)
	}
	if state, final, _ := appState(t, c, app); state != "FINISHED" || final != "SUCCEEDED" {
		t.Errorf("application %s/%s", state, final)
	}
}

func sleepWorkers(count int) *WorkerOptions {
	return &WorkerOptions{
		Count:    count,
		Resource: amrm.Resource{MemoryMB: 512, VCores: 1},
		Launch: func(int) (nm.LaunchContext, error) {
			return nm.LaunchContext{Commands: []string{"sleep 30"}}, nil
		},
	}
}

func running(ws []WorkerStatus) int {
	n := 0
	for _, w := range ws {
		if w.State == WorkerRunning {
			n++
		}
	}
	return n
}

// TestWorkersGetNoSurplusContainers: the scheduler allocates between
// heartbeats and an ask replaces its outstanding count, so an AM that
// re-sent its ask every heartbeat got containers it then released. The
// session asks only when the count it wants changes: it gets exactly one
// container per worker, and one per replacement.
func TestWorkersGetNoSurplusContainers(t *testing.T) {
	c := newTestCluster(t)
	app, getenv := testApp(t, c)
	var hb heartbeats
	s, err := Start(context.Background(), testTrackingURL, Options{Getenv: getenv, Heartbeat: 10 * time.Millisecond,
		Progress: hb.progress, Workers: sleepWorkers(3), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitUntil(t, "3 running workers", func() bool { return running(s.Workers()) == 3 })
	hb.wait(t, 10)
	if wc := c.WorkerContainers(app); len(wc) != 3 {
		t.Fatalf("%d containers allocated for 3 workers, want 3: %+v", len(wc), wc)
	}

	// A lost worker is replaced by one new container.
	lost := s.Workers()[1].ContainerID
	if err := c.KillContainer(lost); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the replacement", func() bool {
		ws := s.Workers()
		return running(ws) == 3 && ws[1].ContainerID != lost
	})
	hb.wait(t, 10)
	if wc := c.WorkerContainers(app); len(wc) != 4 {
		t.Fatalf("%d containers allocated for 3 workers and 1 replacement, want 4: %+v", len(wc), wc)
	}
	if err := s.StopWorkers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(context.Background(), Result{State: "CANCELED"}); err != nil {
		t.Fatal(err)
	}
}

// TestWorkersAskedForAgainAfterRMRestart: the RM loses the outstanding asks
// in a restart; after registering again the session sends its ask again
// although the count it wants has not changed. With one container allowed,
// worker 2 waits on an outstanding ask while worker 1 runs; the RM
// restarts; once worker 1 has finished its share, worker 2 gets the slot.
func TestWorkersAskedForAgainAfterRMRestart(t *testing.T) {
	c := newTestClusterWith(t, yarntest.Options{MaxContainers: 1})
	app, getenv := testApp(t, c)
	done := filepath.Join(t.TempDir(), "done")
	w := sleepWorkers(2)
	w.Launch = func(k int) (nm.LaunchContext, error) {
		if k == 1 {
			return nm.LaunchContext{Commands: []string{fmt.Sprintf("sh -c 'while [ ! -e %s ]; do sleep 0.01; done'", done)}}, nil
		}
		return nm.LaunchContext{Commands: []string{"sleep 30"}}, nil
	}
	var hb heartbeats
	s, err := Start(context.Background(), testTrackingURL, Options{Getenv: getenv, Heartbeat: 10 * time.Millisecond,
		Progress: hb.progress, Workers: w, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitUntil(t, "worker 1 running", func() bool { return s.Workers()[0].State == WorkerRunning })
	hb.wait(t, 3)
	c.LoseRegistrations()
	waitUntil(t, "a second registration", func() bool { return len(c.Registrations(app)) == 2 })
	hb.wait(t, 3)
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "worker 2 running after worker 1 finished", func() bool {
		ws := s.Workers()
		return ws[0].State == WorkerFinished && ws[1].State == WorkerRunning
	})
	if wc := c.WorkerContainers(app); len(wc) != 2 {
		t.Errorf("containers %+v, want 2", wc)
	}
}

// TestShutdownWhenAttemptGone: when the RM no longer knows the attempt
// (ApplicationAttemptNotFound), the heartbeat stops and OnShutdown is
// called once; the workers can still be stopped through their NodeManager,
// and Finish does not call the RM.
func TestShutdownWhenAttemptGone(t *testing.T) {
	c := newTestCluster(t)
	app, getenv := testApp(t, c)
	var mu sync.Mutex
	var shutdowns []error
	s, err := Start(context.Background(), testTrackingURL, Options{Getenv: getenv, Heartbeat: 10 * time.Millisecond,
		Workers: sleepWorkers(1), Log: quietLog(), OnShutdown: func(err error) {
			mu.Lock()
			shutdowns = append(shutdowns, err)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitUntil(t, "a running worker", func() bool { return running(s.Workers()) == 1 })
	if err := c.ForgetAttempt(app); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "OnShutdown", func() bool { mu.Lock(); defer mu.Unlock(); return len(shutdowns) > 0 })
	if err := s.StopWorkers(context.Background()); err != nil {
		t.Fatalf("stopping the workers of a gone attempt: %v", err)
	}
	waitUntil(t, "the worker container stopped", func() bool {
		wc := c.WorkerContainers(app)
		return len(wc) == 1 && wc[0].Completed
	})
	if wc := c.WorkerContainers(app); wc[0].ExitStatus != nm.ExitKilledByAppMaster {
		t.Errorf("worker container %+v, want stopped by the AM", wc[0])
	}
	if err := s.Finish(context.Background(), Result{State: "CANCELED"}); !errors.Is(err, amrm.ErrShutdown) {
		t.Errorf("Finish after the attempt is gone: %v, want ErrShutdown", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(shutdowns) != 1 || !errors.Is(shutdowns[0], amrm.ErrShutdown) {
		t.Errorf("OnShutdown calls %v, want one with ErrShutdown", shutdowns)
	}
	if state, _, _ := appState(t, c, app); state != "RUNNING" {
		t.Errorf("application %s: the AM unregistered", state)
	}
}

// TestWorkerLargerThanQueueMaximum: worker containers larger than the
// queue's maximum container size could never be allocated (every allocate
// would fail with InvalidResourceRequestException): Start fails, naming
// both sizes, and ends the application FAILED with the reason.
func TestWorkerLargerThanQueueMaximum(t *testing.T) {
	c := newTestCluster(t)
	app, getenv := testApp(t, c)
	w := sleepWorkers(1)
	w.Resource = amrm.Resource{MemoryMB: 16384, VCores: 2}
	s, err := Start(context.Background(), testTrackingURL, Options{Getenv: getenv, Heartbeat: 10 * time.Millisecond, Workers: w, Log: quietLog()})
	if err == nil {
		s.Close()
		t.Fatal("Start accepted workers of 16384 MB on a cluster whose maximum is 8192 MB")
	}
	if !errors.Is(err, ErrWorkerTooLarge) || !strings.Contains(err.Error(), "memory:16384 MB, vCores:2") || !strings.Contains(err.Error(), "memory:8192 MB, vCores:8") {
		t.Errorf("error %q names not both sizes", err)
	}
	state, final, diag := appState(t, c, app)
	if state != "FINISHED" || final != "FAILED" {
		t.Errorf("application %s/%s, want FINISHED/FAILED", state, final)
	}
	if r, ok := ParseResult(diag); !ok || r.State != "FAILED" || !strings.Contains(r.Error, "16384") {
		t.Errorf("diagnostics %q carry no FAILED result with the reason", diag)
	}
	if wc := c.WorkerContainers(app); len(wc) != 0 {
		t.Errorf("containers allocated: %+v", wc)
	}
}
