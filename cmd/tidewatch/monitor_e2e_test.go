package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/supportlayer"
)

// A rule whose action is a migration, fed heap-pressure samples scraped from
// a running local job, makes the job move its state to Pebble, and the
// alert record shows the action. "Heap pressure" here is a threshold every
// job master exceeds (a heap load above 0.1% of its 64 MiB), so the test
// does not need to fill memory; the path is the production one: scrape,
// derive heap_load, CEP match, notify alert, action through the daemon, job
// master migration.
func TestMonitorActionMigratesRunningJob(t *testing.T) {
	rulesFile := filepath.Join(t.TempDir(), "pressure.yaml")
	os.WriteFile(rulesFile, []byte(`rules:
  - name: TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH
    level: FATAL
    scope: taskmanager
    metrics: [heap_load]
    within: 1m
    pattern:
      - name: e1
        where: metricsValue >= 0.001
        times: 2
    output:
      - e1.jobID as jobID
      - e1.metricsValue as metricsValue
    action:
      type: migrate-to-pebble
      params: {keyGroups: all}
`), 0o644)
	t.Setenv("TIDEWATCH_E2E_MAIN", "1") // job masters are this test binary
	opts := defaultTestOptions(t)
	opts.Watch.Interval = time.Second
	opts.Monitor.Rules = rulesFile
	opts.Monitor.Interval = time.Second
	opts.Monitor.Timeout = time.Second
	e := &e2e{t: t, opts: opts}
	e.startDaemon()

	spec := strings.Replace(e2eSpec, "name: e2e-clicks", "name: e2e-pressure\nresources: {memory: 64m}", 1)
	j, err := e.api.Submit(context.Background(), []byte(spec), "pressure.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j = e.waitJob(j.ID, "RUNNING", 30*time.Second, func(j supportlayer.JobView) bool { return j.State == supportlayer.StateRunning })
	// Before the temporary directories go: the job master must be gone.
	t.Cleanup(func() {
		if _, err := e.api.Action(context.Background(), j.ID, "cancel"); err == nil {
			e.waitJob(j.ID, "CANCELED", 30*time.Second, func(j supportlayer.JobView) bool { return j.State == supportlayer.StateCanceled })
		}
		e.stopDaemon()
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := e.api.Migration(context.Background(), j.ID)
		if err == nil && st.Status == "COMPLETED" && st.Backends["pebble"] == 128 {
			t.Logf("moved to Pebble by the rule: %d entries, trigger %q", st.EntriesMoved, st.Trigger)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rule's action did not move the state: %+v, %v; log:\n%s", st, err, e.log(j.ID))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The alert record names the job, the rule and the action.
	resp, err := http.Get("http://" + e.daemon.Addr() + "/api/v1/alerts?job=" + j.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var alerts struct {
		Alerts []json.RawMessage `json:"alerts"`
	}
	if err := json.Unmarshal(body, &alerts); err != nil || len(alerts.Alerts) == 0 {
		t.Fatalf("no alert recorded: %v %s", err, body)
	}
	text := string(alerts.Alerts[0])
	for _, want := range []string{"TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH", "FATAL", "migrate-to-pebble"} {
		if !strings.Contains(text, want) {
			t.Errorf("alert lacks %q: %s", want, text)
		}
	}
	evs, err := e.api.Events(context.Background(), j.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		if strings.Contains(ev.Type, "MIGRATION") || strings.Contains(ev.Message, "pebble") {
			found = true
		}
	}
	if !found {
		t.Errorf("no migration event among %+v", evs)
	}
}
