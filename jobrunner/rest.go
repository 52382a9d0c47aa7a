package jobrunner

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tidewatch/tidewatch/jobrunner/procstat"
)

// The job master's REST API follows the shapes of Flink's JobManager REST
// API (1.17–1.20, see docs FLINK_REST.md), for the one job this process
// runs. Every endpoint is also served under the /v1 prefix.

// flinkVersion names the Flink REST shapes this server emits.
const flinkVersion = "1.20-tidewatch"

// ExecutionState names (vertex/subtask states), in Flink's enum order.
var executionStates = []string{
	"CREATED", "SCHEDULED", "DEPLOYING", "RUNNING", "FINISHED",
	"CANCELING", "CANCELED", "FAILED", "RECONCILING", "INITIALIZING",
}

func (j *job) handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /overview", j.getOverview)
	if j.ingest != nil {
		// The http source: records POSTed here are logged durably, then read by the job.
		mux.Handle("POST /ingest", j.ingest)
	}
	mux.HandleFunc("GET /jobs", j.getJobs)
	mux.HandleFunc("GET /jobs/overview", j.getJobsOverview)
	mux.HandleFunc("GET /jobs/{jid}", j.withJob(j.getJob))
	mux.HandleFunc("PATCH /jobs/{jid}", j.withJob(j.patchJob))
	mux.HandleFunc("GET /jobs/{jid}/status", j.withJob(j.getStatus))
	mux.HandleFunc("GET /jobs/{jid}/plan", j.withJob(j.getPlan))
	mux.HandleFunc("GET /jobs/{jid}/config", j.withJob(j.getJobConfig))
	mux.HandleFunc("GET /jobs/{jid}/exceptions", j.withJob(j.getExceptions))
	mux.HandleFunc("GET /jobs/{jid}/checkpoints", j.withJob(j.getCheckpoints))
	mux.HandleFunc("POST /jobs/{jid}/checkpoints", j.withJob(j.postCheckpoint))
	mux.HandleFunc("GET /jobs/{jid}/checkpoints/config", j.withJob(j.getCheckpointConfig))
	mux.HandleFunc("GET /jobs/{jid}/checkpoints/details/{cid}", j.withJob(j.getCheckpointDetails))
	mux.HandleFunc("GET /jobs/{jid}/checkpoints/{tid}", j.withJob(j.getCheckpointStatus))
	mux.HandleFunc("POST /jobs/{jid}/savepoints", j.withJob(j.postSavepoint))
	mux.HandleFunc("GET /jobs/{jid}/savepoints/{tid}", j.withJob(j.getSavepointStatus))
	mux.HandleFunc("POST /jobs/{jid}/stop", j.withJob(j.postStop))
	mux.HandleFunc("GET /jobs/{jid}/yarn-cancel", j.withJob(j.yarnCancel))
	mux.HandleFunc("GET /jobs/{jid}/workers", j.withJob(j.getWorkers))
	mux.HandleFunc("PUT /jobs/{jid}/workers/{k}", j.withJob(j.putWorker))
	mux.HandleFunc("GET /taskmanagers", j.getTaskManagers)
	mux.HandleFunc("GET /taskmanagers/{tmid}", j.getTaskManager)
	mux.HandleFunc("GET /taskmanagers/{tmid}/metrics", j.getTaskManagerMetrics)
	mux.HandleFunc("GET /jobmanager/metrics", j.getJobManagerMetrics)
	mux.HandleFunc("GET /jobs/{jid}/metrics", j.withJob(j.getJobMetrics))
	mux.HandleFunc("POST /jobs/{jid}/state-backend/migrations", j.withJob(j.postMigration))
	mux.HandleFunc("GET /jobs/{jid}/state-backend/migrations", j.withJob(j.getMigration))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/"); ok {
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = "/"+rest, ""
			r = r2
		}
		// Flink answers unrouted URL/method combinations with 404 (not 405).
		if _, pattern := mux.Handler(r); pattern == "" {
			writeError(w, http.StatusNotFound, "Not found: "+r.RequestURI)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Internal server error.", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, msgs ...string) {
	b, _ := json.Marshal(map[string][]string{"errors": msgs})
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusBadRequest, "Bad request, could not parse parameters: "+fmt.Sprintf(format, args...))
}

// withJob checks the {jid} path parameter.
func (j *job) withJob(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		jid := r.PathValue("jid")
		if !jobIDRE.MatchString(jid) {
			badRequest(w, "job id %q is not 32 lower-case hex characters", jid)
			return
		}
		if jid != j.id {
			writeError(w, http.StatusNotFound, "Job "+jid+" not found")
			return
		}
		h(w, r)
	}
}

// jobView is a consistent copy of the job's mutable state.
type jobView struct {
	status     JobStatus
	timestamps map[string]int64
	start, end int64
	now        int64
	runStart   int64 // -1 if the pipeline has not started
}

func (j *job) view() jobView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := jobView{
		status:     j.status,
		timestamps: make(map[string]int64, len(allJobStatuses)),
		start:      j.startTime.UnixMilli(),
		end:        j.endTime,
		now:        time.Now().UnixMilli(),
		runStart:   -1,
	}
	for _, s := range allJobStatuses {
		v.timestamps[string(s)] = j.timestamps[s]
	}
	if ns := j.runStartNs.Load(); ns > 0 {
		v.runStart = ns / int64(time.Millisecond)
	}
	return v
}

func (v jobView) duration() int64 {
	if v.end >= 0 {
		return v.end - v.start
	}
	return v.now - v.start
}

// executionState maps the job status to the state of its (co-scheduled)
// subtasks.
func (v jobView) executionState() string {
	switch v.status {
	case StatusRunning:
		return "RUNNING"
	case StatusCancelling:
		return "CANCELING"
	case StatusCanceled:
		return "CANCELED"
	case StatusFinished:
		return "FINISHED"
	case StatusFailed, StatusFailing:
		return "FAILED"
	}
	return "CREATED"
}

// taskCounts maps every ExecutionState to the number of n subtasks in it;
// lower selects the lower-case keys plus "total" of /jobs/overview.
func taskCounts(v jobView, n int, lower bool) map[string]int {
	m := make(map[string]int, len(executionStates)+1)
	for _, s := range executionStates {
		if lower {
			s = strings.ToLower(s)
		}
		m[s] = 0
	}
	key := v.executionState()
	if lower {
		key = strings.ToLower(key)
		m["total"] = n
	}
	m[key] = n
	return m
}

func (j *job) getOverview(w http.ResponseWriter, _ *http.Request) {
	v := j.view()
	counts := map[JobStatus]int{v.status: 1}
	slots := j.subtasks()
	free := 0
	if v.status.Terminal() {
		free = slots
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"taskmanagers": 1, "slots-total": slots, "slots-available": free,
		"jobs-running":   boolInt(!v.status.Terminal()),
		"jobs-finished":  counts[StatusFinished],
		"jobs-cancelled": counts[StatusCanceled],
		"jobs-failed":    counts[StatusFailed],
		"flink-version":  flinkVersion,
		"flink-commit":   "tidewatch",
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (j *job) getJobs(w http.ResponseWriter, _ *http.Request) {
	v := j.view()
	writeJSON(w, http.StatusOK, map[string]any{
		"jobs": []map[string]any{{"id": j.id, "status": v.status}},
	})
}

func (j *job) getJobsOverview(w http.ResponseWriter, _ *http.Request) {
	v := j.view()
	writeJSON(w, http.StatusOK, map[string]any{"jobs": []map[string]any{{
		"jid": j.id, "name": j.spec.Name,
		"start-time": v.start, "end-time": v.end, "duration": v.duration(),
		"state": v.status, "last-modification": lastModification(v),
		"tasks": taskCounts(v, j.subtasks(), true),
	}}})
}

func lastModification(v jobView) int64 {
	var last int64
	for _, t := range v.timestamps {
		last = max(last, t)
	}
	return last
}

func (j *job) getStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": j.view().status})
}

// ioMetrics is Flink's IOMetricsInfo.
type ioMetrics struct {
	ReadBytes                int64 `json:"read-bytes"`
	ReadBytesComplete        bool  `json:"read-bytes-complete"`
	WriteBytes               int64 `json:"write-bytes"`
	WriteBytesComplete       bool  `json:"write-bytes-complete"`
	ReadRecords              int64 `json:"read-records"`
	ReadRecordsComplete      bool  `json:"read-records-complete"`
	WriteRecords             int64 `json:"write-records"`
	WriteRecordsComplete     bool  `json:"write-records-complete"`
	AccumulatedBackpressured int64 `json:"accumulated-backpressured-time"`
	AccumulatedIdle          int64 `json:"accumulated-idle-time"`
	AccumulatedBusy          any   `json:"accumulated-busy-time"` // ms, or "NaN" when not measured (as Flink)
}

func (j *job) vertexInfos(v jobView) []map[string]any {
	// Bytes are 0: records are not serialized in process. Time blocked on a
	// full downstream channel is the source vertex's backpressure; time
	// waiting for input is its idle time. The window vertex reports neither.
	srcIdle := j.idleNanos.Load() / int64(time.Millisecond)
	bp := j.backpressureNs.Load() / int64(time.Millisecond)
	start, end, dur := v.runStart, int64(-1), int64(-1)
	if start >= 0 {
		to := v.now
		if v.end >= 0 {
			end, to = v.end, v.end
		}
		dur = to - start
	}
	records := [][2]int64{{0, j.sourceOut.Load()}} // source: reads nothing from upstream tasks
	if len(j.vertices) > 1 {
		records = append(records, [2]int64{j.windowIn.Load(), 0}) // window -> sink: emits nothing downstream
	}
	out := make([]map[string]any, len(j.vertices))
	for i, vx := range j.vertices {
		m := ioMetrics{
			ReadBytesComplete: true, WriteBytesComplete: true,
			ReadRecords: records[i][0], ReadRecordsComplete: true,
			WriteRecords: records[i][1], WriteRecordsComplete: true,
			AccumulatedBusy: "NaN", // not measured for the window vertex
		}
		if i == 0 && dur >= 0 {
			m.AccumulatedIdle, m.AccumulatedBackpressured = srcIdle, bp
			m.AccumulatedBusy = float64(max(dur*int64(vx.parallelism)-srcIdle-bp, 0))
		}
		out[i] = map[string]any{
			"id": vx.id, "name": vx.name,
			"maxParallelism": j.spec.MaxParallelism, "parallelism": vx.parallelism,
			"status":     v.executionState(),
			"start-time": start, "end-time": end, "duration": dur,
			"tasks":   taskCounts(v, vx.parallelism, false),
			"metrics": m,
		}
	}
	return out
}

func (j *job) plan() map[string]any {
	nodes := make([]map[string]any, len(j.vertices))
	for i, vx := range j.vertices {
		n := map[string]any{
			"id": vx.id, "parallelism": vx.parallelism,
			"operator": "", "operator_strategy": "",
			"description":          strings.ReplaceAll(vx.name, " -> ", "<br/>+- ") + "<br/>",
			"optimizer_properties": map[string]any{},
		}
		if i > 0 {
			n["inputs"] = []map[string]any{{
				"num": 0, "id": j.vertices[i-1].id,
				"ship_strategy": "HASH", "exchange": "pipelined_bounded",
			}}
		}
		nodes[i] = n
	}
	return map[string]any{"jid": j.id, "name": j.spec.Name, "type": "STREAMING", "nodes": nodes}
}

func (j *job) getJob(w http.ResponseWriter, _ *http.Request) {
	v := j.view()
	statusCounts := make(map[string]int, len(executionStates))
	for _, s := range executionStates {
		statusCounts[s] = 0
	}
	statusCounts[v.executionState()] = len(j.vertices)
	writeJSON(w, http.StatusOK, map[string]any{
		"jid": j.id, "name": j.spec.Name, "isStoppable": false,
		"state": v.status, "job-type": "STREAMING",
		"start-time": v.start, "end-time": v.end, "duration": v.duration(),
		"maxParallelism": j.spec.MaxParallelism, "now": v.now,
		"timestamps":    v.timestamps,
		"vertices":      j.vertexInfos(v),
		"status-counts": statusCounts,
		"plan":          j.plan(),
	})
}

func (j *job) getPlan(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"plan": j.plan()})
}

func (j *job) getJobConfig(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"jid": j.id, "name": j.spec.Name,
		"execution-config": map[string]any{
			"execution-mode":   "PIPELINED",
			"restart-strategy": "No restart in the job master (restarts are managed by the Tidewatch daemon)",
			"job-parallelism":  j.spec.Parallelism, "object-reuse-mode": false,
			"user-config": map[string]any{},
		},
	})
}

func (j *job) getExceptions(w http.ResponseWriter, r *http.Request) {
	limit := 20
	if s := r.URL.Query().Get("maxExceptions"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			badRequest(w, "maxExceptions must be a non-negative integer, got %q", s)
			return
		}
		limit = n
	}
	j.mu.Lock()
	exc := slices.Clone(j.exceptions)
	j.mu.Unlock()
	truncated := len(exc) > limit
	if truncated {
		exc = exc[:limit]
	}
	entries := make([]map[string]any, len(exc))
	for i, e := range exc {
		entries[i] = map[string]any{
			"exceptionName": e.Name, "stacktrace": e.Message, "timestamp": e.Timestamp,
			"failureLabels": map[string]string{}, "concurrentExceptions": []any{},
		}
	}
	var root, ts any // null unless there is a failure
	if len(exc) > 0 {
		root, ts = exc[0].Message, exc[0].Timestamp
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"root-exception": root, "timestamp": ts, "all-exceptions": []any{}, "truncated": truncated,
		"exceptionHistory": map[string]any{"entries": entries, "truncated": truncated},
	})
}

// stats is Flink's StatsSummaryDto.
type stats struct {
	Min  int64   `json:"min"`
	Max  int64   `json:"max"`
	Avg  int64   `json:"avg"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
}

func summarize(values []int64) stats {
	if len(values) == 0 {
		return stats{}
	}
	s := slices.Clone(values)
	slices.Sort(s)
	var sum int64
	for _, v := range s {
		sum += v
	}
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return float64(s[max(i, 0)])
	}
	return stats{
		Min: s[0], Max: s[len(s)-1], Avg: sum / int64(len(s)),
		P50: q(0.5), P90: q(0.9), P95: q(0.95), P99: q(0.99), P999: q(0.999),
	}
}

func (j *job) getCheckpoints(w http.ResponseWriter, _ *http.Request) {
	j.mu.Lock()
	c := &j.ckpt
	zeros := make([]int64, len(c.durations))
	body := map[string]any{
		"counts": map[string]int64{
			"restored": c.restored, "total": c.total, "in_progress": c.inProgress,
			"completed": c.completed, "failed": c.failed,
		},
		"summary": map[string]stats{
			"checkpointed_size":   summarize(c.sizes),
			"state_size":          summarize(c.sizes),
			"end_to_end_duration": summarize(c.durations),
			"alignment_buffered":  summarize(zeros),
			"processed_data":      summarize(zeros),
			"persisted_data":      summarize(zeros),
		},
		"latest": map[string]any{
			"completed": c.latestCompleted, "savepoint": c.latestSavepoint,
			"failed": c.latestFailed, "restored": c.restoredFrom,
		},
		"history": c.history,
	}
	b, err := json.Marshal(body) // under the lock: entries are updated in place
	j.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Internal server error.", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_, _ = w.Write(b)
}

func (j *job) getCheckpointDetails(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("cid"), 10, 64)
	if err != nil {
		badRequest(w, "checkpoint id %q is not a number", r.PathValue("cid"))
		return
	}
	j.mu.Lock()
	var b []byte
	for _, e := range j.ckpt.history {
		if e.ID == id {
			b, err = json.Marshal(e)
			break
		}
	}
	j.mu.Unlock()
	switch {
	case err != nil:
		writeError(w, http.StatusInternalServerError, "Internal server error.", err.Error())
	case b == nil:
		writeError(w, http.StatusNotFound, fmt.Sprintf("Could not find checkpointing statistics for checkpoint %d.", id))
	default:
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		_, _ = w.Write(b)
	}
}

func (j *job) getCheckpointConfig(w http.ResponseWriter, _ *http.Request) {
	interval := j.spec.Checkpoint.Interval.Milliseconds()
	if interval == 0 {
		interval = math.MaxInt64 // Flink's "periodic checkpoints disabled"
	}
	mode := "exactly_once"
	if j.spec.Sink.Type != SinkFile {
		mode = "at_least_once" // a stream sink cannot be rewound
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"mode": mode, "interval": interval, "timeout": 0, "min_pause": 0, "max_concurrent": 1,
		"externalization":                             map[string]bool{"enabled": true, "delete_on_cancellation": false},
		"state_backend":                               "TidewatchHeapStateBackend",
		"checkpoint_storage":                          "LocalDirectoryCheckpointStorage",
		"unaligned_checkpoints":                       false,
		"tolerable_failed_checkpoints":                math.MaxInt32,
		"aligned_checkpoint_timeout":                  0,
		"checkpoints_after_tasks_finish":              true,
		"state_changelog_enabled":                     false,
		"changelog_periodic_materialization_interval": 0,
		"changelog_storage":                           "none",
	})
}

// decodeBody decodes an optional JSON request body.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}

func validTrigger(w http.ResponseWriter, id string) bool {
	if id != "" && !jobIDRE.MatchString(id) {
		badRequest(w, "triggerId %q is not 32 lower-case hex characters", id)
		return false
	}
	return true
}

func validFormat(w http.ResponseWriter, f string) bool {
	switch f {
	case "", "CANONICAL", "NATIVE": // one format; both restore the same way
		return true
	}
	badRequest(w, "formatType must be CANONICAL or NATIVE, got %q", f)
	return false
}

func (j *job) trigger(w http.ResponseWriter, kind, triggerID string, req *controlRequest) {
	op, ok := j.submit(kind, triggerID, req)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "Too many pending operations; retry later.")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"request-id": op.key.triggerID})
}

// getWorkers lists the job's worker containers (Tidewatch's own; empty
// unless the job runs in several YARN containers).
func (j *job) getWorkers(w http.ResponseWriter, _ *http.Request) {
	var workers any = []any{}
	if j.workers != nil {
		if v := j.workers(); v != nil {
			workers = v
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": workers})
}

// putWorker takes a worker container's registration of its REST endpoint:
// {"containerId": "container_…", "url": "http://host:port"}.
func (j *job) putWorker(w http.ResponseWriter, r *http.Request) {
	if j.registerWorker == nil {
		writeError(w, http.StatusNotFound, "This job has no worker containers.")
		return
	}
	k, err := strconv.Atoi(r.PathValue("k"))
	if err != nil || k < 1 {
		writeError(w, http.StatusBadRequest, "The worker number must be a positive integer, got "+strconv.Quote(r.PathValue("k"))+".")
		return
	}
	var body struct {
		ContainerID string `json:"containerId"`
		URL         string `json:"url"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "Bad request, could not parse request body: "+err.Error())
		return
	}
	if u, err := url.Parse(body.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		writeError(w, http.StatusBadRequest, "url: must be an http(s) URL with a host, got "+strconv.Quote(body.URL)+".")
		return
	}
	if err := j.registerWorker(k, body.ContainerID, body.URL); err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (j *job) postSavepoint(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TargetDirectory string `json:"target-directory"`
		CancelJob       bool   `json:"cancel-job"`
		TriggerID       string `json:"triggerId"`
		FormatType      string `json:"formatType"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "Bad request, could not parse request body: "+err.Error())
		return
	}
	if !validTrigger(w, body.TriggerID) || !validFormat(w, body.FormatType) {
		return
	}
	j.trigger(w, "savepoint", body.TriggerID, &controlRequest{
		kind: ctrlSavepoint, targetDir: body.TargetDirectory, cancelJob: body.CancelJob,
	})
}

func (j *job) postStop(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TargetDirectory string `json:"targetDirectory"`
		Drain           bool   `json:"drain"`
		TriggerID       string `json:"triggerId"`
		FormatType      string `json:"formatType"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "Bad request, could not parse request body: "+err.Error())
		return
	}
	if !validTrigger(w, body.TriggerID) || !validFormat(w, body.FormatType) {
		return
	}
	j.trigger(w, "savepoint", body.TriggerID, &controlRequest{
		kind: ctrlStop, targetDir: body.TargetDirectory, drain: body.Drain,
	})
}

func (j *job) postCheckpoint(w http.ResponseWriter, r *http.Request) {
	var body struct {
		CheckpointType string `json:"checkpointType"`
		TriggerID      string `json:"triggerId"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "Bad request, could not parse request body: "+err.Error())
		return
	}
	if !validTrigger(w, body.TriggerID) {
		return
	}
	switch body.CheckpointType {
	case "", "CONFIGURED", "FULL": // every checkpoint is a full one
	default:
		badRequest(w, "checkpointType %q is not supported (CONFIGURED, FULL)", body.CheckpointType)
		return
	}
	j.trigger(w, "checkpoint", body.TriggerID, &controlRequest{kind: ctrlCheckpoint})
}

func failureCause(err error) map[string]string {
	return map[string]string{
		"class": fmt.Sprintf("%T", err), "stack-trace": err.Error(), "serialized-throwable": "",
	}
}

func (j *job) getSavepointStatus(w http.ResponseWriter, r *http.Request) {
	tid := r.PathValue("tid")
	op, ok := j.opSnapshot(opKey{"savepoint", tid})
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("There is no savepoint operation with triggerId=%s for job %s.", tid, j.id))
		return
	}
	var operation any
	switch {
	case !op.done:
	case op.err != nil:
		operation = map[string]any{"failure-cause": failureCause(op.err)}
	default:
		operation = map[string]any{"location": op.location}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": map[string]string{"id": opStatus(op)}, "operation": operation})
}

func (j *job) getCheckpointStatus(w http.ResponseWriter, r *http.Request) {
	tid := r.PathValue("tid")
	op, ok := j.opSnapshot(opKey{"checkpoint", tid})
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Operation not found under key: %s/%s", j.id, tid))
		return
	}
	var operation any
	switch {
	case !op.done:
	case op.err != nil:
		operation = map[string]any{"failureCause": failureCause(op.err)}
	default:
		operation = map[string]any{"checkpointId": op.checkpointID}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": map[string]string{"id": opStatus(op)}, "operation": operation})
}

func opStatus(op asyncOp) string {
	if op.done {
		return "COMPLETED"
	}
	return "IN_PROGRESS"
}

func (j *job) patchJob(w http.ResponseWriter, r *http.Request) {
	switch mode := r.URL.Query().Get("mode"); mode {
	case "", "cancel":
		j.cancelRequest(w)
	case "stop":
		writeError(w, http.StatusPermanentRedirect,
			"Stop mode is not supported here; use mode=cancel, or POST /jobs/"+j.id+"/stop for stop-with-savepoint.")
	default:
		badRequest(w, "mode must be cancel, got %q", mode)
	}
}

func (j *job) yarnCancel(w http.ResponseWriter, _ *http.Request) { j.cancelRequest(w) }

func (j *job) cancelRequest(w http.ResponseWriter) {
	if st, ok := j.requestCancel(); !ok {
		writeError(w, http.StatusConflict, fmt.Sprintf("Job %s has already reached another terminal state (%s).", j.id, st))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{})
}

// taskManagerID is the id of the job master's one TaskManager: every
// subtask runs in this process.
func (j *job) taskManagerID() string {
	host := "127.0.0.1"
	if u, err := url.Parse(j.url); err == nil && u.Host != "" {
		host = u.Host
	}
	return host + "-" + j.id[:6]
}

// taskManagerInfo is Flink's TaskManagerInfo (§12.1) for this process. The
// heap figures are the Go heap against the job's memory limit.
func (j *job) taskManagerInfo(v jobView, s procstat.Sample) map[string]any {
	slots := j.subtasks()
	heap := int64(s.MemoryLimit)
	if heap == 0 {
		heap = int64(s.HeapCommitted)
	}
	total := map[string]any{
		"cpuCores": float64(s.NumCPU), "taskHeapMemory": heap >> 20,
		"taskOffHeapMemory": 0, "managedMemory": 0, "networkMemory": 0,
		"extendedResources": map[string]float64{},
	}
	free := map[string]any{
		"cpuCores": 0.0, "taskHeapMemory": 0, "taskOffHeapMemory": 0, "managedMemory": 0,
		"networkMemory": 0, "extendedResources": map[string]float64{},
	}
	freeSlots := 0
	if v.status.Terminal() {
		free, freeSlots = total, slots
	}
	return map[string]any{
		"id":                     j.taskManagerID(),
		"path":                   "tidewatch://" + strings.TrimSuffix(j.taskManagerID(), "-"+j.id[:6]) + "/taskmanager_0",
		"dataPort":               -1, // in-process: no shuffle port
		"jmxPort":                -1,
		"timeSinceLastHeartbeat": v.now, // in process: always current
		"slotsNumber":            slots, "freeSlots": freeSlots,
		"totalResource": total, "freeResource": free,
		"hardware": map[string]any{
			"cpuCores": s.NumCPU, "physicalMemory": physicalMemory(),
			"freeMemory": heap, "managedMemory": 0,
		},
		"memoryConfiguration": map[string]any{
			"frameworkHeap": 0, "taskHeap": heap, "frameworkOffHeap": 0, "taskOffHeap": 0,
			"networkMemory": 0, "managedMemory": 0, "jvmMetaspace": 0, "jvmOverhead": 0,
			"totalFlinkMemory": heap, "totalProcessMemory": int64(s.MemoryLimit),
		},
	}
}

func (j *job) getTaskManagers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"taskmanagers": []map[string]any{j.taskManagerInfo(j.view(), j.proc.Last())}})
}

// getTaskManager is TaskManagerDetailsInfo (§12.2).
func (j *job) getTaskManager(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("tmid") != j.taskManagerID() {
		writeError(w, http.StatusNotFound, "TaskManager "+r.PathValue("tmid")+" does not exist.")
		return
	}
	v, s := j.view(), j.proc.Last()
	info := j.taskManagerInfo(v, s)
	info["allocatedSlots"] = []map[string]any{}
	if !v.status.Terminal() {
		info["allocatedSlots"] = []map[string]any{{"jobId": j.id, "resource": info["totalResource"]}}
	}
	heapMax := int64(-1)
	if s.MemoryLimit > 0 {
		heapMax = int64(s.MemoryLimit)
	}
	info["metrics"] = map[string]any{
		"heapUsed": s.HeapInUse, "heapCommitted": s.HeapCommitted, "heapMax": heapMax,
		"nonHeapUsed": s.NonHeap(), "nonHeapCommitted": s.NonHeap(), "nonHeapMax": -1,
		"directCount": 0, "directUsed": 0, "directMax": 0, "mappedCount": 0, "mappedUsed": 0, "mappedMax": 0,
		"memorySegmentsAvailable": 0, "memorySegmentsTotal": 0,
		"nettyShuffleMemorySegmentsAvailable": 0, "nettyShuffleMemorySegmentsUsed": 0, "nettyShuffleMemorySegmentsTotal": 0,
		"nettyShuffleMemoryAvailable": 0, "nettyShuffleMemoryUsed": 0, "nettyShuffleMemoryTotal": 0,
		"garbageCollectors": []map[string]any{{"name": "Go", "count": s.GCCycles, "time": s.GCPauseTotal.Milliseconds()}},
	}
	writeJSON(w, http.StatusOK, info)
}

// physicalMemory returns the host's memory in bytes from /proc/meminfo, or 0
// where that is not available.
func physicalMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
