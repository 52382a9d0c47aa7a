package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidewatch/tidewatch/state"
)

// Watermark bounds.
const (
	WatermarkNone int64 = math.MinInt64
	WatermarkMax  int64 = math.MaxInt64
)

// Engine errors.
var (
	ErrEnded          = errors.New("flow: the engine has ended")
	ErrSourceRescaled = errors.New("flow: a snapshot restores only into the same source and sink parallelism")
)

type msgKind uint8

const (
	msgData msgKind = iota
	msgWatermark
	msgIdle
	msgBarrier
	msgEnd
	msgLatency // a latency marker; wm holds its wall time in ns
)

// message travels from a source subtask to a keyed subtask.
type message struct {
	kind  msgKind
	from  int
	batch *batchBuf
	wm    int64
	id    int64
}

type ctrlKind uint8

const (
	ctrlCheckpoint ctrlKind = iota
	ctrlCommit
	ctrlEnd
	ctrlMigrate
)

type control struct {
	kind ctrlKind
	id   int64
	// ctrlMigrate: the key groups of the subtask to move, and where.
	kgs []int
	to  Backend
}

// ack is a subtask's part of a checkpoint, or of a commit.
type ack struct {
	id        int64
	source    int // source subtask index, or -1
	keyed     int // keyed subtask index, or -1
	srcState  []byte
	srcTime   SourceTime
	keyGroups map[int][]byte
	sink      []byte
	late      []byte
	err       error
}

// batchBuf is a Batch with the arena its rows live in; batches are recycled.
type batchBuf struct {
	Batch
	vals []Value
}

var batchPool = sync.Pool{New: func() any { return &batchBuf{} }}

func getBatch() *batchBuf {
	b := batchPool.Get().(*batchBuf)
	b.Records, b.vals = b.Records[:0], b.vals[:0]
	return b
}

func putBatch(b *batchBuf) { batchPool.Put(b) }

// add appends a copy of r, its row copied into the batch's arena.
func (b *batchBuf) add(r *Record) {
	start := len(b.vals)
	b.vals = append(b.vals, r.Row...)
	b.Records = append(b.Records, Record{Time: r.Time, Key: r.Key, KeyHash: r.KeyHash, KeyGroup: r.KeyGroup, Row: b.vals[start:len(b.vals):len(b.vals)]})
}

// SubtaskStats are the counters of one subtask, safe to read while it runs.
type SubtaskStats struct {
	RecordsIn   atomic.Int64
	RecordsOut  atomic.Int64
	SinkRecords atomic.Int64
	// RecordsElsewhere counts a source subtask's records left to another
	// process (see Plan.Local).
	RecordsElsewhere atomic.Int64
	// StateEntries is a keyed subtask's number of state entries, if its
	// operator is a StateSizer.
	StateEntries atomic.Int64
	// Migration between state backends (keyed subtasks): key groups left
	// to move in the current request, entries moved and time spent moving
	// since the start, the longest single move in the current request and
	// ever, and the key groups on Pebble now.
	MigrationPending        atomic.Int64
	MigratedEntries         atomic.Int64
	MigrationNs             atomic.Int64
	MigrationMaxStallNs     atomic.Int64
	MigrationLongestStallNs atomic.Int64
	PebbleKeyGroups         atomic.Int64
	// PebbleEntries is how many of StateEntries are on Pebble.
	PebbleEntries   atomic.Int64
	BackpressuredNs atomic.Int64
	// IdleNs is a source subtask's time in reads that returned less than a
	// full batch: waiting for input.
	IdleNs    atomic.Int64
	Watermark atomic.Int64
	Idle      atomic.Bool
}

// Engine runs a Plan. Its methods are safe for concurrent use.
type Engine struct {
	plan   Plan
	ctx    context.Context
	cancel context.CancelFunc

	srcCtl  []chan control
	keyCtl  []chan control
	keyIn   []chan message
	acks    chan ack
	commits chan ack

	srcFinished    atomic.Int32
	sourcesDone    chan struct{}
	sourcesDoneSet sync.Once

	SourceStats []*SubtaskStats
	KeyedStats  []*SubtaskStats

	// owner is the keyed subtask of each key group; elsewhere, if not nil,
	// tells which key groups another process handles (Plan.Local).
	owner     []int32
	elsewhere []bool
	keyedOps  []KeyedOperator
	kgBackend []atomic.Uint32 // by key group: a Backend

	ckMu    sync.Mutex
	wg      sync.WaitGroup
	done    chan struct{}
	errMu   sync.Mutex
	err     error
	endOnce sync.Once
}

// Start validates the plan, restores snap if not nil, and starts every
// subtask. The engine runs until its input ends and Finish is called, a
// subtask fails, ctx is cancelled, or Cancel is called.
func Start(ctx context.Context, plan Plan, snap *Snapshot) (*Engine, error) {
	plan.defaults()
	if err := plan.Validate(); err != nil {
		return nil, err
	}
	sinkPar := plan.SourceParallelism
	if plan.KeyedParallelism > 0 {
		sinkPar = plan.KeyedParallelism
	}
	if snap != nil {
		if len(snap.Sources) != plan.SourceParallelism || len(snap.Sinks) != sinkPar {
			return nil, fmt.Errorf("%w: the snapshot has %d source and %d sink subtasks, the job %d and %d",
				ErrSourceRescaled, len(snap.Sources), len(snap.Sinks), plan.SourceParallelism, sinkPar)
		}
		if snap.MaxParallelism != plan.MaxParallelism {
			return nil, fmt.Errorf("flow: the snapshot has max parallelism %d, the job %d", snap.MaxParallelism, plan.MaxParallelism)
		}
	}
	e := &Engine{
		plan:        plan,
		acks:        make(chan ack, plan.SourceParallelism+plan.KeyedParallelism),
		commits:     make(chan ack, sinkPar),
		sourcesDone: make(chan struct{}),
		done:        make(chan struct{}),
	}
	e.ctx, e.cancel = context.WithCancel(ctx)
	e.kgBackend = make([]atomic.Uint32, plan.MaxParallelism)
	if plan.KeyedParallelism > 0 {
		e.owner = make([]int32, plan.MaxParallelism)
		for kg := range e.owner {
			e.owner[kg] = int32(state.SubtaskForKeyGroup(plan.MaxParallelism, plan.KeyedParallelism, kg))
		}
		if plan.Local != nil {
			e.elsewhere = make([]bool, plan.MaxParallelism)
			for kg, j := range e.owner {
				e.elsewhere[kg] = !plan.Local[j]
			}
		}
	}
	for i := 0; i < plan.KeyedParallelism; i++ {
		e.keyCtl = append(e.keyCtl, make(chan control, 4))
		e.keyIn = append(e.keyIn, make(chan message, plan.ChannelCapacity))
		e.KeyedStats = append(e.KeyedStats, newStats())
	}
	for i := 0; i < plan.SourceParallelism; i++ {
		e.srcCtl = append(e.srcCtl, make(chan control, 4))
		e.SourceStats = append(e.SourceStats, newStats())
	}

	// Open everything before any goroutine runs, so that a bad restore fails Start.
	keyed := make([]*keyedTask, plan.KeyedParallelism)
	for j := range keyed {
		t, err := e.openKeyed(j, snap)
		if err != nil {
			e.cancel()
			return nil, err
		}
		keyed[j] = t
		e.keyedOps = append(e.keyedOps, t.op)
		if m, ok := t.op.(Migrator); ok {
			t.publishBackends(m)
		}
		t.publishState()
	}
	sources := make([]*sourceTask, plan.SourceParallelism)
	for i := range sources {
		t, err := e.openSource(i, snap)
		if err != nil {
			for _, s := range sources[:i] {
				s.close()
			}
			for _, k := range keyed {
				k.close()
			}
			e.cancel()
			return nil, err
		}
		sources[i] = t
	}
	for _, t := range keyed {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); e.fail(t.run()) }()
	}
	for _, t := range sources {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); e.fail(t.run()) }()
	}
	go func() {
		e.wg.Wait()
		e.cancel()
		close(e.done)
	}()
	return e, nil
}

func newStats() *SubtaskStats {
	s := &SubtaskStats{}
	s.Watermark.Store(WatermarkNone)
	return s
}

func (e *Engine) fail(err error) {
	if err == nil || errors.Is(err, context.Canceled) && e.ctx.Err() != nil {
		return
	}
	e.errMu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.errMu.Unlock()
	e.cancel()
}

// Done is closed when every subtask has ended.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Err is the first failure of a subtask, after Done.
func (e *Engine) Err() error {
	e.errMu.Lock()
	defer e.errMu.Unlock()
	return e.err
}

// SourcesFinished is closed when every source subtask has read all its
// input: the caller takes a final checkpoint and then calls Finish.
func (e *Engine) SourcesFinished() <-chan struct{} { return e.sourcesDone }

// Cancel stops every subtask at once; nothing after the last completed
// checkpoint is committed.
func (e *Engine) Cancel() { e.cancel() }

// Finish ends a job whose sources have finished: the sinks close and the
// subtasks exit. Take (and complete) a final checkpoint first.
func (e *Engine) Finish() {
	e.ckMu.Lock() // never between a barrier and its alignment
	defer e.ckMu.Unlock()
	e.endOnce.Do(func() {
		for _, c := range e.srcCtl {
			select {
			case c <- control{kind: ctrlEnd}:
			case <-e.ctx.Done():
			}
		}
	})
}

// Checkpoint takes an aligned checkpoint: a barrier enters at every source
// subtask and flows with the records; every subtask snapshots its state when
// the barrier has arrived on all its inputs. One checkpoint runs at a time.
func (e *Engine) Checkpoint(ctx context.Context, id int64) (*Snapshot, error) {
	e.ckMu.Lock()
	defer e.ckMu.Unlock()
	for _, c := range e.srcCtl {
		if err := e.sendCtl(ctx, c, control{kind: ctrlCheckpoint, id: id}); err != nil {
			return nil, err
		}
	}
	sinkPar := e.plan.SourceParallelism
	if e.plan.KeyedParallelism > 0 {
		sinkPar = e.plan.KeyedParallelism
	}
	snap := &Snapshot{ID: id, MaxParallelism: e.plan.MaxParallelism, Sources: make([][]byte, e.plan.SourceParallelism),
		SourceTimes: make([]SourceTime, e.plan.SourceParallelism),
		KeyGroups:   map[int][]byte{}, Sinks: make([][]byte, sinkPar), LateSinks: make([][]byte, sinkPar)}
	for need := e.plan.SourceParallelism + e.plan.KeyedParallelism; need > 0; {
		select {
		case a := <-e.acks:
			if a.id != id {
				continue // from an abandoned checkpoint
			}
			if a.err != nil {
				return nil, a.err
			}
			need--
			idx := a.keyed
			if a.source >= 0 {
				snap.Sources[a.source], snap.SourceTimes[a.source] = a.srcState, a.srcTime
				idx = a.source
			}
			if a.sink != nil || a.late != nil {
				snap.Sinks[idx], snap.LateSinks[idx] = a.sink, a.late
			}
			for kg, b := range a.keyGroups {
				snap.KeyGroups[kg] = b
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-e.done:
			return nil, ErrEnded
		}
	}
	return snap, nil
}

// Complete commits the sinks up to checkpoint id, once it is stored, and
// waits until every sink has.
func (e *Engine) Complete(ctx context.Context, id int64) error {
	e.ckMu.Lock()
	defer e.ckMu.Unlock()
	owners := e.srcCtl
	if e.plan.KeyedParallelism > 0 {
		owners = e.keyCtl
	}
	for _, c := range owners {
		if err := e.sendCtl(ctx, c, control{kind: ctrlCommit, id: id}); err != nil {
			return err
		}
	}
	for need := len(owners); need > 0; {
		select {
		case a := <-e.commits:
			if a.id != id {
				continue
			}
			if a.err != nil {
				return a.err
			}
			need--
		case <-ctx.Done():
			return ctx.Err()
		case <-e.done:
			return ErrEnded
		}
	}
	return nil
}

func (e *Engine) sendCtl(ctx context.Context, c chan control, m control) error {
	select {
	case c <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-e.done:
		return ErrEnded
	}
}

func (e *Engine) reply(ch chan ack, a ack) {
	select {
	case ch <- a:
	case <-e.ctx.Done():
	}
}

// send hands a message to a keyed subtask, counting the time a full channel
// blocks it as backpressure.
func (e *Engine) send(j int, m message, st *SubtaskStats) error {
	select {
	case e.keyIn[j] <- m:
		return nil
	default:
	}
	start := time.Now()
	select {
	case e.keyIn[j] <- m:
		st.BackpressuredNs.Add(int64(time.Since(start)))
		return nil
	case <-e.ctx.Done():
		return e.ctx.Err()
	}
}

func (e *Engine) broadcast(m message, st *SubtaskStats) error {
	for j := range e.keyIn {
		if err := e.send(j, m, st); err != nil {
			return err
		}
	}
	return nil
}

// countingSink counts what reaches a sink, publishing the count to pub
// when its task calls publish: one atomic add per batch, not per record.
type countingSink struct {
	Sink
	n   int64
	pub *atomic.Int64
}

func (c *countingSink) Emit(r *Record) error {
	c.n++
	return c.Sink.Emit(r)
}

func (c *countingSink) publish() {
	if c != nil && c.n != 0 {
		c.pub.Add(c.n)
		c.n = 0
	}
}

func openSinks(p *Plan, index, par int, snap *Snapshot) (Sink, Sink, error) {
	var st, lst []byte
	if snap != nil {
		st, lst = snap.Sinks[index], snap.LateSinks[index]
	}
	sink, err := p.Sink(index, par, st)
	if err != nil {
		return nil, nil, fmt.Errorf("open sink %d: %w", index, err)
	}
	if p.LateSink == nil {
		return sink, nil, nil
	}
	late, err := p.LateSink(index, par, lst)
	if err != nil {
		sink.Close()
		return nil, nil, fmt.Errorf("open late sink %d: %w", index, err)
	}
	return sink, late, nil
}

func snapshotSinks(id int64, sink, late Sink) (s, l []byte, err error) {
	if s, err = sink.Snapshot(id); err != nil {
		return nil, nil, fmt.Errorf("sink snapshot: %w", err)
	}
	if s == nil {
		s = []byte{}
	}
	if late != nil {
		if l, err = late.Snapshot(id); err != nil {
			return nil, nil, fmt.Errorf("late sink snapshot: %w", err)
		}
	}
	return s, l, nil
}

func commitSinks(id int64, sink, late Sink) error {
	if err := sink.Commit(id); err != nil {
		return fmt.Errorf("sink commit: %w", err)
	}
	if late != nil {
		if err := late.Commit(id); err != nil {
			return fmt.Errorf("late sink commit: %w", err)
		}
	}
	return nil
}

func closeSinks(sink, late Sink) error {
	err := sink.Close()
	if late != nil {
		err = errors.Join(err, late.Close())
	}
	return err
}

// ---- source subtasks ----

type sourceTask struct {
	e     *Engine
	index int
	src   Source
	head  Emitter
	st    *SubtaskStats
	// With a keyed stage: one buffer per keyed subtask. Without: the sinks.
	bufs       []*batchBuf
	sink, late Sink
	counted    *countingSink // the sink, counted; nil with a keyed stage

	maxTs      int64
	wm         int64
	lastRecord time.Time
	lastMarker time.Time
	idle       bool
}

func (e *Engine) openSource(i int, snap *Snapshot) (*sourceTask, error) {
	var st []byte
	if snap != nil {
		st = snap.Sources[i]
	}
	src, err := e.plan.Source(i, e.plan.SourceParallelism, st)
	if err != nil {
		return nil, fmt.Errorf("open source %d: %w", i, err)
	}
	t := &sourceTask{e: e, index: i, src: src, st: e.SourceStats[i], maxTs: WatermarkNone, wm: WatermarkNone, lastRecord: e.plan.Clock()}
	if snap != nil && len(snap.SourceTimes) == e.plan.SourceParallelism {
		st := snap.SourceTimes[i]
		t.maxTs, t.wm, t.idle = st.MaxTs, st.Watermark, st.Idle
		t.st.Watermark.Store(st.Watermark)
	}
	var out Emitter
	if e.plan.KeyedParallelism > 0 {
		t.bufs = make([]*batchBuf, e.plan.KeyedParallelism)
		for j := range t.bufs {
			t.bufs[j] = getBatch()
		}
		out = partitioner{t}
	} else {
		if t.sink, t.late, err = openSinks(&e.plan, i, e.plan.SourceParallelism, snap); err != nil {
			src.Close()
			return nil, err
		}
		t.counted = &countingSink{Sink: t.sink, pub: &t.st.SinkRecords}
		out = t.counted
	}
	t.head = out
	if e.plan.Chain != nil {
		if t.head, err = e.plan.Chain(out); err != nil {
			t.close()
			return nil, err
		}
	}
	return t, nil
}

func (t *sourceTask) close() {
	t.src.Close()
	if t.sink != nil {
		closeSinks(t.sink, t.late)
	}
}

// partitioner is the emitter at the end of a source subtask's chain: it
// routes each record to the keyed subtask owning its key group.
type partitioner struct{ t *sourceTask }

func (p partitioner) Emit(r *Record) error { return p.t.partition(r) }

// partition routes a record to the keyed subtask owning its key group.
func (t *sourceTask) partition(r *Record) error {
	if t.e.elsewhere != nil && t.e.elsewhere[r.KeyGroup] {
		t.st.RecordsElsewhere.Add(1)
		return nil
	}
	j := int(t.e.owner[r.KeyGroup])
	b := t.bufs[j]
	b.add(r)
	if len(b.Records) >= t.e.plan.BatchSize {
		return t.flushOne(j)
	}
	return nil
}

func (t *sourceTask) flushOne(j int) error {
	b := t.bufs[j]
	if len(b.Records) == 0 {
		return nil
	}
	t.bufs[j] = getBatch()
	t.st.RecordsOut.Add(int64(len(b.Records)))
	return t.e.send(j, message{kind: msgData, from: t.index, batch: b}, t.st)
}

func (t *sourceTask) flush() error {
	for j := range t.bufs {
		if err := t.flushOne(j); err != nil {
			return err
		}
	}
	return nil
}

func (t *sourceTask) run() (err error) {
	defer func() {
		t.src.Close()
		if t.sink != nil {
			if cerr := closeSinks(t.sink, t.late); err == nil {
				err = cerr
			}
		}
	}()
	p := &t.e.plan
	ctx := t.e.ctx
	buf := make([]Record, 0, p.BatchSize)
	eof := false
	for {
		// Control first: checkpoints, commits and the end.
		if eof {
			select {
			case c := <-t.e.srcCtl[t.index]:
				if done, err := t.control(c); done || err != nil {
					return err
				}
			case <-ctx.Done():
				return nil
			}
			continue
		}
		select {
		case c := <-t.e.srcCtl[t.index]:
			if done, err := t.control(c); done || err != nil {
				return err
			}
			continue
		case <-ctx.Done():
			return nil
		default:
		}

		readStart := time.Now()
		recs, err := t.src.Read(ctx, buf[:0], p.BatchSize)
		if len(recs) < p.BatchSize {
			t.st.IdleNs.Add(int64(time.Since(readStart)))
		}
		if err != nil && !errors.Is(err, io.EOF) {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("source subtask %d: %w", t.index, err)
		}
		now := p.Clock()
		nowMs := now.UnixMilli()
		t.st.RecordsIn.Add(int64(len(recs)))
		for i := range recs {
			r := &recs[i]
			if p.Watermarks.ProcessingTime {
				r.Time = nowMs
			}
			if r.Time > t.maxTs {
				t.maxTs = r.Time
			}
			if err := t.head.Emit(r); err != nil {
				return fmt.Errorf("source subtask %d: %w", t.index, err)
			}
		}
		t.counted.publish()
		if len(recs) > 0 {
			t.lastRecord = now
		}
		if err := t.flush(); err != nil {
			return err
		}
		if errors.Is(err, io.EOF) {
			eof = true
			if err := t.emitWatermark(WatermarkMax); err != nil {
				return err
			}
			if t.e.srcFinished.Add(1) == int32(p.SourceParallelism) {
				t.e.sourcesDoneSet.Do(func() { close(t.e.sourcesDone) })
			}
			continue
		}
		if err := t.advance(now, len(recs) > 0); err != nil {
			return err
		}
		if iv := p.LatencyInterval; iv > 0 && t.sink == nil && now.Sub(t.lastMarker) >= iv {
			t.lastMarker = now
			if err := t.e.broadcast(message{kind: msgLatency, from: t.index, wm: now.UnixNano()}, t.st); err != nil {
				return err
			}
		}
	}
}

// advance emits the watermark the records so far allow, or marks the subtask
// idle when it has had no records for the idle timeout.
func (t *sourceTask) advance(now time.Time, gotRecords bool) error {
	p := &t.e.plan
	wm := WatermarkNone
	if p.Watermarks.ProcessingTime {
		wm = now.UnixMilli() - 1
	} else if t.maxTs != WatermarkNone {
		wm = t.maxTs - p.Watermarks.MaxOutOfOrderness.Milliseconds() - 1
	}
	if wm > t.wm || (t.idle && gotRecords) {
		t.idle = false
		t.st.Idle.Store(false)
		return t.emitWatermark(max(wm, t.wm))
	}
	if !gotRecords && !t.idle && p.Watermarks.IdleTimeout > 0 && !p.Watermarks.ProcessingTime &&
		now.Sub(t.lastRecord) >= p.Watermarks.IdleTimeout {
		t.idle = true
		t.st.Idle.Store(true)
		if t.sink == nil {
			return t.e.broadcast(message{kind: msgIdle, from: t.index}, t.st)
		}
	}
	return nil
}

func (t *sourceTask) emitWatermark(wm int64) error {
	t.wm = wm
	t.st.Watermark.Store(wm)
	if t.sink != nil { // no keyed stage: nothing downstream uses time
		return nil
	}
	return t.e.broadcast(message{kind: msgWatermark, from: t.index, wm: wm}, t.st)
}

// control handles a control message; done reports the subtask should end.
func (t *sourceTask) control(c control) (done bool, err error) {
	switch c.kind {
	case ctrlCheckpoint:
		if err := t.flush(); err != nil {
			return false, err
		}
		a := ack{id: c.id, source: t.index, keyed: -1, srcTime: SourceTime{MaxTs: t.maxTs, Watermark: t.wm, Idle: t.idle}}
		a.srcState, a.err = t.src.Snapshot()
		if a.err == nil && t.sink != nil {
			a.sink, a.late, a.err = snapshotSinks(c.id, t.sink, t.late)
		}
		t.e.reply(t.e.acks, a)
		if a.err != nil {
			return false, a.err
		}
		if t.sink == nil {
			return false, t.e.broadcast(message{kind: msgBarrier, from: t.index, id: c.id}, t.st)
		}
	case ctrlCommit:
		err := commitSinks(c.id, t.sink, t.late)
		t.e.reply(t.e.commits, ack{id: c.id, source: t.index, keyed: -1, err: err})
		return false, err
	case ctrlEnd:
		if err := t.flush(); err != nil {
			return true, err
		}
		if t.sink == nil {
			return true, t.e.broadcast(message{kind: msgEnd, from: t.index}, t.st)
		}
		return true, nil
	}
	return false, nil
}

// ---- keyed subtasks ----

type keyedTask struct {
	e          *Engine
	index      int
	kgs        state.KeyGroupRange
	op         KeyedOperator
	sink, late Sink
	counted    *countingSink
	st         *SubtaskStats

	wm      []int64
	idle    []bool
	ended   []bool
	blocked []bool
	stash   [][]message
	aligned int
	barrier int64
	cur     int64

	migrating []int // key groups still to move
	migrateTo Backend
}

func (e *Engine) openKeyed(j int, snap *Snapshot) (*keyedTask, error) {
	n := e.plan.SourceParallelism
	t := &keyedTask{e: e, index: j, st: e.KeyedStats[j], cur: WatermarkNone,
		kgs: state.RangeForSubtask(e.plan.MaxParallelism, e.plan.KeyedParallelism, j),
		wm:  make([]int64, n), idle: make([]bool, n), ended: make([]bool, n), blocked: make([]bool, n), stash: make([][]message, n)}
	for i := range t.wm {
		t.wm[i] = WatermarkNone
	}
	var err error
	if t.sink, t.late, err = openSinks(&e.plan, j, e.plan.KeyedParallelism, snap); err != nil {
		return nil, err
	}
	var late Emitter
	if t.late != nil {
		late = t.late
	}
	t.counted = &countingSink{Sink: t.sink, pub: &t.st.SinkRecords}
	if t.op, err = e.plan.Keyed(t.kgs, t.counted, late); err != nil {
		t.close()
		return nil, fmt.Errorf("keyed subtask %d: %w", j, err)
	}
	if snap != nil {
		for kg := t.kgs.Start; kg <= t.kgs.End; kg++ {
			if b, ok := snap.KeyGroups[kg]; ok {
				if err := t.op.RestoreKeyGroup(kg, bytes.NewReader(b)); err != nil {
					t.close()
					return nil, fmt.Errorf("restore key group %d: %w", kg, err)
				}
			}
		}
		// Every input's last watermark reached this subtask before its
		// barrier, so the sources' positions are the inputs' watermarks.
		if len(snap.SourceTimes) == n {
			for i, st := range snap.SourceTimes {
				t.wm[i], t.idle[i] = st.Watermark, st.Idle
			}
			if err := t.advance(); err != nil {
				t.close()
				return nil, fmt.Errorf("keyed subtask %d: restore watermark: %w", j, err)
			}
		}
	}
	return t, nil
}

func (t *keyedTask) close() { closeSinks(t.sink, t.late) }

func (t *keyedTask) run() (err error) {
	defer func() {
		if cerr := closeSinks(t.sink, t.late); err == nil {
			err = cerr
		}
	}()
	ctx := t.e.ctx
	in := t.e.keyIn[t.index]
	for {
		// While key groups are to be moved, one moves after every message,
		// and back to back when no message waits.
		var idle chan struct{}
		if len(t.migrating) > 0 {
			idle = closedChan
		}
		select {
		case <-ctx.Done():
			return nil
		case c := <-t.e.keyCtl[t.index]:
			if err := t.keyedControl(c); err != nil {
				return err
			}
		case m := <-in:
			done, err := t.handle(m)
			t.counted.publish()
			t.publishState()
			if err != nil {
				return fmt.Errorf("keyed subtask %d: %w", t.index, err)
			}
			if done {
				return nil
			}
		case <-idle:
		}
		if len(t.migrating) > 0 {
			if err := t.migrateStep(); err != nil {
				return fmt.Errorf("keyed subtask %d: %w", t.index, err)
			}
		}
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (t *keyedTask) keyedControl(c control) error {
	switch c.kind {
	case ctrlCommit:
		err := commitSinks(c.id, t.sink, t.late)
		t.e.reply(t.e.commits, ack{id: c.id, source: -1, keyed: t.index, err: err})
		return err
	case ctrlMigrate:
		// A new request replaces what is left of an older one.
		t.migrating, t.migrateTo = c.kgs, c.to
		t.st.MigrationPending.Store(int64(len(c.kgs)))
		t.st.MigrationMaxStallNs.Store(0)
	}
	return nil
}

// migrateStep moves the next key group. It runs between messages, so no
// record sees a half-moved key group, and a checkpoint barrier finds every
// group wholly on one backend.
func (t *keyedTask) migrateStep() error {
	m := t.op.(Migrator) // checked by Engine.Migrate
	kg := t.migrating[0]
	t.migrating = t.migrating[1:]
	step, err := m.MigrateKeyGroup(kg, t.migrateTo)
	if err != nil {
		return err
	}
	t.st.MigrationPending.Store(int64(len(t.migrating)))
	t.st.MigratedEntries.Add(int64(step.Entries))
	if ns := int64(step.Took); ns > t.st.MigrationMaxStallNs.Load() {
		t.st.MigrationMaxStallNs.Store(ns)
	}
	if ns := int64(step.Took); ns > t.st.MigrationLongestStallNs.Load() {
		t.st.MigrationLongestStallNs.Store(ns)
	}
	t.st.MigrationNs.Add(int64(step.Took))
	t.publishBackends(m)
	t.publishState()
	return nil
}

// publishState publishes the operator's state size.
func (t *keyedTask) publishState() {
	if s, ok := t.op.(StateSizer); ok {
		t.st.StateEntries.Store(s.StateEntries())
	}
	if p, ok := t.op.(interface{ PebbleEntries() int }); ok {
		t.st.PebbleEntries.Store(int64(p.PebbleEntries()))
	}
}

func (t *keyedTask) publishBackends(m Migrator) {
	n := int64(0)
	for kg := t.kgs.Start; kg <= t.kgs.End; kg++ {
		b := m.KeyGroupBackend(kg)
		if b == BackendPebble {
			n++
		}
		t.e.kgBackend[kg].Store(uint32(b))
	}
	t.st.PebbleKeyGroups.Store(n)
}

// KeyGroupBackend reports where key group kg's state lives, as its subtask
// last published (after every move).
func (e *Engine) KeyGroupBackend(kg int) Backend {
	if kg < 0 || kg >= len(e.kgBackend) {
		return BackendHeap
	}
	return Backend(e.kgBackend[kg].Load())
}

// Migrator is a keyed operator whose key groups can move between state
// backends.
type Migrator interface {
	KeyedOperator
	// CanMigrate reports why the operator's state cannot move, if so.
	CanMigrate() error
	MigrateKeyGroup(kg int, to Backend) (MigrationStep, error)
	KeyGroupBackend(kg int) Backend
}

// Migrate asks the keyed subtasks to move the key groups kgs (all of them
// when nil) to backend to, one key group at a time between records; it
// returns once every subtask has the request. Progress is in KeyedStats
// (MigrationPending, MigratedEntries, MigrationMaxStallNs, PebbleKeyGroups).
// A later request replaces what is left of an earlier one.
func (e *Engine) Migrate(ctx context.Context, to Backend, kgs []int) error {
	if e.plan.KeyedParallelism == 0 {
		return fmt.Errorf("%w: the job has no keyed state", ErrBackend)
	}
	per := make([][]int, e.plan.KeyedParallelism)
	if kgs == nil {
		for kg := 0; kg < e.plan.MaxParallelism; kg++ {
			per[e.owner[kg]] = append(per[e.owner[kg]], kg)
		}
	}
	for _, kg := range kgs {
		if kg < 0 || kg >= e.plan.MaxParallelism {
			return fmt.Errorf("%w: key group %d outside 0..%d", ErrKeyGroup, kg, e.plan.MaxParallelism-1)
		}
		per[e.owner[kg]] = append(per[e.owner[kg]], kg)
	}
	m, ok := e.keyedOps[0].(Migrator)
	if !ok {
		return fmt.Errorf("%w: the keyed operator cannot move its state", ErrBackend)
	}
	if err := m.CanMigrate(); err != nil {
		return err
	}
	for j, list := range per {
		// Pending from now on, so that no reader sees the request done
		// before the subtask has it.
		e.KeyedStats[j].MigrationPending.Store(int64(len(list)))
		if err := e.sendCtl(ctx, e.keyCtl[j], control{kind: ctrlMigrate, kgs: list, to: to}); err != nil {
			return err
		}
	}
	return nil
}

func (t *keyedTask) handle(m message) (done bool, err error) {
	if t.blocked[m.from] {
		t.stash[m.from] = append(t.stash[m.from], m)
		return false, nil
	}
	switch m.kind {
	case msgData:
		recs := m.batch.Records
		t.st.RecordsIn.Add(int64(len(recs)))
		for i := range recs {
			if err := t.op.Process(&recs[i]); err != nil {
				return false, err
			}
		}
		putBatch(m.batch)
	case msgWatermark:
		t.wm[m.from], t.idle[m.from] = m.wm, false
		return false, t.advance()
	case msgIdle:
		t.idle[m.from] = true
		return false, t.advance()
	case msgLatency:
		if f := t.e.plan.OnLatency; f != nil {
			f(t.index, t.e.plan.Clock().Sub(time.Unix(0, m.wm)))
		}
	case msgBarrier:
		t.blocked[m.from] = true
		t.barrier = m.id
		if t.aligned++; t.aligned == len(t.blocked) {
			return false, t.snapshot()
		}
	case msgEnd:
		t.ended[m.from] = true
		for _, e := range t.ended {
			if !e {
				return false, nil
			}
		}
		if t.cur == WatermarkMax {
			return true, nil
		}
		t.cur = WatermarkMax
		return true, t.op.Watermark(WatermarkMax)
	}
	return false, nil
}

// advance moves the operator's watermark to the least watermark of the
// inputs that are not idle. Once every input is idle none of them will hold
// the others back any more, so the greatest watermark of all inputs is
// flushed, as Flink's watermark valve does.
func (t *keyedTask) advance() error {
	wm, any, highest := WatermarkMax, false, WatermarkNone
	for i, w := range t.wm {
		highest = max(highest, w)
		if t.idle[i] {
			continue
		}
		any = true
		wm = min(wm, w)
	}
	if !any {
		wm = highest
	}
	if wm <= t.cur {
		return nil
	}
	t.cur = wm
	t.st.Watermark.Store(wm)
	return t.op.Watermark(wm)
}

// snapshot runs once the barrier has arrived on every input: it acks the
// state, unblocks the inputs and processes what they sent meanwhile.
func (t *keyedTask) snapshot() error {
	a := ack{id: t.barrier, source: -1, keyed: t.index, keyGroups: map[int][]byte{}}
	var buf bytes.Buffer
	for kg := t.kgs.Start; kg <= t.kgs.End && a.err == nil; kg++ {
		buf.Reset()
		if a.err = t.op.SnapshotKeyGroup(kg, &buf); a.err == nil && buf.Len() > 0 {
			a.keyGroups[kg] = bytes.Clone(buf.Bytes())
		}
	}
	if a.err == nil {
		a.sink, a.late, a.err = snapshotSinks(t.barrier, t.sink, t.late)
	}
	t.e.reply(t.e.acks, a)
	if a.err != nil {
		return a.err
	}
	t.aligned = 0
	stashed := t.stash
	t.stash = make([][]message, len(stashed))
	for i := range t.blocked {
		t.blocked[i] = false
	}
	for _, msgs := range stashed {
		for _, m := range msgs {
			if _, err := t.handle(m); err != nil {
				return err
			}
		}
	}
	return nil
}
