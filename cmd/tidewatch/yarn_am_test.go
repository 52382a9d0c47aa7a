package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner"
	"github.com/tidewatch/tidewatch/yarn/am"
	"github.com/tidewatch/tidewatch/yarn/rm"
	"github.com/tidewatch/tidewatch/yarn/yarntest"
)

// TestYARNApplicationMaster runs `tidewatch am` as the ApplicationMaster of
// a YARN application on the one-machine fake cluster (fake RM REST server,
// IPC scheduler with SASL DIGEST-MD5 and AMRM tokens, local container
// launcher): the application becomes RUNNING when the AM registers, the job
// master answers through the RM's proxy, a SIGKILLed AM is restarted by YARN
// as attempt 2 which restores the newest checkpoint, and a stop through the
// proxy ends the application FINISHED/SUCCEEDED with the savepoint in the
// diagnostics.
func TestYARNApplicationMaster(t *testing.T) {
	dir := t.TempDir()
	cluster, client := newFakeYARN(t, dir)
	ctx := context.Background()
	bin := executable(t)
	specPath := filepath.Join(dir, "job.yaml")
	// The sink writes where every attempt's container can reach it (on a
	// cluster, HDFS): a relative path would be inside one container.
	spec := strings.Replace(e2eSpec, "path: output/counts", "path: "+filepath.Join(dir, "output"), 1)
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	jobID := jobrunner.NewJobID()
	ckDir := filepath.Join(dir, "checkpoints")
	app, err := client.NewApplication(ctx)
	if err != nil {
		t.Fatal(err)
	}
	submitted := time.Now()
	err = client.Submit(ctx, &rm.ApplicationSubmission{
		ApplicationID: app.ApplicationID, Name: "e2e-clicks", ApplicationType: "TIDEWATCH", Queue: "default",
		MaxAppAttempts: 2, Resource: rm.Resource{MemoryMB: 1024, VCores: 1}, Tags: rm.Tags{"tidewatch-job-" + jobID},
		AMContainerSpec: rm.ContainerLaunchContext{
			LocalResources: map[string]rm.LocalResource{"tidewatch": fileResource(t, bin), "job.yaml": fileResource(t, specPath)},
			Commands: []string{fmt.Sprintf("./tidewatch am --spec job.yaml --job-id %s --attempt 1 --work-dir . --checkpoint-dir %s "+
				"--listen 127.0.0.1:0 --restore latest --log-format json 1><LOG_DIR>/jobmaster.log 2>&1", jobID, ckDir)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitApp := func(what string, ok func(*rm.Application) bool) *rm.Application {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			a, err := client.Application(ctx, app.ApplicationID)
			if err != nil {
				t.Fatal(err)
			}
			if ok(a) {
				return a
			}
			if time.Now().After(deadline) || a.State == "FAILED" {
				var logs string
				if ls := cluster.Launches(); len(ls) > 0 {
					b, _ := os.ReadFile(filepath.Join(ls[len(ls)-1].Dir, "logs", "jobmaster.log"))
					logs = string(b)
				}
				t.Fatalf("%s: application is %s/%s: %s\nlast AM log:\n%s", what, a.State, a.FinalStatus, a.Diagnostics, logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	a := waitApp("RUNNING", func(a *rm.Application) bool { return a.State == "RUNNING" })
	t.Logf("submit → RUNNING (AM registered): %s", time.Since(submitted).Round(time.Millisecond))

	// The job master answers through the RM's proxy.
	getJSON := func(path string) map[string]any {
		t.Helper()
		resp, err := http.Get(strings.TrimSuffix(a.TrackingURL, "/") + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if resp.StatusCode != 200 || json.Unmarshal(b, &m) != nil {
			t.Fatalf("GET %s through the proxy: %d %s", path, resp.StatusCode, b)
		}
		return m
	}
	waitJob := func(what string, ok func(map[string]any) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok(getJSON("/jobs/" + jobID + "/checkpoints")) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	completed := func(m map[string]any) float64 {
		c, _ := m["counts"].(map[string]any)
		n, _ := c["completed"].(float64)
		return n
	}
	waitJob("a checkpoint", func(m map[string]any) bool { return completed(m) > 0 })

	// SIGKILL: YARN starts attempt 2, which restores the newest checkpoint.
	pid := cluster.PID(app.ApplicationID)
	if pid == 0 {
		t.Fatal("no AM process")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	a = waitApp("attempt 2 RUNNING", func(a *rm.Application) bool {
		return a.State == "RUNNING" && len(cluster.Launches()) == 2 && cluster.PID(app.ApplicationID) != pid
	})
	t.Logf("SIGKILL → attempt 2 RUNNING: %s", time.Since(killed).Round(time.Millisecond))
	waitJob("restored from a checkpoint", func(m map[string]any) bool {
		latest, _ := m["latest"].(map[string]any)
		return latest != nil && latest["restored"] != nil
	})

	// The proxy forwards GET and PUT only; the AM registered its REST port as
	// its RPC port, so amRPCAddress reaches the job master for a POST: stop
	// with a savepoint → FINISHED/SUCCEEDED, result in the diagnostics.
	stopURL := "/jobs/" + jobID + "/stop"
	resp, err := http.Post(strings.TrimSuffix(a.TrackingURL, "/")+stopURL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST through the proxy: %d, want 405 as the RM's proxy answers", resp.StatusCode)
	}
	if a.AMRPCAddress == "" {
		t.Fatal("no amRPCAddress in the application report")
	}
	resp, err = http.Post("http://"+a.AMRPCAddress+stopURL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("stop at amRPCAddress: %d", resp.StatusCode)
	}
	a = waitApp("FINISHED", func(a *rm.Application) bool { return a.State == "FINISHED" })
	if a.FinalStatus != "SUCCEEDED" {
		t.Errorf("final status %s, want SUCCEEDED (%s)", a.FinalStatus, a.Diagnostics)
	}
	res, ok := am.ParseResult(a.Diagnostics)
	if !ok || res.State != "FINISHED" || !strings.Contains(res.Savepoint, "savepoint-") {
		t.Errorf("diagnostics %q carry no FINISHED result with a savepoint", a.Diagnostics)
	}
}

// TestYARNAttemptGone: when the RM no longer knows the attempt (it was
// killed, or the RM restarted without recovery: allocate answers
// ApplicationAttemptNotFoundException), the AM stops the job and exits
// non-zero without trying to unregister, instead of running on without a
// heartbeat.
func TestYARNAttemptGone(t *testing.T) {
	dir := t.TempDir()
	cluster, client := newFakeYARN(t, dir)
	ctx := context.Background()
	specPath := filepath.Join(dir, "job.yaml")
	spec := strings.Replace(e2eSpec, "path: output/counts", "path: "+filepath.Join(dir, "output"), 1)
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	jobID := jobrunner.NewJobID()
	app, err := client.NewApplication(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = client.Submit(ctx, &rm.ApplicationSubmission{
		ApplicationID: app.ApplicationID, Name: "e2e-clicks", ApplicationType: "TIDEWATCH", Queue: "default",
		MaxAppAttempts: 1, Resource: rm.Resource{MemoryMB: 1024, VCores: 1},
		AMContainerSpec: rm.ContainerLaunchContext{
			LocalResources: map[string]rm.LocalResource{"tidewatch": fileResource(t, executable(t)), "job.yaml": fileResource(t, specPath)},
			Commands: []string{fmt.Sprintf("./tidewatch am --spec job.yaml --job-id %s --attempt 1 --work-dir . --checkpoint-dir %s "+
				"--listen 127.0.0.1:0 --restore latest --log-format json 1><LOG_DIR>/jobmaster.log 2>&1", jobID, filepath.Join(dir, "checkpoints"))},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	amLog := func() string {
		ls := cluster.Launches()
		if len(ls) == 0 {
			return ""
		}
		b, _ := os.ReadFile(filepath.Join(ls[0].Dir, "logs", "jobmaster.log"))
		return string(b)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\nAM log:\n%s", what, tail(amLog(), 3000))
			}
		}
	}
	waitFor("RUNNING", func() bool {
		a, err := client.Application(ctx, app.ApplicationID)
		return err == nil && a.State == "RUNNING" && cluster.PID(app.ApplicationID) != 0
	})
	if err := cluster.ForgetAttempt(app.ApplicationID); err != nil {
		t.Fatal(err)
	}
	forgotten := time.Now()
	waitFor("the AM to exit", func() bool { return cluster.PID(app.ApplicationID) == 0 })
	t.Logf("attempt forgotten → AM exited: %s", time.Since(forgotten).Round(time.Millisecond))
	a, err := client.Application(ctx, app.ApplicationID)
	if err != nil {
		t.Fatal(err)
	}
	// The fake fails the attempt of an AM container that exits without
	// unregistering; with one attempt allowed, the application fails.
	if a.State != "FAILED" {
		t.Errorf("application %s/%s: %s", a.State, a.FinalStatus, a.Diagnostics)
	}
	log := amLog()
	for _, want := range []string{"the RM ended this application attempt", "ApplicationAttemptNotFoundException"} {
		if !strings.Contains(log, want) {
			t.Errorf("AM log lacks %q:\n%s", want, tail(log, 3000))
		}
	}
	if strings.Contains(log, "unregistering from the RM") {
		t.Errorf("the AM tried to unregister:\n%s", tail(log, 3000))
	}
}

// newFakeYARN starts the one-machine fake cluster in dir, its containers
// running this test binary as tidewatch, and a client of its RM.
func newFakeYARN(t *testing.T, dir string) (*yarntest.Cluster, *rm.Client) {
	return newFakeYARNWith(t, yarntest.Options{Dir: filepath.Join(dir, "nm")})
}

// newFakeYARNWith is newFakeYARN with the cluster's options.
func newFakeYARNWith(t *testing.T, opts yarntest.Options) (*yarntest.Cluster, *rm.Client) {
	t.Helper()
	opts.Env = append(opts.Env, "TIDEWATCH_E2E_MAIN=1")
	cluster, err := yarntest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	client, err := rm.New(rm.Options{BaseURLs: []string{cluster.RM.URL()}, User: "tidewatch"})
	if err != nil {
		t.Fatal(err)
	}
	return cluster, client
}

func executable(t *testing.T) string {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// fileResource is a local resource for file p, as a stager would give it.
func fileResource(t *testing.T, p string) rm.LocalResource {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return rm.LocalResource{URL: "file://" + p, Type: rm.TypeFile, Visibility: rm.VisibilityApplication, Size: fi.Size(), Timestamp: fi.ModTime().UnixMilli()}
}
