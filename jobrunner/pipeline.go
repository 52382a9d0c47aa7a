package jobrunner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// pipeline runs the job's chained operators on one goroutine:
//
//	datagen → key by → tumbling window count → sink
//
// Checkpoints, savepoints and stops are executed by the same goroutine
// between batches of records, so every snapshot is consistent without
// locking the operators.
type pipeline struct {
	j     *job
	spec  *Spec
	store *checkpointStore
	hooks *testHooks

	src       *datagen
	wmGen     *boundedOutOfOrderness
	win       *tumblingCount
	sink      sink
	sinkPath  string // absolute path of the file sink, "" for stdout
	watermark int64
	nextID    int64 // next checkpoint id

	// Counts since the last publish.
	dSourceOut, dWindowIn, dWindowOut, dSinkOut, dLate int64
}

// batchSize bounds the records processed between two looks at the control
// channel, the checkpoint timer and cancellation.
const batchSize = 512

// outcome is how the pipeline ended.
type outcome struct {
	status    JobStatus
	savepoint string
	err       error
}

// sinkFailure marks an error of the sink: unlike a checkpoint storage
// error, it fails the job.
type sinkFailure struct{ err error }

func (e *sinkFailure) Error() string { return e.err.Error() }
func (e *sinkFailure) Unwrap() error { return e.err }

// sinkState is the sink's checkpointed state.
type sinkState struct {
	Type   string `json:"type"`
	Path   string `json:"path,omitempty"`
	Length int64  `json:"length"`
}

func newPipeline(j *job, spec *Spec, store *checkpointStore, hooks *testHooks) (*pipeline, error) {
	p := &pipeline{
		j: j, spec: spec, store: store, hooks: hooks,
		wmGen:     newBoundedOutOfOrderness(spec.Watermark.MaxOutOfOrderness.Milliseconds()),
		win:       newTumblingCount(spec.Window.Size.Milliseconds()),
		watermark: watermarkNone,
	}
	if spec.Sink.Type == SinkFile {
		abs, err := filepath.Abs(spec.Sink.File.Path)
		if err != nil {
			return nil, fmt.Errorf("jobrunner: sink path: %w", err)
		}
		p.sinkPath = abs
	}
	return p, nil
}

// restoreAndOpen restores the operators according to mode (see
// MasterOptions.Restore) and opens the sink at the restored position.
func (p *pipeline) restoreAndOpen(mode string, now time.Time) error {
	var snap *snapshot
	var err error
	switch mode {
	case RestoreNone:
	case RestoreLatest:
		snap, err = p.store.latest()
	default:
		snap, err = readCheckpoint(mode)
	}
	if err != nil {
		return fmt.Errorf("jobrunner: restore from %s: %w", mode, err)
	}
	maxID, err := p.store.maxID()
	if err != nil {
		return err
	}
	p.nextID = maxID + 1

	startMs := now.UnixMilli()
	if !p.spec.Source.Datagen.StartTime.IsZero() {
		startMs = p.spec.Source.Datagen.StartTime.UnixMilli()
	}
	p.src = newDatagen(p.spec.Source.Datagen, startMs)
	sinkLen := int64(0)
	if snap != nil {
		if sinkLen, err = p.restore(snap); err != nil {
			return fmt.Errorf("jobrunner: restore from %s: %w", snap.path, err)
		}
		p.nextID = max(p.nextID, snap.meta.CheckpointID+1)
		p.j.restoredFrom(snap, now)
		p.j.log.WithFields(map[string]any{
			"checkpoint": snap.meta.CheckpointID, "path": snap.path, "offset": p.src.offset,
		}).Info("restored job state")
	} else {
		p.j.log.Info("starting without checkpoint")
	}

	switch p.spec.Sink.Type {
	case SinkFile:
		fs, err := openFileSink(p.sinkPath, sinkLen)
		if err != nil {
			return err
		}
		p.sink = fs
	case SinkStdout:
		p.sink = newWriterSink(os.Stdout)
	default:
		return fmt.Errorf("jobrunner: sink type %q", p.spec.Sink.Type) // ParseSpec rejects it
	}
	p.j.watermark.Store(p.watermark)
	return nil
}

// restore loads a snapshot into the operators and returns the sink length to
// resume at.
func (p *pipeline) restore(s *snapshot) (sinkLen int64, err error) {
	for _, op := range []string{opSource, opWindow, opSink} {
		if _, ok := s.states[op]; !ok {
			return 0, fmt.Errorf("%w: no state for operator %q", ErrCorruptCheckpoint, op)
		}
	}
	specStart := p.spec.Source.Datagen.StartTime
	warn, err := p.src.restore(s.states[opSource])
	if err != nil {
		return 0, err
	}
	if warn != "" {
		p.j.log.Warn(warn)
	}
	if !specStart.IsZero() && specStart.UnixMilli() != p.src.startMs {
		p.j.log.Warnf("source.datagen.startTime %s differs from the checkpoint's %s; keeping the checkpoint's",
			specStart.UTC().Format(time.RFC3339Nano), time.UnixMilli(p.src.startMs).UTC().Format(time.RFC3339Nano))
	}
	wm, maxTs, err := p.win.restore(s.states[opWindow])
	if err != nil {
		return 0, err
	}
	p.watermark, p.wmGen.maxTs = wm, maxTs

	var ss sinkState
	if err := json.Unmarshal(s.states[opSink], &ss); err != nil {
		return 0, fmt.Errorf("%w: sink state: %v", ErrCorruptCheckpoint, err)
	}
	if ss.Length < 0 {
		return 0, fmt.Errorf("%w: sink state: negative length", ErrCorruptCheckpoint)
	}
	switch {
	case ss.Type != p.spec.Sink.Type:
		return 0, fmt.Errorf("%w: checkpoint was taken with sink type %q, the spec has %q (restore with \"none\" to start over)",
			ErrIncompatibleCheckpoint, ss.Type, p.spec.Sink.Type)
	case ss.Type == SinkFile && ss.Path != p.sinkPath:
		return 0, fmt.Errorf("%w: checkpoint's sink wrote %s, the spec writes %s (restore with \"none\" to start over)",
			ErrIncompatibleCheckpoint, ss.Path, p.sinkPath)
	case ss.Type == SinkStdout:
		p.j.log.Warn("stdout sink cannot rewind: results after the restored checkpoint are emitted again")
		return 0, nil
	}
	return ss.Length, nil
}

func (p *pipeline) closeSink() {
	if p.sink != nil {
		if err := p.sink.close(); err != nil {
			p.j.log.WithError(err).Warn("closing sink")
		}
		p.sink = nil
	}
}

// run processes records until the job reaches a terminal state.
func (p *pipeline) run(ctx context.Context) outcome {
	out := p.loop(ctx)
	if p.sink != nil {
		if err := p.sink.close(); err != nil && out.status != StatusFailed {
			out = outcome{status: StatusFailed, err: &sinkFailure{err}}
		}
		p.sink = nil
	}
	return out
}

func (p *pipeline) loop(ctx context.Context) outcome {
	var tick <-chan time.Time
	if iv := p.spec.Checkpoint.Interval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	rate := p.spec.Source.Datagen.Rate
	pace := &pacer{rate: rate, baseWall: time.Now(), baseOffset: p.src.offset}
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	defer wait.Stop()
	p.j.runStartNs.Store(time.Now().UnixNano())

	bs := int64(batchSize)
	if p.hooks != nil && p.hooks.batchSize > 0 {
		bs = p.hooks.batchSize
	}
	for {
		select {
		case <-ctx.Done():
			return p.cancelled()
		case req := <-p.j.ctrl:
			if out, done := p.handle(req); done {
				return out
			}
			continue
		case <-tick:
			if err := p.periodicCheckpoint(); err != nil {
				return outcome{status: StatusFailed, err: err}
			}
			continue
		default:
		}

		if p.src.exhausted() {
			return p.finished()
		}
		n := min(bs, p.src.remaining())
		if rate > 0 {
			now := time.Now()
			n = min(n, pace.due(now)-p.src.offset)
			if n <= 0 {
				idleStart := now
				wait.Reset(pace.nextAt(p.src.offset).Sub(now))
				select {
				case <-ctx.Done():
				case req := <-p.j.ctrl:
					if out, done := p.handle(req); done {
						return out
					}
				case <-tick:
					if err := p.periodicCheckpoint(); err != nil {
						return outcome{status: StatusFailed, err: err}
					}
				case <-wait.C:
				}
				wait.Stop()
				p.j.idleNanos.Add(int64(time.Since(idleStart)))
				continue
			}
		}
		if err := p.process(n); err != nil {
			return outcome{status: StatusFailed, err: err}
		}
		if p.hooks != nil && p.hooks.afterBatch != nil && p.hooks.afterBatch(p.src.offset) {
			if err := p.periodicCheckpoint(); err != nil {
				return outcome{status: StatusFailed, err: err}
			}
		}
	}
}

// process runs n records through the pipeline.
func (p *pipeline) process(n int64) error {
	for range n {
		r := p.src.next()
		p.dSourceOut++
		p.dWindowIn++
		if !p.win.add(r.Key, r.TS, p.watermark) {
			p.dLate++
		}
		p.wmGen.observe(r.TS)
		if wm := p.wmGen.current(); wm > p.watermark {
			if err := p.advanceWatermark(wm); err != nil {
				return err
			}
		}
	}
	p.publish()
	return nil
}

func (p *pipeline) advanceWatermark(wm int64) error {
	p.watermark = wm
	return p.win.advance(wm, p.emit)
}

func (p *pipeline) emit(r WindowResult) error {
	p.dWindowOut++
	if err := p.sink.write(r); err != nil {
		return &sinkFailure{err}
	}
	p.dSinkOut++
	return nil
}

// publish moves the counts of the last batch to the atomics read by the
// REST API and to the Prometheus metrics.
func (p *pipeline) publish() {
	j, m := p.j, p.j.metrics
	j.sourceOut.Add(p.dSourceOut)
	j.windowIn.Add(p.dWindowIn)
	j.windowOut.Add(p.dWindowOut)
	j.sinkOut.Add(p.dSinkOut)
	j.watermark.Store(p.watermark)
	m.sourceEmitted.Add(float64(p.dSourceOut))
	m.recordsOut.WithLabelValues(opSource).Add(float64(p.dSourceOut))
	m.recordsIn.WithLabelValues(opWindow).Add(float64(p.dWindowIn))
	m.recordsOut.WithLabelValues(opWindow).Add(float64(p.dWindowOut))
	m.recordsIn.WithLabelValues(opSink).Add(float64(p.dWindowOut))
	m.recordsOut.WithLabelValues(opSink).Add(float64(p.dSinkOut))
	m.sinkWritten.Add(float64(p.dSinkOut))
	m.lateDropped.Add(float64(p.dLate))
	if p.watermark != watermarkNone {
		m.watermark.Set(float64(p.watermark))
	}
	p.dSourceOut, p.dWindowIn, p.dWindowOut, p.dSinkOut, p.dLate = 0, 0, 0, 0, 0
}

// checkpoint snapshots every operator into a new checkpoint (typ
// CHECKPOINT) or savepoint under targetDir. A *sinkFailure error means the
// sink could not commit and the job must fail; other errors only fail the
// checkpoint.
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
	p.j.log.WithFields(map[string]any{"checkpoint": id, "type": typ, "path": s.path, "offset": p.src.offset}).Debug("checkpoint completed")
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
	sinkLen, err := p.sink.commit()
	if err != nil {
		return nil, &sinkFailure{err}
	}
	s := &snapshot{
		meta: checkpointMetadata{
			CheckpointID: id, Type: typ, JobID: p.j.id, JobName: p.spec.Name,
			TriggerTimestamp: trigger.UnixMilli(),
		},
		states: map[string][]byte{},
	}
	if s.states[opSource], err = p.src.snapshot(); err != nil {
		return nil, err
	}
	if s.states[opWindow], err = p.win.snapshot(p.watermark, p.wmGen.maxTs); err != nil {
		return nil, err
	}
	if s.states[opSink], err = json.Marshal(sinkState{Type: p.spec.Sink.Type, Path: p.sinkPath, Length: sinkLen}); err != nil {
		return nil, err
	}
	dir := p.store.checkpointPath(id)
	if typ != typeCheckpoint {
		dir = p.store.savepointPath(targetDir, p.j.id, id)
	}
	if err := writeCheckpoint(dir, s); err != nil {
		return nil, err
	}
	return s, nil
}

func (p *pipeline) periodicCheckpoint() error {
	_, err := p.checkpoint(typeCheckpoint, "")
	if sf := (*sinkFailure)(nil); errors.As(err, &sf) {
		return err
	}
	return nil
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
		if sf := (*sinkFailure)(nil); errors.As(err, &sf) {
			return outcome{status: StatusFailed, err: err}, true
		}
		return outcome{}, false

	case ctrlSavepoint, ctrlStop:
		typ := typeSavepoint
		if req.kind == ctrlStop {
			typ = typeSyncSavepoint
			if req.drain {
				if err := p.advanceWatermark(watermarkMax); err != nil {
					p.j.completeOp(req.op, "", 0, err)
					return outcome{status: StatusFailed, err: err}, true
				}
			}
		}
		s, err := p.checkpoint(typ, req.targetDir)
		if err != nil {
			p.j.completeOp(req.op, "", 0, err)
			if sf := (*sinkFailure)(nil); errors.As(err, &sf) {
				return outcome{status: StatusFailed, err: err}, true
			}
			return outcome{}, false // the job keeps running, as in Flink
		}
		p.j.completeOp(req.op, s.path, s.meta.CheckpointID, nil)
		switch {
		case req.kind == ctrlStop:
			return outcome{status: StatusFinished, savepoint: s.path}, true
		case req.cancelJob:
			return outcome{status: StatusCanceled, savepoint: s.path}, true
		}
		return outcome{}, false
	}
	return outcome{}, false
}

// finished ends a bounded job: the final watermark fires every window, and a
// final checkpoint records the end state.
func (p *pipeline) finished() outcome {
	if err := p.advanceWatermark(watermarkMax); err != nil {
		return outcome{status: StatusFailed, err: err}
	}
	if _, err := p.checkpoint(typeCheckpoint, ""); err != nil {
		if sf := (*sinkFailure)(nil); errors.As(err, &sf) {
			return outcome{status: StatusFailed, err: err}
		}
		// The output is complete and committed; a restore would replay
		// from an older checkpoint and rewrite identical output.
		p.j.log.WithError(err).Warn("final checkpoint failed")
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
