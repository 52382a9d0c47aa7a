package jobrunner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
	"github.com/tidewatch/tidewatch/jobrunner/procstat"
)

// job is the job master's view of a running job: what the REST API reports
// and the channel through which it asks the pipeline for checkpoints,
// savepoints and stops. Counters written by the pipeline are atomics; the
// rest is guarded by mu. The pipeline never waits on mu for longer than a
// field update.
type job struct {
	id        string
	spec      *Spec
	log       *logrus.Entry
	metrics   *jobMetrics
	store     *checkpointStore
	vertices  []vertex
	startTime time.Time
	url       string
	ingest    http.Handler // the http source's endpoint, or nil
	workers   func() any   // MasterOptions.Workers
	// registerWorker is MasterOptions.RegisterWorker.
	registerWorker func(k int, containerID, url string) error
	proc           *procstat.Sampler
	attempt        int // deployment attempt, 1 for the first
	latency        latencyWindow
	eng            atomic.Pointer[flow.Engine] // the running engine, for metrics
	migr           migrations

	// Published by the pipeline after every batch.
	sourceOut      atomic.Int64
	windowIn       atomic.Int64
	windowOut      atomic.Int64
	sinkOut        atomic.Int64
	idleNanos      atomic.Int64 // source subtasks waiting for input, summed
	backpressureNs atomic.Int64
	watermark      atomic.Int64
	runStartNs     atomic.Int64 // wall time the pipeline started, unix ns
	lateDropped    atomic.Int64
	lateSideOutput atomic.Int64
	stateEntries   atomic.Int64

	ctrl chan *controlRequest

	mu         sync.Mutex
	status     JobStatus
	timestamps map[JobStatus]int64
	endTime    int64
	accepting  bool // the pipeline (or its queue) takes control requests
	cancel     context.CancelFunc
	ckpt       checkpointStats
	exceptions []exceptionInfo
	ops        map[opKey]*asyncOp
}

// vertex is one chained stage of the job graph, as the REST API shows it.
type vertex struct {
	id          string
	name        string
	parallelism int
}

// jobVertices names the job's chained stages as Flink does ("A -> B").
func jobVertices(spec *Spec) []vertex {
	names := []string{"Source: " + spec.Source.Type}
	for _, t := range spec.Transforms {
		switch {
		case t.Filter != "":
			names = append(names, "Filter")
		case len(t.Map) > 0:
			names = append(names, "Map")
		default:
			names = append(names, "FlatMap")
		}
	}
	sink := "Sink: " + spec.Sink.Type
	if !spec.Keyed() {
		names = append(names, sink)
		return []vertex{{vertexID(spec.Name, "source"), strings.Join(names, " -> "), spec.SourceParallelism()}}
	}
	names = append(names, "KeyBy")
	fns := make([]string, len(spec.Aggregate))
	for i, a := range spec.Aggregate {
		fns[i] = a.Fn
	}
	win := fmt.Sprintf("%sWindow(%s) -> %s", strings.ToUpper(spec.Window.Type[:1])+spec.Window.Type[1:], strings.Join(fns, ", "), sink)
	return []vertex{
		{vertexID(spec.Name, "source"), strings.Join(names, " -> "), spec.SourceParallelism()},
		{vertexID(spec.Name, "window"), win, spec.WindowParallelism()},
	}
}

// maxPendingControl bounds queued control requests; beyond it REST answers
// 503 rather than queueing without limit.
const maxPendingControl = 16

func newJob(id string, spec *Spec, log *logrus.Entry, start time.Time) *job {
	j := &job{
		id:         id,
		spec:       spec,
		log:        log,
		vertices:   jobVertices(spec),
		startTime:  start,
		ctrl:       make(chan *controlRequest, maxPendingControl),
		status:     StatusInitializing,
		timestamps: map[JobStatus]int64{StatusInitializing: start.UnixMilli()},
		endTime:    -1,
		accepting:  true, // requests queue until the pipeline starts
		ops:        map[opKey]*asyncOp{},
		proc:       procstat.NewSampler(uint64(spec.Resources.Memory)),
		attempt:    1,
	}
	j.watermark.Store(flow.WatermarkNone)
	return j
}

// vertexID derives a stable 32-hex id from the job name and the vertex's
// role, so ids survive restarts like Flink's hashed vertex ids.
func vertexID(jobName, role string) string {
	h := sha256.Sum256([]byte(jobName + "\x00" + role))
	return hex.EncodeToString(h[:16])
}

func (j *job) setStatus(s JobStatus) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.setStatusLocked(s)
}

func (j *job) setStatusLocked(s JobStatus) {
	now := time.Now().UnixMilli()
	j.status = s
	j.timestamps[s] = now
	if s.Terminal() {
		j.endTime = now
	}
}

func (j *job) setCancel(c context.CancelFunc) {
	j.mu.Lock()
	j.cancel = c
	j.mu.Unlock()
}

// requestCancel cancels the job. It returns the current status and false if
// the job is already terminal.
func (j *job) requestCancel() (JobStatus, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.status.Terminal() {
		return j.status, false
	}
	if j.cancel != nil {
		j.cancel()
	}
	return j.status, true
}

// finish records the outcome and fails every control request the pipeline
// will no longer serve.
func (j *job) finish(out outcome) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.accepting = false
	if out.err != nil && out.status == StatusFailed {
		j.exceptions = append([]exceptionInfo{{
			Name:      fmt.Sprintf("%T", out.err),
			Message:   out.err.Error(),
			Timestamp: time.Now().UnixMilli(),
		}}, j.exceptions...)
	}
	j.setStatusLocked(out.status)
	for {
		select {
		case r := <-j.ctrl:
			j.completeOpLocked(r.op, "", 0, fmt.Errorf("job reached state %s before the operation ran", out.status))
		default:
			return
		}
	}
}

type exceptionInfo struct {
	Name      string
	Message   string
	Timestamp int64
}

// Control requests from the REST API to the pipeline goroutine.
type controlKind int

const (
	ctrlCheckpoint controlKind = iota
	ctrlSavepoint
	ctrlStop
)

type controlRequest struct {
	kind      controlKind
	targetDir string
	cancelJob bool // savepoint, then cancel
	drain     bool // stop: fire all windows before the savepoint
	op        *asyncOp
}

// Async operations (savepoints, stops, manual checkpoints), Flink style:
// trigger returns a request id, status is polled.
type opKey struct {
	kind      string // "savepoint" or "checkpoint"
	triggerID string
}

type asyncOp struct {
	key          opKey
	created      time.Time
	done         bool
	location     string // savepoint
	checkpointID int64  // checkpoint
	err          error
}

// asyncOpRetention is how long finished operations stay queryable (Flink's
// rest.async.store-duration is 5 minutes).
const asyncOpRetention = 10 * time.Minute

// submit registers an operation and hands it to the pipeline. If triggerID
// names an existing operation, that one is returned (idempotent retry).
// ok=false means the pipeline's queue is full.
func (j *job) submit(kind, triggerID string, req *controlRequest) (op *asyncOp, ok bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := time.Now()
	for k, o := range j.ops {
		if o.done && now.Sub(o.created) > asyncOpRetention {
			delete(j.ops, k)
		}
	}
	if triggerID == "" {
		triggerID = NewJobID()
	}
	key := opKey{kind, triggerID}
	if o, dup := j.ops[key]; dup {
		return o, true
	}
	op = &asyncOp{key: key, created: now}
	req.op = op
	if !j.accepting {
		j.ops[key] = op
		j.completeOpLocked(op, "", 0, fmt.Errorf("job is not running (state %s)", j.status))
		return op, true
	}
	select {
	case j.ctrl <- req:
		j.ops[key] = op
		return op, true
	default:
		return nil, false
	}
}

func (j *job) completeOp(op *asyncOp, location string, checkpointID int64, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.completeOpLocked(op, location, checkpointID, err)
}

func (j *job) completeOpLocked(op *asyncOp, location string, checkpointID int64, err error) {
	op.done, op.location, op.checkpointID, op.err = true, location, checkpointID, err
}

// opSnapshot returns a copy of an operation, for rendering without the lock.
func (j *job) opSnapshot(key opKey) (asyncOp, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	o, ok := j.ops[key]
	if !ok {
		return asyncOp{}, false
	}
	return *o, true
}

// checkpointStats is the bookkeeping behind GET /jobs/:id/checkpoints.
type checkpointStats struct {
	restored, total, inProgress, completed, failed int64

	history         []*checkpointEntry // newest first, at most historySize
	latestCompleted *checkpointEntry
	latestSavepoint *checkpointEntry
	latestFailed    *checkpointEntry
	restoredFrom    *restoredInfo

	// Recent completed checkpoints, for the summary.
	durations, sizes []int64
}

const (
	historySize = 10
	summarySize = 1000
)

// checkpointEntry is Flink's checkpoint statistics object (§8.1).
type checkpointEntry struct {
	ClassName               string         `json:"className"`
	ID                      int64          `json:"id"`
	Status                  string         `json:"status"`
	IsSavepoint             bool           `json:"is_savepoint"`
	SavepointFormat         *string        `json:"savepointFormat"`
	TriggerTimestamp        int64          `json:"trigger_timestamp"`
	LatestAckTimestamp      int64          `json:"latest_ack_timestamp"`
	CheckpointedSize        int64          `json:"checkpointed_size"`
	StateSize               int64          `json:"state_size"`
	EndToEndDuration        int64          `json:"end_to_end_duration"`
	AlignmentBuffered       int64          `json:"alignment_buffered"`
	ProcessedData           int64          `json:"processed_data"`
	PersistedData           int64          `json:"persisted_data"`
	NumSubtasks             int            `json:"num_subtasks"`
	NumAcknowledgedSubtasks int            `json:"num_acknowledged_subtasks"`
	CheckpointType          string         `json:"checkpoint_type"`
	Tasks                   map[string]any `json:"tasks"`
	ExternalPath            *string        `json:"external_path,omitempty"`
	Discarded               *bool          `json:"discarded,omitempty"`
	FailureTimestamp        *int64         `json:"failure_timestamp,omitempty"`
	FailureMessage          *string        `json:"failure_message,omitempty"`
}

type restoredInfo struct {
	ID               int64   `json:"id"`
	RestoreTimestamp int64   `json:"restore_timestamp"`
	IsSavepoint      bool    `json:"is_savepoint"`
	ExternalPath     *string `json:"external_path"`
}

func ptr[T any](v T) *T { return &v }

// subtasks is the number of subtasks that acknowledge a checkpoint: one per
// vertex at parallelism 1.
func (j *job) subtasks() int {
	n := 0
	for _, v := range j.vertices {
		n += v.parallelism
	}
	return n
}

func (j *job) checkpointStarted(id int64, typ string, trigger time.Time) *checkpointEntry {
	e := &checkpointEntry{
		ClassName: "in_progress", ID: id, Status: "IN_PROGRESS",
		IsSavepoint: typ != typeCheckpoint, TriggerTimestamp: trigger.UnixMilli(),
		LatestAckTimestamp: trigger.UnixMilli(), NumSubtasks: j.subtasks(),
		CheckpointType: typ, Tasks: map[string]any{},
	}
	if e.IsSavepoint {
		e.SavepointFormat = ptr("CANONICAL")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ckpt.total++
	j.ckpt.inProgress++
	j.ckpt.history = append([]*checkpointEntry{e}, j.ckpt.history...)
	if len(j.ckpt.history) > historySize {
		j.ckpt.history = j.ckpt.history[:historySize]
	}
	return e
}

func (j *job) checkpointCompleted(e *checkpointEntry, s *snapshot, end time.Time) {
	dur := end.Sub(time.UnixMilli(e.TriggerTimestamp))
	j.metrics.checkpointsCompleted.Inc()
	j.metrics.lastCkptDuration.Set(dur.Seconds())
	j.metrics.lastCkptSize.Set(float64(s.size))
	j.mu.Lock()
	defer j.mu.Unlock()
	e.ClassName, e.Status = "completed", "COMPLETED"
	e.LatestAckTimestamp = end.UnixMilli()
	e.EndToEndDuration = dur.Milliseconds()
	e.CheckpointedSize, e.StateSize = s.size, s.size
	e.NumAcknowledgedSubtasks = e.NumSubtasks
	e.ExternalPath = ptr(s.path)
	e.Discarded = ptr(false)
	j.ckpt.inProgress--
	j.ckpt.completed++
	if e.IsSavepoint {
		j.ckpt.latestSavepoint = e
	} else {
		j.ckpt.latestCompleted = e
	}
	j.ckpt.durations = appendBounded(j.ckpt.durations, e.EndToEndDuration)
	j.ckpt.sizes = appendBounded(j.ckpt.sizes, s.size)
}

func appendBounded(s []int64, v int64) []int64 {
	if len(s) >= summarySize {
		s = slices.Delete(s, 0, 1)
	}
	return append(s, v)
}

func (j *job) checkpointFailed(e *checkpointEntry, err error, end time.Time) {
	j.metrics.checkpointsFailed.Inc()
	j.mu.Lock()
	defer j.mu.Unlock()
	e.ClassName, e.Status = "failed", "FAILED"
	e.EndToEndDuration = end.UnixMilli() - e.TriggerTimestamp
	e.FailureTimestamp = ptr(end.UnixMilli())
	e.FailureMessage = ptr(err.Error())
	j.ckpt.inProgress--
	j.ckpt.failed++
	j.ckpt.latestFailed = e
}

// checkpointsDiscarded marks checkpoints deleted by retention.
func (j *job) checkpointsDiscarded(ids []int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.ckpt.history {
		if e.Discarded != nil && slices.Contains(ids, e.ID) && !e.IsSavepoint {
			e.Discarded = ptr(true)
		}
	}
}

func (j *job) restoredFrom(s *snapshot, at time.Time) {
	j.metrics.restored.Inc()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ckpt.restored++
	j.ckpt.restoredFrom = &restoredInfo{
		ID: s.meta.CheckpointID, RestoreTimestamp: at.UnixMilli(),
		IsSavepoint: s.meta.Type != typeCheckpoint, ExternalPath: ptr(s.path),
	}
}

// observeLatency records one latency marker's delay.
func (j *job) observeLatency(_ int, d time.Duration) {
	j.latency.add(d)
	if j.metrics != nil {
		j.metrics.latency.Observe(d.Seconds())
	}
}
