package local

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/supportlayer/deploy"
)

// fakeAM stands in for `tidewatch am`: it writes the address file, and then
// either runs until killed or (MODE=finish) writes a result and exits.
const fakeAM = `#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in --work-dir) dir="$2"; shift;; esac; shift; done
printf '{"pid": %d, "url": "http://127.0.0.1:9", "jobId": "j"}' $$ > "$dir/jobmaster.json"
echo "fake am started in $dir"
if [ "$MODE" = finish ]; then printf '{"state":"FINISHED","savepoint":""}' > "$dir/result.json"; exit 0; fi
while true; do sleep 0.05; done
`

func newTestDeployer(t *testing.T, onExit func(string)) (*Deployer, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-am")
	if err := os.WriteFile(bin, []byte(fakeAM), 0o755); err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	d, err := New(Config{Binary: bin, JobsDir: filepath.Join(dir, "jobs"), ListenHost: "127.0.0.1", LogFormat: "text"}, logrus.NewEntry(l), onExit)
	if err != nil {
		t.Fatal(err)
	}
	return d, dir
}

// observeUntil polls Observe until cond holds or a deadline passes.
func observeUntil(t *testing.T, d *Deployer, h deploy.Handle, what string, cond func(deploy.Status) bool) deploy.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := d.Observe(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited for %s; last status %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeployObserveKill(t *testing.T) {
	exited := make(chan string, 1)
	d, _ := newTestDeployer(t, func(id string) { exited <- id })
	req := deploy.Request{JobID: "abcd", Attempt: 1, Spec: []byte("name: x\n"), CheckpointDir: "/tmp/ck", Restore: "latest"}
	h, err := d.Deploy(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if h.PID == 0 || h.Deployer != Name || !strings.HasSuffix(h.WorkDir, "abcd/deployments/1") {
		t.Fatalf("handle = %+v", h)
	}
	if spec, err := os.ReadFile(filepath.Join(d.JobDir("abcd"), "job.yaml")); err != nil || string(spec) != "name: x\n" {
		t.Fatalf("spec file: %q %v", spec, err)
	}
	st := observeUntil(t, d, h, "endpoint", func(s deploy.Status) bool { return s.Endpoint != "" })
	if !st.Alive || st.Endpoint != "http://127.0.0.1:9" {
		t.Fatalf("status = %+v", st)
	}

	if err := d.Kill(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-exited:
		if id != "abcd" {
			t.Errorf("onExit(%q)", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("onExit not called")
	}
	st = observeUntil(t, d, h, "death", func(s deploy.Status) bool { return !s.Alive })
	if st.FinalState != "" || !strings.Contains(st.Diagnostics, "killed by signal killed") {
		t.Fatalf("status after kill = %+v", st)
	}
	// Killing a dead deployment is not an error.
	if err := d.Kill(context.Background(), h); err != nil {
		t.Fatal(err)
	}

	rc, err := d.Logs(context.Background(), h, 8)
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(rc)
	rc.Close()
	if string(tail) != "ments/1\n" {
		t.Errorf("log tail = %q", tail)
	}
}

func TestFinishedResult(t *testing.T) {
	t.Setenv("MODE", "finish")
	d, _ := newTestDeployer(t, nil)
	h, err := d.Deploy(context.Background(), deploy.Request{JobID: "f1", Attempt: 3, Restore: "none"})
	if err != nil {
		t.Fatal(err)
	}
	st := observeUntil(t, d, h, "exit", func(s deploy.Status) bool { return !s.Alive })
	if st.FinalState != "FINISHED" || !strings.Contains(st.Diagnostics, "exit code 0") {
		t.Fatalf("status = %+v", st)
	}
}

// A daemon started later has no children, and must recognise the process from
// its handle alone.
func TestAdoptionByAnotherDeployer(t *testing.T) {
	d1, dir := newTestDeployer(t, nil)
	h, err := d1.Deploy(context.Background(), deploy.Request{JobID: "ad", Attempt: 1, Restore: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(h.PID, syscall.SIGKILL) })
	observeUntil(t, d1, h, "endpoint", func(s deploy.Status) bool { return s.Endpoint != "" })

	l := logrus.New()
	l.SetOutput(io.Discard)
	d2, err := New(d1.cfg, logrus.NewEntry(l), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d2.Observe(context.Background(), h)
	if err != nil || !st.Alive || st.Endpoint == "" {
		t.Fatalf("adopted status = %+v, %v", st, err)
	}
	// A handle stored before its pid was (daemon died in between) still finds it.
	noPID := h
	noPID.PID = 0
	if st, _ := d2.Observe(context.Background(), noPID); !st.Alive {
		t.Fatalf("handle without pid: %+v", st)
	}
	if err := d2.Kill(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	observeUntil(t, d1, h, "death", func(s deploy.Status) bool { return !s.Alive })
	_ = dir
}

// A recorded pid now used by another process is never treated as the job, nor signalled.
func TestReusedPIDIsNotTheJob(t *testing.T) {
	d, dir := newTestDeployer(t, nil)
	h := deploy.Handle{Deployer: Name, PID: os.Getpid(), WorkDir: filepath.Join(dir, "jobs", "gone", "deployments", "1")}
	st, err := d.Observe(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if st.Alive {
		t.Fatal("this test process was taken for the job")
	}
	if err := d.Kill(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	// Still here: Kill did not signal us.
}

func TestConfigValidate(t *testing.T) {
	good := Config{Binary: "/bin/tw", JobsDir: "/var/jobs", ListenHost: "127.0.0.1", LogFormat: "json"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Binary = "" }, "binary"},
		{func(c *Config) { c.JobsDir = "rel" }, "absolute"},
		{func(c *Config) { c.ListenHost = "" }, "listen_host"},
		{func(c *Config) { c.LogFormat = "xml" }, "log_format"},
	} {
		c := good
		tt.mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}
