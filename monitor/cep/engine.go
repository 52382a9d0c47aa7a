package cep

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Match is a completed match, or, with TimedOut set, a partial match whose
// window closed.
type Match struct {
	// Key is the partition key: the values of Options.KeyFields joined by "/".
	Key string
	// Events holds the accepted events by stage name, in event-time order.
	// Stages that accepted no event (optional ones, NOT stages) are absent.
	Events map[string][]Event
	// Start and End are the times of the first and the last event.
	Start, End time.Time
	// At is the event time the result was produced at: the last event's time
	// for an ordinary match, the window's end (first event + Within) for a
	// match ending in NotFollowedBy and for a timed-out partial match.
	At time.Time
	// TimedOut marks a partial match discarded because its window closed.
	TimedOut bool
}

// Options configure an Engine.
type Options struct {
	// KeyFields partition the stream: every distinct combination of these
	// fields' values (typed fields or labels) has its own automaton state.
	// Empty means one partition for the whole stream.
	KeyFields []string
	// AllowedLateness is how far behind the largest event time seen an event
	// may be and still be processed in order. Events wait in their
	// partition's buffer until the watermark (largest time seen minus
	// AllowedLateness) passes them; events older than the watermark are
	// dropped and counted as late.
	AllowedLateness time.Duration
	// MaxBufferedEvents bounds the reorder buffer of one partition. When it
	// is full the oldest buffered event is processed before the watermark
	// reaches it (counted in Stats.ForcedEarly); an event older than one
	// processed so is then late.
	MaxBufferedEvents int
	// MaxPartialMatches bounds the partial matches kept per partition. The
	// ones that started earliest are pruned first (counted in
	// Stats.PrunedPartialMatches); held-back completed matches count too.
	MaxPartialMatches int
	// EmitTimeouts reports partial matches whose window closed as Matches
	// with TimedOut set.
	EmitTimeouts bool
}

// DefaultOptions partitions by job and worker, allows no lateness and
// bounds each partition to 1024 buffered events and 1024 partial matches.
func DefaultOptions() Options {
	return Options{
		KeyFields:         []string{fieldNames[fieldJobID], fieldNames[fieldTMID]},
		MaxBufferedEvents: 1024,
		MaxPartialMatches: 1024,
	}
}

// Validate names the first unusable option.
func (o Options) Validate() error {
	switch {
	case o.AllowedLateness < 0:
		return fmt.Errorf("cep: Options.AllowedLateness must not be negative, got %v", o.AllowedLateness)
	case o.MaxBufferedEvents <= 0:
		return fmt.Errorf("cep: Options.MaxBufferedEvents must be positive, got %d", o.MaxBufferedEvents)
	case o.MaxPartialMatches <= 0:
		return fmt.Errorf("cep: Options.MaxPartialMatches must be positive, got %d", o.MaxPartialMatches)
	}
	for _, f := range o.KeyFields {
		if f == "" {
			return errors.New("cep: Options.KeyFields has an empty field name")
		}
	}
	return nil
}

// Stats are an Engine's counters and gauges.
type Stats struct {
	Events               uint64 // given to Process
	Late                 uint64 // dropped: older than the watermark or their partition's clock
	ForcedEarly          uint64 // processed before the watermark because a buffer was full
	Matches              uint64 // emitted matches
	Timeouts             uint64 // partial matches discarded because their window closed
	PrunedPartialMatches uint64 // discarded by MaxPartialMatches
	ConditionErrors      uint64 // condition evaluations that failed at run time (taken as false)

	Partitions     int // partitions with state
	PartialMatches int // partial matches held, all partitions
	Buffered       int // events waiting for the watermark, all partitions
}

// partition is the state of one key: its automaton's partial matches (the
// start state among them), matches held back by a skip strategy, and the
// events waiting for the watermark.
type partition struct {
	key       string
	partial   []compState
	completed []compState
	buf       []record // sorted by (ts, seq)
	clock     int64    // event time the automaton has been advanced to
	nextPos   uint64
	wake      int64 // earliest buffered event or window deadline; MaxInt64 if none
	deadline  int64 // no partial match times out before this event time
	hidx      int   // index in the engine's timer heap, -1 if absent
}

type keyField struct {
	name string
	f    fieldID
}

// Engine runs one compiled pattern over a stream of events, partitioned by
// key, in event-time order. It is not safe for concurrent use: run one
// Engine per goroutine, sharding keys among them (the NFA can be shared).
type Engine struct {
	nfa  *NFA
	opts Options
	emit func(Match)
	keys []keyField

	parts   map[string]*partition
	timers  timerHeap
	maxSeen int64
	wm      int64
	seq     uint64
	stats   Stats

	// scratch, reused between events
	keyBuf     []byte
	in         record
	cur        *record
	shared     *record
	nextBuf    []compState
	outBuf     []compState
	potBuf     []compState
	edgeBuf    []edge
	stack      []int32
	stack2     []int32
	memo       []memo
	stamp      uint64
	eventStamp uint64
	csStamp    uint64
	rt         condRuntime
	ctx        evalCtx
	noNative   bool // tests: run every condition on the VM
}

// NewEngine returns an engine running nfa with opts; emit receives every
// match (and timed-out partial match) synchronously from Process,
// AdvanceWatermark and Flush.
func NewEngine(nfa *NFA, opts Options, emit func(Match)) (*Engine, error) {
	if nfa == nil {
		return nil, errors.New("cep: NewEngine: nil NFA")
	}
	if emit == nil {
		return nil, errors.New("cep: NewEngine: nil emit function")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		nfa:     nfa,
		opts:    opts,
		emit:    emit,
		parts:   make(map[string]*partition),
		maxSeen: math.MinInt64,
		wm:      math.MinInt64,
		memo:    make([]memo, len(nfa.conds)),
	}
	for _, k := range opts.KeyFields {
		e.keys = append(e.keys, keyField{name: k, f: lookupField(k)})
	}
	return e, nil
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats { return e.stats }

// Watermark returns the current watermark: events older than it are late.
func (e *Engine) Watermark() time.Time {
	if e.wm == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, e.wm)
}

func (e *Engine) nextStamp() uint64 {
	e.stamp++
	return e.stamp
}

// Process ingests one event. Events are processed per partition in
// event-time order once the watermark passes them; matches they complete
// are emitted before Process returns.
func (e *Engine) Process(ev Event) {
	e.stats.Events++
	ts := ev.Time.UnixNano()
	p := e.partitionFor(&ev)
	if ts < e.wm || ts < p.clock {
		e.stats.Late++
		return
	}
	e.seq++
	if ts > e.maxSeen {
		e.maxSeen = ts
		if wm := satSub(ts, int64(e.opts.AllowedLateness)); wm > e.wm {
			e.advanceWatermark(wm)
		}
	}
	if ts <= e.wm && len(p.buf) == 0 {
		// in order and already behind the watermark: no need to buffer
		e.in = record{ev: ev, ts: ts, seq: e.seq}
		e.step(p, &e.in)
		e.in = record{}
		e.reschedule(p)
		return
	}
	e.buffer(p, record{ev: ev, ts: ts, seq: e.seq})
}

// AdvanceWatermark raises the watermark to t, as if an event at t plus the
// allowed lateness had been seen: buffered events up to t are processed and
// windows that closed by t time out. Use it to let time pass on a quiet
// stream.
func (e *Engine) AdvanceWatermark(t time.Time) {
	if ts := t.UnixNano(); ts > e.wm {
		e.advanceWatermark(ts)
	}
}

// Flush processes every buffered event, advancing the watermark to the
// largest event time seen.
func (e *Engine) Flush() {
	if e.maxSeen > e.wm {
		e.advanceWatermark(e.maxSeen)
	}
}

// Compact forgets the partitions that hold nothing: no partial match, no
// held match, no buffered event. Their next event starts them afresh. Call
// it now and then when keys come and go (jobs end, workers move), so that
// idle keys do not accumulate; it returns how many partitions it removed.
func (e *Engine) Compact() int {
	n := 0
	for k, p := range e.parts {
		if len(p.partial) <= 1 && len(p.completed) == 0 && len(p.buf) == 0 && p.hidx < 0 {
			delete(e.parts, k)
			n++
		}
	}
	e.stats.Partitions -= n
	return n
}

func satSub(a, b int64) int64 {
	if a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}

func (e *Engine) partitionFor(ev *Event) *partition {
	b := e.keyBuf[:0]
	for i, k := range e.keys {
		if i > 0 {
			b = append(b, '/')
		}
		b = ev.appendKeyPart(b, k.name, k.f)
	}
	e.keyBuf = b
	if p, ok := e.parts[string(b)]; ok {
		return p
	}
	p := &partition{
		key:      string(b),
		clock:    math.MinInt64,
		wake:     math.MaxInt64,
		hidx:     -1,
		nextPos:  1,
		deadline: math.MaxInt64,
		partial:  []compState{{state: e.nfa.start}},
	}
	e.parts[p.key] = p
	e.stats.Partitions++
	return p
}

// buffer inserts r into p's reorder buffer, keeping it sorted.
func (e *Engine) buffer(p *partition, r record) {
	i := len(p.buf)
	p.buf = append(p.buf, r)
	for i > 0 && p.buf[i-1].ts > r.ts {
		p.buf[i] = p.buf[i-1]
		i--
	}
	p.buf[i] = r
	e.stats.Buffered++
	if len(p.buf) > e.opts.MaxBufferedEvents {
		e.stats.ForcedEarly++
		e.stepBuffered(p)
	}
	e.reschedule(p)
}

// stepBuffered processes the oldest buffered event of p.
func (e *Engine) stepBuffered(p *partition) {
	e.in = p.buf[0]
	n := copy(p.buf, p.buf[1:])
	p.buf[n] = record{}
	p.buf = p.buf[:n]
	e.stats.Buffered--
	e.step(p, &e.in)
	e.in = record{}
}

// drain processes p's buffered events up to wm, in order.
func (e *Engine) drain(p *partition, wm int64) {
	i := 0
	for i < len(p.buf) && p.buf[i].ts <= wm {
		e.step(p, &p.buf[i])
		i++
	}
	if i == 0 {
		return
	}
	n := copy(p.buf, p.buf[i:])
	clear(p.buf[n:])
	p.buf = p.buf[:n]
	e.stats.Buffered -= i
}

// step advances p's automaton to r's time and feeds it r.
func (e *Engine) step(p *partition, r *record) {
	r.pos = p.nextPos
	p.nextPos++
	before := len(p.partial) + len(p.completed)
	if r.ts > p.clock {
		e.advanceTime(p, r.ts)
		p.clock = r.ts
	}
	e.processEvent(p, r)
	if len(p.partial) > 1 && e.nfa.window > 0 {
		// partial matches started now are the last to time out
		p.deadline = min(p.deadline, satAdd(r.ts, e.nfa.window))
	}
	e.enforceBound(p)
	e.stats.PartialMatches += len(p.partial) + len(p.completed) - before
}

// enforceBound prunes p's partial matches beyond MaxPartialMatches, earliest
// start first.
func (e *Engine) enforceBound(p *partition) {
	excess := len(p.partial) - 1 + len(p.completed) - e.opts.MaxPartialMatches
	if excess <= 0 {
		return
	}
	e.stats.PrunedPartialMatches += uint64(excess)
	// the start state sorts last: its startPos is 0, mapped to the maximum
	key := func(cs compState) uint64 {
		if cs.startPos == 0 {
			return math.MaxUint64
		}
		return cs.startPos
	}
	n := min(excess, len(p.completed))
	if n > 0 {
		// held-back matches are already complete; drop the oldest first
		p.completed = slices.Delete(p.completed, 0, n)
		excess -= n
	}
	if excess > 0 {
		slices.SortStableFunc(p.partial, func(a, b compState) int { return cmpU64(key(a), key(b)) })
		clear(p.partial[:excess])
		p.partial = slices.Delete(p.partial, 0, excess)
	}
}

// advanceWatermark raises the watermark to wm and wakes every partition
// with buffered events or window deadlines at or before it.
func (e *Engine) advanceWatermark(wm int64) {
	e.wm = wm
	for len(e.timers) > 0 && e.timers[0].wake <= wm {
		p := e.timers[0]
		e.drain(p, wm)
		if wm > p.clock {
			before := len(p.partial) + len(p.completed)
			e.advanceTime(p, wm)
			e.stats.PartialMatches += len(p.partial) + len(p.completed) - before
			p.clock = wm
		}
		e.reschedule(p)
		if p.hidx == 0 && p.wake <= wm {
			// Cannot happen: a partition advanced to wm has nothing left at
			// or before it. Guard the loop against spinning all the same.
			heap.Remove(&e.timers, 0)
			p.wake = math.MaxInt64
		}
	}
}

// reschedule recomputes when p next needs the watermark's attention.
func (e *Engine) reschedule(p *partition) {
	wake := int64(math.MaxInt64)
	if len(p.buf) > 0 {
		wake = p.buf[0].ts
	}
	if len(p.partial) > 1 || len(p.completed) > 0 {
		wake = min(wake, p.deadline)
	}
	if wake == p.wake {
		return
	}
	p.wake = wake
	switch {
	case wake == math.MaxInt64 && p.hidx >= 0:
		heap.Remove(&e.timers, p.hidx)
	case wake != math.MaxInt64 && p.hidx >= 0:
		heap.Fix(&e.timers, p.hidx)
	case wake != math.MaxInt64:
		heap.Push(&e.timers, p)
	}
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// timerHeap orders partitions by wake time.
type timerHeap []*partition

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].wake < h[j].wake }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}
func (h *timerHeap) Push(x any) {
	p := x.(*partition)
	p.hidx = len(*h)
	*h = append(*h, p)
}
func (h *timerHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.hidx = -1
	return p
}
