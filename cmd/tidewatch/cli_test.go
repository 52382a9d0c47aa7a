package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runCLI runs the root command with args and returns its output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestDaemonRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listen: 127.0.0.1:0\nwatch:\n  intervall: 5s\n"), 0o644)
	_, err := runCLI(t, "daemon", "--config", bad, "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "line 3: unknown key intervall") {
		t.Fatalf("err = %v", err)
	}
	_, err = runCLI(t, "daemon", "--data-dir", dir, "--log-format", "xml")
	if err == nil || !strings.Contains(err.Error(), "log.format") {
		t.Fatalf("err = %v", err)
	}
	t.Setenv("TIDEWATCH_RESTART_STRATEGY", "sometimes")
	_, err = runCLI(t, "daemon", "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "restart.strategy") {
		t.Fatalf("err = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a rejected config left files behind: %v", entries)
	}
}

func TestJobCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real job processes")
	}
	t.Setenv("TIDEWATCH_E2E_MAIN", "1")
	e := &e2e{t: t}
	e.opts = defaultTestOptions(t)
	e.startDaemon()
	defer e.stopDaemon()
	server := "http://" + e.daemon.Addr()
	dir := t.TempDir()

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(e2eSpec, "rate: 2000", "rate: -3", 1)), 0o644)
	_, err := runCLI(t, "job", "submit", bad, "--server", server)
	if err == nil || !strings.Contains(err.Error(), "source.datagen.rate") || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("bad spec: %v", err)
	}
	if out, _ := runCLI(t, "job", "list", "--server", server, "-o", "json"); !strings.Contains(out, `"jobs": []`) {
		t.Fatalf("a bad spec was stored: %s", out)
	}

	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(e2eSpec), 0o644)
	out, err := runCLI(t, "job", "submit", good, "--wait", "--server", server, "-o", "json")
	if err != nil {
		t.Fatalf("submit --wait: %v\n%s", err, out)
	}
	if !strings.Contains(out, "RUNNING") {
		t.Errorf("--wait showed no progress: %s", out)
	}
	var submitted struct{ ID string }
	json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &submitted)

	out, err = runCLI(t, "job", "status", submitted.ID[:6], "--server", server, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, k := range []string{"id", "name", "state", "restarts", "deployment"} {
		if _, ok := st[k]; !ok {
			t.Errorf("status -o json lacks %q: %s", k, out)
		}
	}
	dep, _ := st["deployment"].(map[string]any)
	pid, _ := dep["pid"].(float64)
	if st["state"] != "RUNNING" || pid == 0 {
		t.Fatalf("status: %s", out)
	}
	defer syscall.Kill(int(pid), syscall.SIGKILL)

	if out, err := runCLI(t, "job", "list", "--server", server); err != nil || !strings.Contains(out, "e2e-clicks") || !strings.Contains(out, "RUNNING") {
		t.Errorf("list: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "job", "logs", submitted.ID, "--server", server); err != nil || !strings.Contains(out, "REST") {
		t.Errorf("logs: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "job", "savepoint", submitted.ID, "--server", server); err != nil || !strings.Contains(out, "savepoint") {
		t.Errorf("savepoint: %v\n%s", err, out)
	}
	// Live migration through daemon and job master, there and back.
	for _, to := range []string{"pebble", "heap"} {
		out, err := runCLI(t, "job", "migrate", submitted.ID, "--to", to, "--wait", "--server", server, "-o", "json")
		if err != nil {
			t.Fatalf("migrate --to %s: %v\n%s", to, err, out)
		}
		var ms struct {
			Status   string
			Target   string
			Backends map[string]int
		}
		if err := json.Unmarshal([]byte(out), &ms); err != nil || ms.Status != "COMPLETED" || ms.Target != to || ms.Backends[to] != 128 {
			t.Errorf("migrate --to %s: %v %s", to, err, out)
		}
	}
	if _, err := runCLI(t, "job", "migrate", submitted.ID, "--to", "disk", "--server", server); err == nil || !strings.Contains(err.Error(), "--to") {
		t.Errorf("migrate --to disk: %v", err)
	}
	if _, err := runCLI(t, "job", "migrate", submitted.ID, "--to", "pebble", "--key-groups", "7-3", "--server", server); err == nil || !strings.Contains(err.Error(), "keyGroups") {
		t.Errorf("migrate bad key groups: %v", err)
	}
	if out, err := runCLI(t, "events", submitted.ID, "--server", server); err != nil || !strings.Contains(out, "STATE_MIGRATION") {
		t.Errorf("no migration event: %v\n%s", err, out)
	}
	// Silences.
	out, err = runCLI(t, "silence", "add", `job="`+submitted.ID+`", alertname=~"HEAP.*"`, "--duration", "1h", "--comment", "maintenance", "--server", server, "-o", "json")
	if err != nil {
		t.Fatalf("silence add: %v\n%s", err, out)
	}
	var sil struct{ ID string }
	json.Unmarshal([]byte(out), &sil)
	if out, err := runCLI(t, "silence", "list", "--state", "active", "--server", server); err != nil || !strings.Contains(out, sil.ID) || !strings.Contains(out, "maintenance") {
		t.Errorf("silence list: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "silence", "expire", sil.ID, "--server", server); err != nil || !strings.Contains(out, "expired") {
		t.Errorf("silence expire: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "silence", "add", `job=="x`, "--comment", "c", "--server", server); err == nil {
		t.Error("a bad matcher was accepted")
	}
	if _, err := runCLI(t, "silence", "add", `job="x"`, "--server", server); err == nil || !strings.Contains(err.Error(), "--comment") {
		t.Errorf("silence without comment: %v", err)
	}
	if _, err := runCLI(t, "job", "status", "ffff", "--server", server); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown job: %v", err)
	}
	if _, err := runCLI(t, "job", "cancel", submitted.ID, "--server", server); err != nil {
		t.Fatal(err)
	}
	e.waitJob(submitted.ID, "CANCELED", 30*time.Second, func(j jobView) bool { return j.State == "CANCELED" })
	if out, err := runCLI(t, "events", submitted.ID, "--server", server); err != nil || !strings.Contains(out, "JOB_CANCELED") {
		t.Errorf("events: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "job", "list", "--server", "localhost:8080"); err == nil || !strings.Contains(err.Error(), "server") {
		t.Errorf("bad --server: %v", err)
	}
}
