package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/connectors"
	"github.com/tidewatch/tidewatch/supportlayer"
	"github.com/tidewatch/tidewatch/supportlayer/jobmaster"
	"github.com/tidewatch/tidewatch/yarn/am"
	"github.com/tidewatch/tidewatch/yarn/rm"
)

// TestYARNCluster runs the whole platform against a real Hadoop cluster:
//
//	TIDEWATCH_RM=http://rm:8088 TIDEWATCH_NAMENODE=nn:8020 [HADOOP_CONF_DIR=…] [HADOOP_USER_NAME=…] \
//	  go test ./cmd/tidewatch -run TestYARNCluster -v
//
// It builds the tidewatch binary, starts a daemon with the yarn deployer,
// submits a job whose checkpoints and output are on HDFS, and checks: the
// application reaches RUNNING (the AM registered), the job master answers,
// a SIGKILLed AM is restarted by YARN as attempt 2 which restores the newest
// checkpoint (only when the AM runs on this machine: the test finds its
// process by its container id), a stop ends the application
// FINISHED/SUCCEEDED with a savepoint, and the staging directory is removed.
// Every failure says what the cluster answered.
func TestYARNCluster(t *testing.T) {
	e, base, root, fsys := yarnClusterDaemon(t)
	rmURL := e.opts.Yarn.ResourceManager[0]
	ctx := context.Background()

	spec := strings.Replace(e2eSpec, "path: output/counts", "path: "+base+"/output", 1)
	submitted := time.Now()
	j, err := e.api.Submit(ctx, []byte(spec), "it.yaml")
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	j = e.waitJob(j.ID, "RUNNING", 3*time.Minute, func(j supportlayer.JobView) bool { return j.State == supportlayer.StateRunning })
	t.Logf("submit → RUNNING: %s (application %s)", time.Since(submitted).Round(time.Millisecond), j.Deployment.ApplicationID)

	client, err := rm.New(rm.Options{BaseURLs: []string{rmURL}, User: os.Getenv("HADOOP_USER_NAME")})
	if err != nil {
		t.Fatal(err)
	}
	appID := j.Deployment.ApplicationID
	app, err := client.Application(ctx, appID)
	if err != nil || app.State != "RUNNING" {
		t.Fatalf("the RM reports %s as %+v (%v)", appID, app, err)
	}
	jm := jobmaster.New(10 * time.Second)
	if ov, err := jm.Job(ctx, j.Deployment.Endpoint, j.ID); err != nil || ov.State != "RUNNING" {
		t.Fatalf("job master at %s: %+v, %v", j.Deployment.Endpoint, ov, err)
	}
	// The job's status through the RM's web proxy too (GET is forwarded).
	if ov, err := jm.Job(ctx, app.TrackingURL, j.ID); err != nil || ov.State != "RUNNING" {
		t.Errorf("job status through the RM proxy %s: %+v, %v", app.TrackingURL, ov, err)
	}
	waitCheckpoint := func() {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			st, err := jm.Checkpoints(ctx, "http://"+app.AMRPCAddress, j.ID)
			if err == nil && st.Counts.Completed > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no completed checkpoint within a minute: %+v, %v", st, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitCheckpoint()

	// SIGKILL the AM when it runs here: YARN starts attempt 2.
	if pid := localAMProcess(appID); pid == 0 {
		t.Logf("the AM of %s does not run on this machine: skipping the attempt-2 check", appID)
	} else {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(3 * time.Minute)
		for {
			atts, err := client.Attempts(ctx, appID)
			app, _ = client.Application(ctx, appID)
			if err == nil && len(atts) >= 2 && app != nil && app.State == "RUNNING" && app.AMRPCAddress != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no second attempt RUNNING after SIGKILL: attempts %+v (%v), application %+v", atts, err, app)
			}
			time.Sleep(500 * time.Millisecond)
		}
		st, err := jm.Checkpoints(ctx, "http://"+app.AMRPCAddress, j.ID)
		if err != nil || st.Latest.Restored == nil {
			t.Fatalf("attempt 2 did not restore a checkpoint: %+v, %v", st.Latest, err)
		}
	}

	if _, err := e.api.Action(ctx, j.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	j = e.waitJob(j.ID, "STOPPED", 3*time.Minute, func(j supportlayer.JobView) bool { return j.State == supportlayer.StateStopped })
	if j.Deployment == nil || j.Deployment.Savepoint == "" {
		t.Errorf("stopped without a savepoint: %+v", j.Deployment)
	}
	app, err = client.Application(ctx, appID)
	if err != nil || app.State != "FINISHED" || app.FinalStatus != "SUCCEEDED" {
		t.Errorf("the RM reports %+v (%v), want FINISHED/SUCCEEDED", app, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := fsys.Stat(root + "/staging/" + appID)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("staging directory %s/staging/%s still exists", base, appID)
			break
		}
		time.Sleep(time.Second)
	}
}

// yarnClusterDaemon builds tidewatch and starts a daemon deploying to the
// real cluster of TIDEWATCH_RM and TIDEWATCH_NAMENODE, with its staging and
// checkpoints under a fresh HDFS directory (base, root on fsys), removed at
// the end. It skips the test without the variables.
func yarnClusterDaemon(t *testing.T) (e *e2e, base, root string, fsys connectors.FS) {
	rmURL, nn := os.Getenv("TIDEWATCH_RM"), os.Getenv("TIDEWATCH_NAMENODE")
	if rmURL == "" || nn == "" {
		t.Skip("set TIDEWATCH_RM (http://host:8088) and TIDEWATCH_NAMENODE (host:port) to run against a real cluster")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tidewatch")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tidewatch: %v\n%s", err, out)
	}
	base = fmt.Sprintf("hdfs://%s/tmp/tidewatch-it-%d", nn, time.Now().UnixNano())
	fsys, root, err := connectors.OpenFS(base)
	if err != nil {
		t.Fatalf("HDFS at %s: %v", nn, err)
	}
	t.Cleanup(func() {
		if err := fsys.RemoveAll(root); err != nil {
			t.Logf("cleanup %s: %v", base, err)
		}
		fsys.Close()
	})

	opts := supportlayer.DefaultOptions()
	opts.Listen = "127.0.0.1:0"
	opts.DataDir = filepath.Join(dir, "var")
	opts.Deployer = "yarn"
	opts.Yarn.ResourceManager = []string{rmURL}
	opts.Yarn.StagingDir = root + "/staging"
	opts.HDFS.NameNode = nn
	opts.Runtime.Binary = bin
	opts.Checkpoints.Dir = base + "/checkpoints"
	opts.Watch.Interval = 2 * time.Second
	opts.Watch.StartTimeout = 3 * time.Minute
	e = &e2e{t: t, opts: opts}
	e.startDaemon()
	t.Cleanup(e.stopDaemon)
	return e, base, root, fsys
}

// TestYARNClusterWorkers runs a job whose keyed parallelism (2) exceeds its
// vcores (1) on the real cluster: the AM must get a worker container from
// the RM and start it on its NodeManager; a stop ends the application
// FINISHED/SUCCEEDED.
func TestYARNClusterWorkers(t *testing.T) {
	e, base, _, _ := yarnClusterDaemon(t)
	ctx := context.Background()
	spec := "parallelism: 2\n" + strings.Replace(e2eSpec, "path: output/counts", "path: "+base+"/output", 1)
	j, err := e.api.Submit(ctx, []byte(spec), "workers.yaml")
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	j = e.waitJob(j.ID, "RUNNING", 3*time.Minute, func(j supportlayer.JobView) bool { return j.State == supportlayer.StateRunning })
	client, err := rm.New(rm.Options{BaseURLs: e.opts.Yarn.ResourceManager, User: os.Getenv("HADOOP_USER_NAME")})
	if err != nil {
		t.Fatal(err)
	}
	appID := j.Deployment.ApplicationID
	app, err := client.Application(ctx, appID)
	if err != nil || app.AMRPCAddress == "" {
		t.Fatalf("the RM reports %s as %+v (%v)", appID, app, err)
	}
	var last string
	started := time.Now()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		resp, err := http.Get("http://" + app.AMRPCAddress + "/jobs/" + j.ID + "/workers")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			var body struct{ Workers []am.WorkerStatus }
			if json.Unmarshal(b, &body) == nil && len(body.Workers) == 1 && body.Workers[0].State == am.WorkerRunning {
				break
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			a, _ := client.Application(ctx, appID)
			t.Fatalf("no running worker container within 3 minutes; the job master says %s; the RM reports %+v", last, a)
		}
	}
	t.Logf("RUNNING → worker container running: %s (%s)", time.Since(started).Round(time.Millisecond), last)
	if _, err := e.api.Action(ctx, j.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	e.waitJob(j.ID, "STOPPED", 3*time.Minute, func(j supportlayer.JobView) bool { return j.State == supportlayer.StateStopped })
	app, err = client.Application(ctx, appID)
	if err != nil || app.State != "FINISHED" || app.FinalStatus != "SUCCEEDED" {
		t.Errorf("the RM reports %+v (%v), want FINISHED/SUCCEEDED", app, err)
	}
}

// localAMProcess finds the AM process of an application on this machine by
// the container id in its working directory, or returns 0.
func localAMProcess(appID string) int {
	suffix := strings.TrimPrefix(appID, "application_")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		cwd, _ := os.Readlink("/proc/" + e.Name() + "/cwd")
		if strings.Contains(string(cmdline), "tidewatch") && strings.Contains(string(cmdline), "\x00am\x00") &&
			strings.Contains(cwd, "container_") && strings.Contains(cwd, suffix) {
			return pid
		}
	}
	return 0
}
