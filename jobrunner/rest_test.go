package jobrunner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const unboundedSpec = `
name: rest-test
checkpoint:
  interval: 100ms
  retained: 2
source:
  type: datagen
  datagen:
    rate: 5000
    keys: 5
keyBy: key
window:
  type: tumbling
  size: 100ms
aggregate: count
sink:
  type: file
  file:
    path: OUT
`

// startMaster runs RunMaster on an unbounded job in the background and
// returns its REST base URL, job id and a function that waits for
// RunMaster's result.
func startMaster(t *testing.T, dir string) (base, jid string, wait func() error) {
	t.Helper()
	return startMasterSpec(t, dir, strings.Replace(unboundedSpec, "OUT", filepath.Join(dir, "out"), 1))
}

// startMasterSpec is startMaster for the job spec given; the master is
// cancelled when the test ends.
func startMasterSpec(t *testing.T, dir, specText string) (base, jid string, wait func() error) {
	t.Helper()
	return startMasterWith(t, dir, specText, nil)
}

// startMasterWith is startMasterSpec with options changed by set, if not nil.
func startMasterWith(t *testing.T, dir, specText string, set func(*MasterOptions)) (base, jid string, wait func() error) {
	t.Helper()
	spec := writeSpecFile(t, dir, specText)
	o := masterOpts(t, dir, spec)
	o.Registry = prometheus.NewRegistry()
	if set != nil {
		set(&o)
	}
	started := make(chan MasterInfo, 1)
	o.Started = func(info MasterInfo) { started <- info }
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		runErr = RunMaster(ctx, o)
	}()
	wait = func() error {
		<-finished
		return runErr
	}
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	select {
	case info := <-started:
		return info.URL, info.JobID, wait
	case <-finished:
		t.Fatalf("RunMaster ended before serving: %v", runErr)
	case <-time.After(10 * time.Second):
		t.Fatal("job master did not start within 10s")
	}
	return "", "", nil
}

func call(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: content type %q", method, url, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: body %q: %v", method, url, b, err)
	}
	return resp.StatusCode, m
}

func requireKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: missing key %q in %v", what, k, m)
		}
	}
}

// poll calls f until it returns true or the deadline passes.
func poll(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is not an object", v)
	}
	return m
}

func TestRESTRunningJob(t *testing.T) {
	dir := t.TempDir()
	base, jid, wait := startMaster(t, dir)
	job := base + "/jobs/" + jid

	poll(t, "a completed checkpoint and records", func() bool {
		_, c := call(t, "GET", job+"/checkpoints", "")
		_, d := call(t, "GET", job, "")
		v := obj(t, d["vertices"].([]any)[0])
		return obj(t, c["counts"])["completed"].(float64) >= 1 && obj(t, v["metrics"])["write-records"].(float64) > 0
	})

	status, d := call(t, "GET", job, "")
	if status != 200 || d["state"] != "RUNNING" || d["jid"] != jid || d["name"] != "rest-test" {
		t.Fatalf("GET job: %d %v", status, d)
	}
	requireKeys(t, "job", d, "jid", "name", "isStoppable", "state", "job-type", "start-time", "end-time",
		"duration", "maxParallelism", "now", "timestamps", "vertices", "status-counts", "plan")
	if ts := obj(t, d["timestamps"]); len(ts) != 11 || ts["RUNNING"].(float64) <= 0 || ts["FINISHED"].(float64) != 0 {
		t.Errorf("timestamps = %v", ts)
	}
	if sc := obj(t, d["status-counts"]); len(sc) != 10 || sc["RUNNING"].(float64) != 2 {
		t.Errorf("status-counts = %v", sc)
	}
	vs := d["vertices"].([]any)
	if len(vs) != 2 {
		t.Fatalf("vertices = %v", vs)
	}
	for i, vv := range vs {
		v := obj(t, vv)
		requireKeys(t, "vertex", v, "id", "name", "maxParallelism", "parallelism", "status", "start-time",
			"end-time", "duration", "tasks", "metrics")
		requireKeys(t, "vertex metrics", obj(t, v["metrics"]), "read-bytes", "read-bytes-complete", "write-bytes",
			"write-bytes-complete", "read-records", "read-records-complete", "write-records", "write-records-complete",
			"accumulated-backpressured-time", "accumulated-idle-time", "accumulated-busy-time")
		if tasks := obj(t, v["tasks"]); len(tasks) != 10 || tasks["RUNNING"].(float64) != 1 {
			t.Errorf("vertex %d tasks = %v", i, tasks)
		}
		if v["status"] != "RUNNING" || !jobIDRE.MatchString(v["id"].(string)) {
			t.Errorf("vertex %d = %v", i, v)
		}
	}
	// The paced source spends most of its time waiting for input.
	poll(t, "source idle time", func() bool {
		_, d := call(t, "GET", job, "")
		m := obj(t, obj(t, d["vertices"].([]any)[0])["metrics"])
		return m["accumulated-idle-time"].(float64) > 0
	})
	if name := obj(t, vs[0])["name"]; name != "Source: datagen -> KeyBy" {
		t.Errorf("source vertex name = %v", name)
	}
	if m := obj(t, obj(t, vs[1])["metrics"]); m["read-records"].(float64) <= 0 || m["write-records"].(float64) != 0 {
		t.Errorf("window/sink vertex metrics = %v", m)
	}
	nodes := obj(t, d["plan"])["nodes"].([]any)
	if in := obj(t, nodes[1])["inputs"].([]any); obj(t, in[0])["id"] != obj(t, vs[0])["id"] || obj(t, in[0])["ship_strategy"] != "HASH" {
		t.Errorf("plan edge = %v", in)
	}

	_, ov := call(t, "GET", base+"/jobs/overview", "")
	j0 := obj(t, ov["jobs"].([]any)[0])
	requireKeys(t, "jobs/overview", j0, "jid", "name", "start-time", "end-time", "duration", "state", "last-modification", "tasks")
	if tasks := obj(t, j0["tasks"]); len(tasks) != 11 || tasks["total"].(float64) != 2 || tasks["running"].(float64) != 2 {
		t.Errorf("overview tasks = %v", tasks)
	}
	_, jobs := call(t, "GET", base+"/jobs", "")
	if j := obj(t, jobs["jobs"].([]any)[0]); j["id"] != jid || j["status"] != "RUNNING" {
		t.Errorf("jobs = %v", jobs)
	}
	_, st := call(t, "GET", job+"/status", "")
	if st["status"] != "RUNNING" {
		t.Errorf("status = %v", st)
	}
	_, o := call(t, "GET", base+"/v1/overview", "")
	requireKeys(t, "overview", o, "taskmanagers", "slots-total", "slots-available", "jobs-running",
		"jobs-finished", "jobs-cancelled", "jobs-failed", "flink-version", "flink-commit")
	if o["jobs-running"].(float64) != 1 {
		t.Errorf("overview = %v", o)
	}

	_, c := call(t, "GET", job+"/checkpoints", "")
	requireKeys(t, "checkpoints", c, "counts", "summary", "latest", "history")
	requireKeys(t, "counts", obj(t, c["counts"]), "restored", "total", "in_progress", "completed", "failed")
	requireKeys(t, "summary", obj(t, c["summary"]), "checkpointed_size", "state_size", "end_to_end_duration",
		"alignment_buffered", "processed_data", "persisted_data")
	requireKeys(t, "summary stats", obj(t, obj(t, c["summary"])["state_size"]), "min", "max", "avg", "p50", "p90", "p95", "p99", "p999")
	latest := obj(t, c["latest"])
	requireKeys(t, "latest", latest, "completed", "savepoint", "failed", "restored")
	lc := obj(t, latest["completed"])
	requireKeys(t, "latest.completed", lc, "className", "id", "status", "is_savepoint", "savepointFormat",
		"trigger_timestamp", "latest_ack_timestamp", "checkpointed_size", "state_size", "end_to_end_duration",
		"alignment_buffered", "processed_data", "persisted_data", "num_subtasks", "num_acknowledged_subtasks",
		"checkpoint_type", "tasks", "external_path", "discarded")
	if lc["className"] != "completed" || lc["status"] != "COMPLETED" || lc["checkpoint_type"] != "CHECKPOINT" {
		t.Errorf("latest.completed = %v", lc)
	}
	if _, err := os.Stat(filepath.Join(lc["external_path"].(string), metadataFile)); err != nil {
		t.Errorf("latest.completed.external_path: %v", err)
	}
	_, det := call(t, "GET", job+"/checkpoints/details/"+jsonNum(lc["id"]), "")
	if det["id"] != lc["id"] {
		t.Errorf("checkpoint details = %v", det)
	}
	_, cc := call(t, "GET", job+"/checkpoints/config", "")
	if cc["mode"] != "exactly_once" || cc["interval"].(float64) != 100 {
		t.Errorf("checkpoints/config = %v", cc)
	}

	_, ex := call(t, "GET", job+"/exceptions", "")
	requireKeys(t, "exceptions", ex, "root-exception", "timestamp", "all-exceptions", "truncated", "exceptionHistory")
	requireKeys(t, "exceptionHistory", obj(t, ex["exceptionHistory"]), "entries", "truncated")

	_, tms := call(t, "GET", base+"/taskmanagers", "")
	tm := obj(t, tms["taskmanagers"].([]any)[0])
	requireKeys(t, "taskmanager", tm, "id", "path", "dataPort", "jmxPort", "timeSinceLastHeartbeat", "slotsNumber",
		"freeSlots", "totalResource", "freeResource", "hardware", "memoryConfiguration")

	// Manual checkpoint.
	status, trig := call(t, "POST", job+"/checkpoints", `{"checkpointType":"FULL"}`)
	if status != 202 {
		t.Fatalf("POST checkpoints: %d %v", status, trig)
	}
	tid := trig["request-id"].(string)
	var op map[string]any
	poll(t, "manual checkpoint", func() bool {
		_, r := call(t, "GET", job+"/checkpoints/"+tid, "")
		op = r
		return obj(t, r["status"])["id"] == "COMPLETED"
	})
	if id := obj(t, op["operation"])["checkpointId"]; id == nil || id.(float64) < 1 {
		t.Errorf("checkpoint operation = %v", op)
	}

	// Savepoint, with an idempotent client trigger id.
	const spTrigger = "00112233445566778899aabbccddeeff"
	target := filepath.Join(dir, "sp-target")
	for range 2 {
		status, trig = call(t, "POST", job+"/savepoints", `{"target-directory":"`+target+`","triggerId":"`+spTrigger+`"}`)
		if status != 202 || trig["request-id"] != spTrigger {
			t.Fatalf("POST savepoints: %d %v", status, trig)
		}
	}
	poll(t, "savepoint", func() bool {
		_, r := call(t, "GET", job+"/savepoints/"+spTrigger, "")
		op = r
		return obj(t, r["status"])["id"] == "COMPLETED"
	})
	loc, _ := obj(t, op["operation"])["location"].(string)
	if !strings.HasPrefix(loc, target+"/savepoint-"+jid[:6]+"-") {
		t.Errorf("savepoint location %q not under %s", loc, target)
	}
	if _, err := readCheckpoint(loc); err != nil {
		t.Errorf("savepoint unreadable: %v", err)
	}

	// Errors.
	errorCases := []struct {
		method, path string
		status       int
		contains     string
	}{
		{"GET", "/jobs/nothex", 400, "Bad request, could not parse parameters"},
		{"GET", "/jobs/ffffffffffffffffffffffffffffffff", 404, "not found"},
		{"GET", "/no/such/path", 404, "Not found: /no/such/path"},
		{"DELETE", "/jobs/" + jid, 404, "Not found"},
		{"GET", "/v2/overview", 404, "Not found"},
		{"PATCH", "/jobs/" + jid + "?mode=stop", 308, "stop"},
		{"GET", "/jobs/" + jid + "/savepoints/ffffffffffffffffffffffffffffffff", 404, "There is no savepoint operation with triggerId=ffffffffffffffffffffffffffffffff"},
		{"GET", "/jobs/" + jid + "/checkpoints/ffffffffffffffffffffffffffffffff", 404, "Operation not found under key"},
		{"POST", "/jobs/" + jid + "/savepoints", 400, "could not parse"},
	}
	for _, ec := range errorCases {
		body := ""
		if ec.method == "POST" {
			body = "{not json"
		}
		status, e := call(t, ec.method, base+ec.path, body)
		errs, _ := e["errors"].([]any)
		if status != ec.status || len(errs) == 0 || !strings.Contains(errs[0].(string), ec.contains) {
			t.Errorf("%s %s = %d %v, want %d containing %q", ec.method, ec.path, status, e, ec.status, ec.contains)
		}
	}

	// Metrics.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{
		"tidewatch_job_source_records_emitted_total", "tidewatch_job_operator_records_in_total",
		"tidewatch_job_operator_records_out_total", "tidewatch_job_sink_records_written_total",
		"tidewatch_job_checkpoints_completed_total", "tidewatch_job_checkpoints_failed_total",
		"tidewatch_job_last_checkpoint_duration_seconds", "tidewatch_job_last_checkpoint_size_bytes",
		"tidewatch_job_current_watermark_milliseconds", "tidewatch_job_watermark_lag_seconds",
		"tidewatch_job_restored_total", "go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(string(mb), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// Stop with drain is refused; the job keeps running.
	status, trig = call(t, "POST", job+"/stop", `{"drain":true}`)
	if status != 202 {
		t.Fatalf("POST stop with drain: %d %v", status, trig)
	}
	var drained map[string]any
	poll(t, "drain refusal", func() bool {
		_, drained = call(t, "GET", job+"/savepoints/"+trig["request-id"].(string), "")
		return obj(t, drained["status"])["id"] == "COMPLETED"
	})
	if fc := obj(t, obj(t, drained["operation"])["failure-cause"]); !strings.Contains(fc["stack-trace"].(string), "drain is not supported") {
		t.Errorf("stop with drain: %v", drained)
	}

	// Stop with savepoint ends the job FINISHED.
	status, trig = call(t, "POST", job+"/stop", `{}`)
	if status != 202 {
		t.Fatalf("POST stop: %d %v", status, trig)
	}
	if err := wait(); err != nil {
		t.Fatalf("RunMaster after stop: %v", err)
	}
	r := readResult(t, dir)
	if r.State != StatusFinished || r.Savepoint == "" {
		t.Fatalf("result after stop = %+v", r)
	}
	if s, err := readCheckpoint(r.Savepoint); err != nil || s.meta.Type != typeSyncSavepoint {
		t.Errorf("stop savepoint: %v, %v", s, err)
	}
}

func TestRESTCancel(t *testing.T) {
	for _, tc := range []struct{ method, path string }{
		{"PATCH", "?mode=cancel"},
		{"PATCH", ""},
		{"GET", "/yarn-cancel"},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			dir := t.TempDir()
			base, jid, wait := startMaster(t, dir)
			status, body := call(t, tc.method, base+"/jobs/"+jid+tc.path, "")
			if status != 202 || len(body) != 0 {
				t.Fatalf("cancel: %d %v", status, body)
			}
			if err := wait(); err != nil {
				t.Fatalf("RunMaster after cancel: %v", err)
			}
			if r := readResult(t, dir); r.State != StatusCanceled || r.Error != "" {
				t.Errorf("result = %+v, want CANCELED", r)
			}
		})
	}
}

// TestRESTTerminalJob checks the handlers on a failed job without running a
// pipeline: exceptions, 409 on cancel, and operations failing at once.
func TestRESTTerminalJob(t *testing.T) {
	spec, err := ParseSpec([]byte(strings.Replace(unboundedSpec, "OUT", "/dev/null", 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	j := newJob(NewJobID(), spec, testLog(t), time.Now())
	reg := prometheus.NewRegistry()
	if j.metrics, err = newJobMetrics(reg, j, time.Now); err != nil {
		t.Fatal(err)
	}
	j.setStatus(StatusRunning)
	j.finish(outcome{status: StatusFailed, err: fmt.Errorf("sink: %w", errors.New("disk full"))})
	h := j.handler(reg)
	do := func(method, path, body string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s %s: %q: %v", method, path, rec.Body.String(), err)
		}
		return rec.Code, m
	}
	job := "/jobs/" + j.id

	_, ex := do("GET", job+"/exceptions", "")
	entries := obj(t, ex["exceptionHistory"])["entries"].([]any)
	if len(entries) != 1 {
		t.Fatalf("exceptions = %v", ex)
	}
	e := obj(t, entries[0])
	requireKeys(t, "exception entry", e, "exceptionName", "stacktrace", "timestamp", "failureLabels", "concurrentExceptions")
	if !strings.Contains(e["stacktrace"].(string), "disk full") || ex["root-exception"] != e["stacktrace"] {
		t.Errorf("exception = %v", ex)
	}
	if _, ex0 := do("GET", job+"/exceptions?maxExceptions=0", ""); ex0["truncated"] != true {
		t.Errorf("maxExceptions=0: %v", ex0)
	}

	if status, b := do("PATCH", job+"?mode=cancel", ""); status != 409 || !strings.Contains(b["errors"].([]any)[0].(string), "terminal state") {
		t.Errorf("cancel of failed job = %d %v", status, b)
	}
	_, d := do("GET", job, "")
	if d["state"] != "FAILED" || d["end-time"].(float64) <= 0 {
		t.Errorf("job = %v", d)
	}
	if v := obj(t, d["vertices"].([]any)[0]); v["status"] != "FAILED" {
		t.Errorf("vertex = %v", v)
	}

	status, trig := do("POST", job+"/savepoints", "")
	if status != 202 {
		t.Fatalf("savepoint trigger = %d %v", status, trig)
	}
	_, st := do("GET", job+"/savepoints/"+trig["request-id"].(string), "")
	if obj(t, st["status"])["id"] != "COMPLETED" {
		t.Fatalf("savepoint status = %v", st)
	}
	fc := obj(t, obj(t, st["operation"])["failure-cause"])
	requireKeys(t, "failure-cause", fc, "class", "stack-trace", "serialized-throwable")
	if !strings.Contains(fc["stack-trace"].(string), "not running") {
		t.Errorf("failure-cause = %v", fc)
	}
	_, o := do("GET", "/overview", "")
	if o["jobs-failed"].(float64) != 1 || o["jobs-running"].(float64) != 0 {
		t.Errorf("overview = %v", o)
	}
}

func jsonNum(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A job master running one container's share of a job spread over
// containers refuses savepoints, and its stop ends the job after a
// checkpoint of its share, in the share's own directory.
func TestRESTSharedJobStopsWithoutSavepoint(t *testing.T) {
	dir := t.TempDir()
	var layout Layout
	base, jid, wait := startMasterWith(t, dir, "parallelism: 2\n"+strings.Replace(unboundedSpec, "OUT", filepath.Join(dir, "out"), 1), func(o *MasterOptions) {
		var err error
		if *o, layout, err = InContainer(*o, 1); err != nil {
			t.Fatal(err)
		}
	})
	if layout.Containers != 2 {
		t.Fatalf("layout %+v, want 2 containers", layout)
	}
	job := base + "/jobs/" + jid
	if status, body := call(t, "GET", job+"/workers", ""); status != 200 || len(body["workers"].([]any)) != 0 {
		t.Errorf("GET workers: %d %v", status, body)
	}
	status, trig := call(t, "POST", job+"/savepoints", `{}`)
	if status != 202 {
		t.Fatalf("POST savepoints: %d %v", status, trig)
	}
	var sp map[string]any
	poll(t, "savepoint refusal", func() bool {
		_, sp = call(t, "GET", job+"/savepoints/"+trig["request-id"].(string), "")
		return obj(t, sp["status"])["id"] == "COMPLETED"
	})
	if fc := obj(t, obj(t, sp["operation"])["failure-cause"]); !strings.Contains(fc["stack-trace"].(string), "spread over several containers") {
		t.Errorf("savepoint of a share: %v", sp)
	}
	if status, trig = call(t, "POST", job+"/stop", `{}`); status != 202 {
		t.Fatalf("POST stop: %d %v", status, trig)
	}
	if err := wait(); err != nil {
		t.Fatalf("RunMaster after stop: %v", err)
	}
	if r := readResult(t, dir); r.State != StatusFinished || r.Savepoint != "" {
		t.Fatalf("result after stop = %+v, want FINISHED without a savepoint", r)
	}
	share := layout.CheckpointDir(filepath.Join(dir, "checkpoints"), 1)
	if m, _ := filepath.Glob(filepath.Join(share, "chk-*", "_metadata")); len(m) == 0 {
		t.Errorf("no checkpoint in the share's directory %s", share)
	}
}

func TestRESTWorkerRegistration(t *testing.T) {
	dir := t.TempDir()
	registered := map[int]string{}
	base, jid, _ := startMasterWith(t, dir, strings.Replace(unboundedSpec, "OUT", filepath.Join(dir, "out"), 1), func(o *MasterOptions) {
		o.Workers = func() any { return registered }
		o.RegisterWorker = func(k int, containerID, url string) error {
			if containerID != "container_1_0001_01_000002" {
				return fmt.Errorf("worker %d does not run in %s", k, containerID)
			}
			registered[k] = url
			return nil
		}
	})
	job := base + "/jobs/" + jid + "/workers/"
	put := func(url, body string) int {
		t.Helper()
		req, _ := http.NewRequest("PUT", url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		k, body string
		status  int
	}{
		{"1", `{"containerId": "container_1_0001_01_000002", "url": "http://node2:40001"}`, 204},
		{"1", `{"containerId": "container_1_0001_01_000003", "url": "http://node3:40001"}`, 409},
		{"1", `{"containerId": "container_1_0001_01_000002", "url": "node2:40001"}`, 400},
		{"0", `{"containerId": "container_1_0001_01_000002", "url": "http://node2:40001"}`, 400},
		{"1", `{"url":`, 400},
	} {
		if status := put(job+tc.k, tc.body); status != tc.status {
			t.Errorf("PUT workers/%s %s: %d, want %d", tc.k, tc.body, status, tc.status)
		}
	}
	if registered[1] != "http://node2:40001" || len(registered) != 1 {
		t.Errorf("registered %v", registered)
	}
	// Without worker containers there is nothing to register with.
	dir2 := t.TempDir()
	base2, jid2, _ := startMasterSpec(t, dir2, strings.Replace(unboundedSpec, "OUT", filepath.Join(dir2, "out"), 1))
	if status := put(base2+"/jobs/"+jid2+"/workers/1", `{"containerId": "c", "url": "http://h:1"}`); status != 404 {
		t.Errorf("PUT workers on a job without workers: %d, want 404", status)
	}
}
