package jobrunner

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// pipeline drives the job's dataflow engine: it restores it, triggers
// periodic checkpoints, savepoints and stops, writes every snapshot to the
// checkpoint store and commits the sinks once it is stored.
type pipeline struct {
	j     *job
	spec  *Spec
	store *checkpointStore
	b     *built

	snap *flow.Snapshot // to restore, or nil
	// preferNewer: restore the newest checkpoint if it is newer than what
	// the restore mode names (MasterOptions.PreferNewerCheckpoint).
	preferNewer bool
	// partial: this process runs a share of a job spread over containers
	// (MasterOptions.Local), and takes no savepoints.
	partial bool
	nextID  int64
	eng     *flow.Engine
}

// published are the engine's counters summed over subtasks.
type published struct {
	sourceOut, windowIn, sinkOut, late, dropped, backpressureNs, idleNs, stateEntries int64
}

// outcome is how the pipeline ended.
type outcome struct {
	status    JobStatus
	savepoint string
	err       error
}

// checkpointTimeout bounds one aligned checkpoint, from trigger to the last
// acknowledgement.
const checkpointTimeout = 2 * time.Minute

// latencyInterval is how often sources send latency markers.
const latencyInterval = time.Second

func newPipeline(j *job, spec *Spec, store *checkpointStore, b *built) *pipeline {
	b.plan.LatencyInterval = latencyInterval
	b.plan.OnLatency = j.observeLatency
	return &pipeline{j: j, spec: spec, store: store, b: b}
}

// restoreAndOpen loads the snapshot to restore according to mode (see
// MasterOptions.Restore).
func (p *pipeline) restoreAndOpen(mode string, now time.Time) error {
	var s *snapshot
	var err error
	switch mode {
	case RestoreNone:
	case RestoreLatest:
		s, err = p.store.latest()
	default:
		s, err = p.store.read(mode)
	}
	if err != nil {
		return fmt.Errorf("jobrunner: restore from %s: %w", mode, err)
	}
	if p.preferNewer && mode != RestoreLatest {
		// A later attempt of the same deployment: the checkpoints written
		// since the given start point are newer state.
		newest, err := p.store.latest()
		if err != nil {
			return fmt.Errorf("jobrunner: restore: %w", err)
		}
		if newest != nil && (s == nil || newest.meta.CheckpointID > s.meta.CheckpointID) {
			p.j.log.WithField("path", newest.path).Info("a later attempt: restoring the newest checkpoint instead of " + mode)
			s = newest
		}
	}
	maxID, err := p.store.maxID()
	if err != nil {
		return err
	}
	p.nextID = maxID + 1
	if s == nil {
		p.j.log.Info("starting without checkpoint")
		return nil
	}
	if err := checkCompatible(s, p.spec); err != nil {
		return fmt.Errorf("jobrunner: restore from %s: %w", s.path, err)
	}
	if p.snap, err = decodeEngineSnapshot(s); err != nil {
		return fmt.Errorf("jobrunner: restore from %s: %w", s.path, err)
	}
	p.nextID = max(p.nextID, s.meta.CheckpointID+1)
	p.j.restoredFrom(s, now)
	p.j.log.WithFields(map[string]any{"checkpoint": s.meta.CheckpointID, "path": s.path}).Info("restored job state")
	return nil
}

// run starts the engine and serves control requests until the job ends.
func (p *pipeline) run(ctx context.Context) outcome {
	eng, err := flow.Start(context.WithoutCancel(ctx), p.b.plan, p.snap)
	if err != nil {
		if errors.Is(err, flow.ErrSourceRescaled) {
			err = fmt.Errorf("%w: %v", ErrIncompatibleCheckpoint, err)
		}
		return outcome{status: StatusFailed, err: err}
	}
	p.eng = eng
	p.j.eng.Store(eng)
	defer func() {
		eng.Cancel()
		<-eng.Done()
		p.publish()
	}()
	p.j.runStartNs.Store(time.Now().UnixNano())

	var tick <-chan time.Time
	if iv := p.spec.Checkpoint.Interval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	pub := time.NewTicker(200 * time.Millisecond)
	defer pub.Stop()
	for {
		select {
		case <-ctx.Done():
			return p.cancelled()
		case req := <-p.j.ctrl:
			if out, done := p.handle(req); done {
				return out
			}
		case <-tick:
			if _, err := p.checkpoint(typeCheckpoint, ""); errors.Is(err, flow.ErrEnded) {
				return p.failed()
			}
		case <-pub.C:
			p.publish()
		case <-eng.SourcesFinished():
			return p.finished()
		case <-eng.Done():
			return p.failed()
		}
	}
}

func (p *pipeline) failed() outcome {
	err := p.eng.Err()
	if err == nil {
		err = errors.New("jobrunner: the engine ended unexpectedly")
	}
	return outcome{status: StatusFailed, err: err}
}

// publish moves the engine's counters to the atomics read by the REST API
// and to the Prometheus metrics.
func (p *pipeline) publish() {
	if p.eng == nil {
		return
	}
	var cur published
	wm := flow.WatermarkMax
	for _, s := range p.eng.SourceStats {
		cur.idleNs += s.IdleNs.Load()
		cur.sourceOut += s.RecordsIn.Load()
		cur.sinkOut += s.SinkRecords.Load()
		if len(p.eng.KeyedStats) == 0 && !s.Idle.Load() {
			wm = min(wm, s.Watermark.Load())
		}
	}
	for _, s := range p.eng.KeyedStats {
		cur.windowIn += s.RecordsIn.Load()
		cur.sinkOut += s.SinkRecords.Load()
		cur.stateEntries += s.StateEntries.Load()
		wm = min(wm, s.Watermark.Load())
	}
	cur.late, cur.dropped = p.b.late.sideOutput.Load(), p.b.late.dropped.Load()
	for _, s := range append(p.eng.SourceStats, p.eng.KeyedStats...) {
		cur.backpressureNs += s.BackpressuredNs.Load()
	}
	j, m := p.j, p.j.metrics
	j.sourceOut.Store(cur.sourceOut)
	j.windowIn.Store(cur.windowIn)
	j.windowOut.Store(cur.sinkOut)
	j.sinkOut.Store(cur.sinkOut)
	j.backpressureNs.Store(cur.backpressureNs)
	j.idleNanos.Store(cur.idleNs)
	j.lateDropped.Store(cur.dropped)
	j.lateSideOutput.Store(cur.late)
	j.stateEntries.Store(cur.stateEntries)
	if wm != flow.WatermarkMax {
		j.watermark.Store(wm)
		if wm != flow.WatermarkNone {
			m.watermark.Set(float64(wm))
		}
	}
}

// checkpoint takes an aligned checkpoint (typ CHECKPOINT) or savepoint
// under targetDir, stores it, and then commits the sinks up to it.
func (p *pipeline) checkpoint(typ, targetDir string) (*snapshot, error) {
	p.publish()
	id := p.nextID
	p.nextID++
	trigger := time.Now()
	e := p.j.checkpointStarted(id, typ, trigger)
	s, err := p.snapshotTo(id, typ, targetDir, trigger)
	if err != nil {
		p.j.checkpointFailed(e, err, time.Now())
		p.j.log.WithError(err).WithField("checkpoint", id).Warn("checkpoint failed")
		return nil, err
	}
	p.j.checkpointCompleted(e, s, time.Now())
	p.j.log.WithFields(map[string]any{"checkpoint": id, "type": typ, "path": s.path}).Debug("checkpoint completed")
	if typ == typeCheckpoint {
		deleted, err := p.store.prune()
		if err != nil {
			p.j.log.WithError(err).Warn("deleting old checkpoints")
		}
		p.j.checkpointsDiscarded(deleted)
	}
	return s, nil
}

func (p *pipeline) snapshotTo(id int64, typ, targetDir string, trigger time.Time) (*snapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	defer cancel()
	es, err := p.eng.Checkpoint(ctx, id)
	if err != nil {
		return nil, err
	}
	s := &snapshot{meta: checkpointMetadata{CheckpointID: id, Type: typ, JobID: p.j.id, JobName: p.spec.Name,
		TriggerTimestamp: trigger.UnixMilli()}}
	if s.states, err = encodeEngineSnapshot(es); err != nil {
		return nil, err
	}
	if s.states[stateShape], err = json.Marshal(shapeOf(p.spec)); err != nil {
		return nil, err
	}
	dir := p.store.checkpointPath(id)
	if typ != typeCheckpoint {
		dir = p.store.savepointPath(targetDir, p.j.id, id)
	}
	if err := p.store.write(dir, s); err != nil {
		return nil, err
	}
	// Only a stored checkpoint makes the sinks' pending output visible.
	if err := p.eng.Complete(ctx, id); err != nil {
		return nil, fmt.Errorf("commit sinks: %w", err)
	}
	return s, nil
}

// handle executes a control request. done reports that the job ended.
func (p *pipeline) handle(req *controlRequest) (outcome, bool) {
	switch req.kind {
	case ctrlCheckpoint:
		s, err := p.checkpoint(typeCheckpoint, "")
		var id int64
		if s != nil {
			id = s.meta.CheckpointID
		}
		p.j.completeOp(req.op, "", id, err)
	case ctrlSavepoint, ctrlStop:
		if p.partial {
			return p.handlePartial(req)
		}
		typ := typeSavepoint
		if req.kind == ctrlStop {
			typ = typeSyncSavepoint
			if req.drain {
				err := errors.New("jobrunner: stop with drain is not supported; stop without it")
				p.j.completeOp(req.op, "", 0, err)
				return outcome{}, false
			}
		}
		s, err := p.checkpoint(typ, req.targetDir)
		if err != nil {
			p.j.completeOp(req.op, "", 0, err)
			return outcome{}, false // the job keeps running, as in Flink
		}
		p.j.completeOp(req.op, s.path, s.meta.CheckpointID, nil)
		switch {
		case req.kind == ctrlStop:
			return outcome{status: StatusFinished, savepoint: s.path}, true
		case req.cancelJob:
			return outcome{status: StatusCanceled, savepoint: s.path}, true
		}
	}
	return outcome{}, false
}

// handlePartial is handle's savepoint and stop for a share of a job spread
// over containers: a savepoint of one share would not restore the job, so
// savepoints are refused and stop ends the job after a checkpoint, from
// which every container resumes on its own.
func (p *pipeline) handlePartial(req *controlRequest) (outcome, bool) {
	if req.kind == ctrlSavepoint {
		p.j.completeOp(req.op, "", 0, errors.New("jobrunner: savepoints of a job spread over several containers are not supported; stop it, and it resumes from its checkpoints"))
		return outcome{}, false
	}
	s, err := p.checkpoint(typeCheckpoint, "")
	if err != nil {
		p.j.completeOp(req.op, "", 0, err)
		return outcome{}, false
	}
	p.j.completeOp(req.op, "", s.meta.CheckpointID, nil)
	return outcome{status: StatusFinished}, true
}

// finished ends a bounded job: every source has read all its input and sent
// the final watermark; a final checkpoint commits the output, and the
// engine closes its sinks.
func (p *pipeline) finished() outcome {
	if _, err := p.checkpoint(typeCheckpoint, ""); err != nil {
		return outcome{status: StatusFailed, err: fmt.Errorf("final checkpoint: %w", err)}
	}
	p.eng.Finish()
	<-p.eng.Done()
	if err := p.eng.Err(); err != nil {
		return outcome{status: StatusFailed, err: err}
	}
	return outcome{status: StatusFinished}
}

// cancelled ends a cancelled job after a best-effort final checkpoint.
func (p *pipeline) cancelled() outcome {
	p.j.setStatus(StatusCancelling)
	if _, err := p.checkpoint(typeCheckpoint, ""); err != nil {
		p.j.log.WithError(err).Warn("final checkpoint on cancel failed")
	}
	return outcome{status: StatusCanceled}
}

// Operator state files of a checkpoint.
const (
	stateSources   = "sources"
	stateKeyGroups = "keygroups"
	stateSinks     = "sinks"
	stateShape     = "shape"
)

// stateShape is what a checkpoint's state depends on: restoring into a job
// whose shape differs would misread it.
type stateShapeInfo struct {
	Source    string     `json:"source"`
	KeyBy     string     `json:"keyBy"`
	Window    WindowSpec `json:"window"`
	Aggregate Aggregates `json:"aggregate"`
	Sink      string     `json:"sink"`
	SinkPath  string     `json:"sinkPath"`
}

func shapeOf(s *Spec) stateShapeInfo {
	w := s.Window
	w.Parallelism = 0 // rescaling the window keeps its state
	return stateShapeInfo{Source: s.Source.Type, KeyBy: s.KeyBy, Window: w, Aggregate: s.Aggregate, Sink: s.Sink.Type, SinkPath: s.Sink.File.Path}
}

// checkCompatible refuses a checkpoint taken by a job of another shape.
func checkCompatible(s *snapshot, spec *Spec) error {
	raw, ok := s.states[stateShape]
	if !ok {
		return fmt.Errorf("%w: the checkpoint does not record its job's shape", ErrIncompatibleCheckpoint)
	}
	var got stateShapeInfo
	if err := json.Unmarshal(raw, &got); err != nil {
		return fmt.Errorf("%w: shape: %v", ErrCorruptCheckpoint, err)
	}
	want := shapeOf(spec)
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if !bytes.Equal(a, b) {
		return fmt.Errorf("%w: the checkpoint was taken by a job with %s, the spec has %s (restore with \"none\" to start over)",
			ErrIncompatibleCheckpoint, a, b)
	}
	return nil
}

type sourceStates struct {
	States [][]byte          `json:"states"`
	Times  []flow.SourceTime `json:"times"`
}

type sinkStates struct {
	Sinks     [][]byte `json:"sinks"`
	LateSinks [][]byte `json:"lateSinks"`
}

// encodeEngineSnapshot writes the engine's snapshot as the checkpoint's
// state files. Key groups are binary: max parallelism, then for each group
// in ascending order its number, length and bytes (uvarints).
func encodeEngineSnapshot(es *flow.Snapshot) (map[string][]byte, error) {
	src, err := json.Marshal(sourceStates{States: es.Sources, Times: es.SourceTimes})
	if err != nil {
		return nil, err
	}
	sinks, err := json.Marshal(sinkStates{Sinks: es.Sinks, LateSinks: es.LateSinks})
	if err != nil {
		return nil, err
	}
	kgs := make([]int, 0, len(es.KeyGroups))
	for kg := range es.KeyGroups {
		kgs = append(kgs, kg)
	}
	sort.Ints(kgs)
	buf := binary.AppendUvarint(nil, uint64(es.MaxParallelism))
	for _, kg := range kgs {
		b := es.KeyGroups[kg]
		buf = binary.AppendUvarint(buf, uint64(kg))
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	return map[string][]byte{stateSources: src, stateKeyGroups: buf, stateSinks: sinks}, nil
}

func decodeEngineSnapshot(s *snapshot) (*flow.Snapshot, error) {
	for _, op := range []string{stateSources, stateKeyGroups, stateSinks} {
		if _, ok := s.states[op]; !ok {
			return nil, fmt.Errorf("%w: no %s state (a checkpoint of an older runtime?)", ErrIncompatibleCheckpoint, op)
		}
	}
	es := &flow.Snapshot{ID: s.meta.CheckpointID, KeyGroups: map[int][]byte{}}
	var src sourceStates
	if err := json.Unmarshal(s.states[stateSources], &src); err != nil {
		return nil, fmt.Errorf("%w: source state: %v", ErrCorruptCheckpoint, err)
	}
	es.Sources, es.SourceTimes = src.States, src.Times
	var ss sinkStates
	if err := json.Unmarshal(s.states[stateSinks], &ss); err != nil {
		return nil, fmt.Errorf("%w: sink state: %v", ErrCorruptCheckpoint, err)
	}
	es.Sinks, es.LateSinks = ss.Sinks, ss.LateSinks
	r := bytes.NewReader(s.states[stateKeyGroups])
	maxP, err := binary.ReadUvarint(r)
	if err != nil || maxP == 0 || maxP > 32768 {
		return nil, fmt.Errorf("%w: key-group state: bad max parallelism", ErrCorruptCheckpoint)
	}
	es.MaxParallelism = int(maxP)
	for r.Len() > 0 {
		kg, err1 := binary.ReadUvarint(r)
		n, err2 := binary.ReadUvarint(r)
		if err1 != nil || err2 != nil || kg >= maxP || n > uint64(r.Len()) {
			return nil, fmt.Errorf("%w: key-group state: truncated", ErrCorruptCheckpoint)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("%w: key-group state: %v", ErrCorruptCheckpoint, err)
		}
		es.KeyGroups[int(kg)] = b
	}
	return es, nil
}
