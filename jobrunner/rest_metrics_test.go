package jobrunner

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestJavaDouble(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0.0", 0.25: "0.25", 100: "100.0", 1.5e-3: "0.0015", 9999999: "9999999.0",
		12345678: "1.2345678E7", 1e7: "1.0E7", 1e-4: "1.0E-4", -2.5e-5: "-2.5E-5", 3.0e100: "3.0E100",
	} {
		if got := javaDouble(f); got != want {
			t.Errorf("javaDouble(%v) = %q, want %q", f, got, want)
		}
	}
}

// getArray fetches a bare JSON array, as Flink's metric endpoints answer.
func getArray(t *testing.T, u string) []map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	var a []map[string]any
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("GET %s: %q is not an array: %v", u, b, err)
	}
	return a
}

// metricValues asks for ids (shape B) and returns their values.
func metricValues(t *testing.T, endpoint string, ids ...string) map[string]string {
	t.Helper()
	vals := map[string]string{}
	for _, m := range getArray(t, endpoint+"?get="+url.QueryEscape(strings.Join(ids, ","))) {
		v, ok := m["value"].(string)
		if !ok {
			t.Fatalf("%s: value of %v is not a string", endpoint, m)
		}
		vals[m["id"].(string)] = v
	}
	return vals
}

func TestRESTMetricEndpoints(t *testing.T) {
	base, jid, _ := startMaster(t, t.TempDir())

	// JobManager: shape A lists ids, shape B gives string values; unknown
	// ids are left out.
	ids := getArray(t, base+"/jobmanager/metrics")
	var listed []string
	for _, m := range ids {
		listed = append(listed, m["id"].(string))
	}
	for _, want := range []string{"Status.JVM.Memory.Heap.Used", "Status.JVM.CPU.Load", "Status.Go.Goroutines", "numRunningJobs"} {
		if !strings.Contains(strings.Join(listed, " "), want) {
			t.Errorf("/jobmanager/metrics does not list %s: %v", want, listed)
		}
	}
	jm := metricValues(t, base+"/jobmanager/metrics", "Status.JVM.Memory.Heap.Used", "Status.JVM.Memory.Heap.Max",
		"Status.Go.Goroutines", "numRunningJobs", "no.such.metric")
	if len(jm) != 4 {
		t.Errorf("got %v, want 4 values (the unknown id left out)", jm)
	}
	if n, err := strconv.ParseInt(jm["Status.JVM.Memory.Heap.Used"], 10, 64); err != nil || n <= 0 {
		t.Errorf("heap used %q", jm["Status.JVM.Memory.Heap.Used"])
	}
	// resources.memory's default, or a smaller cgroup limit.
	if want := strconv.FormatUint(memoryLimit(&Spec{Resources: ResourcesSpec{Memory: 1 << 30}}), 10); jm["Status.JVM.Memory.Heap.Max"] != want {
		t.Errorf("heap max %s, want the job's memory limit %s", jm["Status.JVM.Memory.Heap.Max"], want)
	}
	if jm["numRunningJobs"] != "1" {
		t.Errorf("numRunningJobs = %q", jm["numRunningJobs"])
	}

	// The TaskManager listed by /taskmanagers answers with the same process
	// metrics; an unknown one with [].
	_, tms := call(t, "GET", base+"/taskmanagers", "")
	tmid := obj(t, tms["taskmanagers"].([]any)[0])["id"].(string)
	tm := metricValues(t, base+"/taskmanagers/"+tmid+"/metrics", "Status.JVM.GarbageCollector.All.Count", "Status.JVM.Threads.Count")
	if len(tm) != 2 {
		t.Errorf("taskmanager metrics %v", tm)
	}
	if a := getArray(t, base+"/taskmanagers/nope/metrics?get=Status.JVM.CPU.Load"); len(a) != 0 {
		t.Errorf("unknown taskmanager: %v", a)
	}
	status, detail := call(t, "GET", base+"/taskmanagers/"+tmid, "")
	if status != 200 {
		t.Fatalf("taskmanager detail: %d", status)
	}
	requireKeys(t, "taskmanager metrics", obj(t, detail["metrics"]), "heapUsed", "heapMax", "nonHeapUsed", "garbageCollectors")
	if status, _ := call(t, "GET", base+"/taskmanagers/nope", ""); status != 404 {
		t.Errorf("unknown taskmanager detail: %d, want 404", status)
	}

	// Job metrics, with the latency histogram filled by markers (one per
	// second per source subtask).
	job := base + "/jobs/" + jid + "/metrics"
	var latencyMax string
	for _, m := range getArray(t, job) {
		if id := m["id"].(string); strings.HasSuffix(id, "latency_max") {
			latencyMax = id
		}
	}
	if latencyMax == "" {
		t.Fatal("no latency histogram among the job metrics")
	}
	poll(t, "a latency sample", func() bool {
		v := metricValues(t, job, latencyMax)[latencyMax]
		f, err := strconv.ParseFloat(v, 64)
		return err == nil && f >= 0 // NaN until the first marker
	})
	jv := metricValues(t, job, "numRestarts", "numberOfCompletedCheckpoints", "lastCheckpointExternalPath", "stateEntries")
	if jv["numRestarts"] != "0" {
		t.Errorf("numRestarts = %q", jv["numRestarts"])
	}
	poll(t, "a completed checkpoint in the job metrics", func() bool {
		n, _ := strconv.Atoi(metricValues(t, job, "numberOfCompletedCheckpoints")["numberOfCompletedCheckpoints"])
		return n > 0
	})

	// Prometheus: per-subtask series, process metrics and the histogram.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`tidewatch_job_operator_records_in_total{job_id="` + jid + `",job_name="rest-test",operator="window",subtask="0"}`,
		`tidewatch_job_state_entries{backend="heap",job_id="` + jid,
		"tidewatch_job_end_to_end_latency_seconds_bucket", "tidewatch_job_restarts",
		"tidewatch_process_heap_inuse_bytes", "tidewatch_process_memory_limit_bytes", "tidewatch_process_heap_load_ratio",
		"tidewatch_process_resident_memory_bytes", "tidewatch_process_gc_cycles_total", "tidewatch_process_cpu_load_ratio",
		"tidewatch_process_goroutines", "tidewatch_job_subtask_watermark_milliseconds",
	} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
