package jobrunner

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/procstat"
)

// The metric endpoints of Flink's REST API (FLINK_REST.md §11): without
// ?get= the ids available (shape A), with it their values as strings
// (shape B). The job master is one process, so the JobManager and the one
// TaskManager report the same process metrics, named as Flink's JVM metrics
// where the meaning carries over (heap, CPU, GC, threads) and under
// Status.Go / Status.Process where it does not.

// metricEntry is one metric of an endpoint; value formats it as Flink does.
type metricEntry struct {
	id    string
	value string
}

// serveMetrics answers a shape A or B request over entries.
func serveMetrics(w http.ResponseWriter, r *http.Request, entries []metricEntry) {
	get, asked := r.URL.Query()["get"]
	if !asked {
		out := make([]map[string]string, len(entries))
		for i, e := range entries {
			out[i] = map[string]string{"id": e.id}
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	out := []map[string]string{}
	for _, list := range get {
		for id := range strings.SplitSeq(list, ",") {
			// Ids that do not exist are left out, as Flink does.
			if i := slices.IndexFunc(entries, func(e metricEntry) bool { return e.id == id }); i >= 0 {
				out = append(out, map[string]string{"id": id, "value": entries[i].value})
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// javaDouble formats f as Java's Double.toString does, which is how Flink
// writes double gauges: "0.25", "100.0", "1.2345678E7", "NaN", "Infinity".
func javaDouble(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	if a := math.Abs(f); a >= 1e-3 && a < 1e7 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	// Scientific: one digit before the point, at least one after, "E" and
	// the exponent without sign padding.
	mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}

func javaLong(n int64) string { return strconv.FormatInt(n, 10) }

// processMetrics are the JobManager/TaskManager process metrics of sample s.
func processMetrics(s procstat.Sample) []metricEntry {
	heapMax := int64(-1)
	if s.MemoryLimit > 0 {
		heapMax = int64(s.MemoryLimit)
	}
	gcTime := javaLong(s.GCPauseTotal.Milliseconds())
	return []metricEntry{
		{"Status.JVM.CPU.Load", javaDouble(s.CPULoad)},
		{"Status.JVM.CPU.Time", javaLong(s.CPUTime.Nanoseconds())},
		{"Status.JVM.Memory.Heap.Used", javaLong(int64(s.HeapInUse))},
		{"Status.JVM.Memory.Heap.Committed", javaLong(int64(s.HeapCommitted))},
		{"Status.JVM.Memory.Heap.Max", javaLong(heapMax)},
		{"Status.JVM.Memory.NonHeap.Used", javaLong(int64(s.NonHeap()))},
		{"Status.JVM.Memory.NonHeap.Committed", javaLong(int64(s.NonHeap()))},
		{"Status.JVM.Memory.NonHeap.Max", "-1"},
		{"Status.JVM.Threads.Count", strconv.Itoa(s.Threads)},
		{"Status.JVM.GarbageCollector.Go.Count", javaLong(int64(s.GCCycles))},
		{"Status.JVM.GarbageCollector.Go.Time", gcTime},
		{"Status.JVM.GarbageCollector.All.Count", javaLong(int64(s.GCCycles))},
		{"Status.JVM.GarbageCollector.All.Time", gcTime},
		{"Status.JVM.GarbageCollector.All.TimeMsPerSecond", javaDouble(s.GCTimeMsPerSecond)},
		{"Status.Go.Goroutines", strconv.Itoa(s.Goroutines)},
		{"Status.Go.Heap.InUse", javaLong(int64(s.HeapInUse))},
		{"Status.Go.Heap.Load", javaDouble(s.HeapLoad())},
		{"Status.Go.MemoryLimit", javaLong(int64(s.MemoryLimit))},
		{"Status.Process.RSS", javaLong(int64(s.RSS))},
		{"Status.Process.CPU.Cores", strconv.Itoa(s.NumCPU)},
	}
}

func (j *job) getJobManagerMetrics(w http.ResponseWriter, r *http.Request) {
	v := j.view()
	running, free := 0, j.subtasks()
	if !v.status.Terminal() {
		running, free = 1, 0
	}
	entries := append(processMetrics(j.proc.Last()),
		metricEntry{"numRegisteredTaskManagers", "1"},
		metricEntry{"numRunningJobs", strconv.Itoa(running)},
		metricEntry{"taskSlotsTotal", strconv.Itoa(j.subtasks())},
		metricEntry{"taskSlotsAvailable", strconv.Itoa(free)},
	)
	serveMetrics(w, r, entries)
}

func (j *job) getTaskManagerMetrics(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("tmid") != j.taskManagerID() {
		writeJSON(w, http.StatusOK, []any{}) // an unknown component: [] as in Flink
		return
	}
	serveMetrics(w, r, processMetrics(j.proc.Last()))
}

// getJobMetrics is /jobs/:id/metrics: restarts, checkpoints, lateness and
// the end-to-end latency histogram.
func (j *job) getJobMetrics(w http.ResponseWriter, r *http.Request) {
	v := j.view()
	j.mu.Lock()
	c := j.ckpt
	var lastDur, lastSize int64 = -1, -1
	lastPath := "n/a"
	if e := c.latestCompleted; e != nil {
		lastDur, lastSize = e.EndToEndDuration, e.StateSize
		if e.ExternalPath != nil {
			lastPath = *e.ExternalPath
		}
	}
	restoreTs := int64(-1)
	if c.restoredFrom != nil {
		restoreTs = c.restoredFrom.RestoreTimestamp
	}
	j.mu.Unlock()
	running := int64(0)
	if v.status == StatusRunning {
		running = v.now - v.timestamps[string(StatusRunning)]
	}
	entries := []metricEntry{
		{"numRestarts", strconv.Itoa(max(0, j.attempt-1))},
		{"runningTime", javaLong(running)},
		{"uptime", javaLong(running)},
		{"lastCheckpointDuration", javaLong(lastDur)},
		{"lastCheckpointSize", javaLong(lastSize)},
		{"lastCheckpointFullSize", javaLong(lastSize)},
		{"lastCheckpointExternalPath", lastPath},
		{"lastCheckpointRestoreTimestamp", javaLong(restoreTs)},
		{"numberOfInProgressCheckpoints", javaLong(c.inProgress)},
		{"numberOfCompletedCheckpoints", javaLong(c.completed)},
		{"numberOfFailedCheckpoints", javaLong(c.failed)},
		{"totalNumberOfCheckpoints", javaLong(c.total)},
		{"numLateRecordsDropped", javaLong(j.lateDropped.Load())},
		{"numLateRecordsSideOutput", javaLong(j.lateSideOutput.Load())},
		{"stateEntries", javaLong(j.stateEntries.Load())},
	}
	if j.spec.Keyed() {
		// Flink's id form at operator granularity (§15.6).
		prefix := "latency.source_id." + j.vertices[0].id + ".operator_id." + j.vertices[1].id + ".latency"
		for _, st := range j.latency.stats() {
			entries = append(entries, metricEntry{prefix + "_" + st.name, javaDouble(st.value)})
		}
	}
	serveMetrics(w, r, entries)
}

// latencyWindow keeps the most recent latency samples for the REST
// histogram, as Flink's latency histograms keep a sliding window.
type latencyWindow struct {
	mu   sync.Mutex
	ring [latencySamples]float64 // ms
	n    int                     // samples ever added
}

const latencySamples = 1024

func (l *latencyWindow) add(d time.Duration) {
	l.mu.Lock()
	l.ring[l.n%latencySamples] = float64(d) / float64(time.Millisecond)
	l.n++
	l.mu.Unlock()
}

type histStat struct {
	name  string
	value float64
}

// stats are Flink's eleven histogram statistics (§11.4) over the window;
// NaN with no samples.
func (l *latencyWindow) stats() []histStat {
	l.mu.Lock()
	xs := slices.Clone(l.ring[:min(l.n, latencySamples)])
	l.mu.Unlock()
	slices.Sort(xs)
	q := func(p float64) float64 {
		if len(xs) == 0 {
			return math.NaN()
		}
		return xs[min(len(xs)-1, int(p*float64(len(xs))))]
	}
	mean, sd := math.NaN(), math.NaN()
	if len(xs) > 0 {
		var sum float64
		for _, x := range xs {
			sum += x
		}
		mean = sum / float64(len(xs))
		var ss float64
		for _, x := range xs {
			ss += (x - mean) * (x - mean)
		}
		sd = 0
		if len(xs) > 1 {
			sd = math.Sqrt(ss / float64(len(xs)-1))
		}
	}
	return []histStat{
		{"min", q(0)}, {"max", q(1)}, {"mean", mean}, {"median", q(0.5)}, {"stddev", sd},
		{"p75", q(0.75)}, {"p90", q(0.9)}, {"p95", q(0.95)}, {"p98", q(0.98)}, {"p99", q(0.99)}, {"p999", q(0.999)},
	}
}
