package flow

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/tidewatch/tidewatch/state"
)

// Window kinds of WindowConfig.Kind.
const (
	WindowTumbling = "tumbling"
	WindowSliding  = "sliding"
	WindowSession  = "session"
)

// Errors of the window operator.
var (
	ErrWindowConfig = errors.New("flow: invalid window config")
	ErrKeyGroup     = errors.New("flow: key group outside the operator's range")
	ErrKeyHash      = errors.New("flow: record key hash does not match its key")
)

// WindowConfig describes event-time windows. Times are in ms.
type WindowConfig struct {
	Kind string // tumbling, sliding or session
	// Size is the length of tumbling and sliding windows.
	Size int64
	// Slide is the distance between the starts of sliding windows.
	Slide int64
	// Gap is the inactivity that closes a session.
	Gap int64
	// AllowedLateness is how long after a window fires its state is kept so
	// that late records update it and re-fire it.
	AllowedLateness int64
}

// Validate names the offending field.
func (c WindowConfig) Validate() error {
	switch c.Kind {
	case WindowTumbling:
		if c.Size <= 0 {
			return fmt.Errorf("%w: Size %d of a tumbling window must be positive", ErrWindowConfig, c.Size)
		}
	case WindowSliding:
		if c.Size <= 0 {
			return fmt.Errorf("%w: Size %d of a sliding window must be positive", ErrWindowConfig, c.Size)
		}
		if c.Slide <= 0 {
			return fmt.Errorf("%w: Slide %d of a sliding window must be positive", ErrWindowConfig, c.Slide)
		}
	case WindowSession:
		if c.Gap <= 0 {
			return fmt.Errorf("%w: Gap %d of a session window must be positive", ErrWindowConfig, c.Gap)
		}
	default:
		return fmt.Errorf("%w: Kind %q (want tumbling, sliding or session)", ErrWindowConfig, c.Kind)
	}
	if c.AllowedLateness < 0 {
		return fmt.Errorf("%w: AllowedLateness %d must not be negative", ErrWindowConfig, c.AllowedLateness)
	}
	return nil
}

// WindowStats are the operator's counters. OpenWindows and StateEntries
// describe the state; the others count since the operator was built.
type WindowStats struct {
	// LateSideOutput and LateDropped count records that arrived after every
	// window they belong to was purged (beyond allowed lateness).
	LateSideOutput int64
	LateDropped    int64
	// Fired counts results emitted when the watermark passed a window's end;
	// Refired those emitted at once for a record arriving after that, within
	// allowed lateness.
	Fired   int64
	Refired int64
	// OpenWindows is the number of (key, window) states not yet fired;
	// StateEntries all (key, window) states, including fired ones kept for
	// allowed lateness.
	OpenWindows  int64
	StateEntries int64
}

type windowKind uint8

const (
	kindTumbling windowKind = iota + 1
	kindSliding
	kindSession
)

// window is [Start, End) in ms; the namespace of the window state.
type window struct {
	Start, End int64
}

type stateEntry = state.Entry[window]

// maxTimestamp is the last ms in the window, when it fires.
func (w window) maxTimestamp() int64 { return w.End - 1 }

// intersects is Flink's TimeWindow.intersects: windows that merely touch
// count, so sessions [0,10) and [10,20) merge.
func (w window) intersects(o window) bool { return w.Start <= o.End && w.End >= o.Start }

// windowStart is the start of the window of size containing t, aligned to
// multiples of size (floor division, correct for negative t).
func windowStart(t, size int64) int64 {
	r := t % size
	if r < 0 {
		r += size
	}
	return t - r
}

// WindowOperator aggregates keyed records in event-time windows with the
// semantics of Flink's WindowOperator with an EventTimeTrigger and allowed
// lateness:
//
//   - a window fires (emits its result) when the watermark reaches End-1;
//   - its state is kept until the watermark reaches End-1+AllowedLateness,
//     then purged;
//   - a record for a window that has fired but is not purged updates the
//     state and re-fires the window at once with the full updated result;
//   - a record all of whose windows are purged is late: it goes to the late
//     emitter as received, or is dropped and counted when that is nil.
//
// Session windows of one key merge when they overlap or touch, merging their
// accumulators.
//
// Tumbling and sliding window state lives in a map from key to the key's
// windows, and each window has a pane listing its entries, with
// one fire and one cleanup timer per window: a record costs one map lookup,
// and firing walks the window's list. Session state lives in a state.Table addressed by key
// group, window and key, with timers per (key, window), since sessions are
// per key and merge. The operator keeps no other keyed state, so a key
// group's snapshot holds everything needed to rebuild it (timers included).
// Timers are buckets per timestamp with a min-heap of timestamps, so a
// watermark costs O(timers due), not O(state).
//
// A WindowOperator belongs to one task goroutine. Records passed to Process
// are not retained. An error from an emitter leaves the operator in an
// undefined state: the job must restore from a checkpoint.
type WindowOperator struct {
	cfg  WindowConfig
	kind windowKind
	aggs []agg
	nIn  int
	sch  *Schema
	kgs  state.KeyGroupRange
	out  Emitter
	late Emitter

	// Tumbling and sliding windows keep their state in panes, one per
	// window; sessions, which are per key and merge, in accs and sessions.
	keys        keyTable
	groupKeys   [][]*keyState // the keys of each key group, by key group - kgs.Start
	idleKeys    int           // keys with no window
	panes       map[window]*pane
	lastPane    *pane
	paneEntries int
	freePanes   []*pane
	accs        *state.Table[window, *windowAcc]
	// sessions lists each key's session windows.
	sessions *state.Table[struct{}, *sessionSet]

	// pebble holds the key groups on the Pebble backend; nil when the
	// operator has no Pebble store.
	pebble *pebbleState
	// lastTumbling is the window of the last record, to spare the division.
	lastTumbling window

	timers timerService
	wm     int64
	free   []*windowAcc
	outRec Record
	stats  WindowStats
}

// sessionSet is the session windows of one key; they never intersect.
type sessionSet struct {
	ws []window
}

// maxFreeAccs bounds the accumulators kept for reuse after a purge.
const maxFreeAccs = 4096

// NewWindowOperator builds a window operator for the key groups kgs.
// Results go to out; late records to late, which may be nil.
func NewWindowOperator(cfg WindowConfig, aggs []AggConfig, in *Schema, kgs state.KeyGroupRange, out, late Emitter) (*WindowOperator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if in == nil {
		return nil, errors.New("flow: window: no input schema")
	}
	if kgs.Start < 0 || kgs.End < kgs.Start {
		return nil, fmt.Errorf("flow: window: bad key group range %v", kgs)
	}
	if out == nil {
		return nil, errors.New("flow: window: no output emitter")
	}
	compiledAggs, err := compileAggs(aggs, in)
	if err != nil {
		return nil, err
	}
	names := []string{"windowStart", "windowEnd", "key"}
	kinds := []Kind{KindInt, KindInt, KindString}
	for _, a := range compiledAggs {
		names = append(names, a.name)
		kinds = append(kinds, a.outKind())
	}
	sch, err := NewSchema(names, kinds)
	if err != nil {
		return nil, fmt.Errorf("flow: window output: %w", err)
	}
	o := &WindowOperator{
		cfg:    cfg,
		aggs:   compiledAggs,
		nIn:    len(in.Names),
		sch:    sch,
		kgs:    kgs,
		out:    out,
		late:   late,
		wm:     math.MinInt64,
		outRec: Record{Row: make([]Value, len(names))},
	}
	o.timers.init()
	switch cfg.Kind {
	case WindowTumbling:
		o.kind = kindTumbling
	case WindowSliding:
		o.kind = kindSliding
	case WindowSession:
		o.kind = kindSession
	}
	if o.kind == kindSession {
		o.accs = state.NewTable[window, *windowAcc](kgs)
		o.sessions = state.NewTable[struct{}, *sessionSet](kgs)
	} else {
		o.panes = map[window]*pane{}
		o.groupKeys = make([][]*keyState, kgs.Len())
	}
	return o, nil
}

// OutSchema is windowStart, windowEnd, key, then each aggregate's As.
func (o *WindowOperator) OutSchema() *Schema { return o.sch }

// CurrentWatermark is the highest watermark seen. It is operator-wide, not
// part of a key group's snapshot: the engine checkpoints it with the
// operator and, after restoring the key groups, passes it to Watermark.
func (o *WindowOperator) CurrentWatermark() int64 { return o.wm }

// StateEntries is the number of (key, window) states.
func (o *WindowOperator) StateEntries() int64 {
	if o.accs != nil {
		return int64(o.accs.Len())
	}
	return int64(o.paneEntries + o.PebbleEntries())
}

// Stats returns the counters.
func (o *WindowOperator) Stats() WindowStats {
	s := o.stats
	s.StateEntries = o.StateEntries()
	return s
}

// cleanupTime is when a window's state is purged, guarded against overflow
// as in Flink.
func (o *WindowOperator) cleanupTime(w window) int64 {
	t := w.maxTimestamp() + o.cfg.AllowedLateness
	if t < w.maxTimestamp() {
		return math.MaxInt64
	}
	return t
}

func (o *WindowOperator) windowLate(w window) bool { return o.cleanupTime(w) <= o.wm }

func (o *WindowOperator) elementLate(t int64) bool {
	if t > math.MaxInt64-o.cfg.AllowedLateness {
		return false
	}
	return t+o.cfg.AllowedLateness <= o.wm
}

// Process adds a keyed record to its windows.
func (o *WindowOperator) Process(r *Record) error {
	if !o.kgs.Contains(r.KeyGroup) {
		return fmt.Errorf("%w: key group %d, range %v", ErrKeyGroup, r.KeyGroup, o.kgs)
	}
	if len(r.Row) != o.nIn {
		return fmt.Errorf("%w: %d fields, schema has %d", ErrRow, len(r.Row), o.nIn)
	}
	switch o.kind {
	case kindTumbling:
		w := o.lastTumbling
		if r.Time < w.Start || r.Time >= w.End { // most records fall in the last record's window
			start := windowStart(r.Time, o.cfg.Size)
			w = window{start, start + o.cfg.Size}
			o.lastTumbling = w
		}
		if o.windowLate(w) {
			return o.lateRecord(r)
		}
		return o.addPane(r, w)
	case kindSliding:
		// Flink's order: the latest window first.
		skipped := true
		for start := windowStart(r.Time, o.cfg.Slide); start > r.Time-o.cfg.Size; start -= o.cfg.Slide {
			w := window{start, start + o.cfg.Size}
			if o.windowLate(w) {
				continue
			}
			skipped = false
			if err := o.addPane(r, w); err != nil {
				return err
			}
		}
		// With Slide > Size a record may fall between windows: dropped
		// without counting, as in Flink.
		if skipped && o.elementLate(r.Time) {
			return o.lateRecord(r)
		}
		return nil
	default:
		return o.addSession(r)
	}
}

func (o *WindowOperator) lateRecord(r *Record) error {
	if o.late == nil {
		o.stats.LateDropped++
		return nil
	}
	o.stats.LateSideOutput++
	return o.late.Emit(r)
}

// fireIfPast is the EventTimeTrigger's onElement: a window whose end the
// watermark has passed fires at once.
func (o *WindowOperator) fireIfPast(kg int, key string, w window, acc *windowAcc) error {
	if w.maxTimestamp() > o.wm {
		if acc.fired {
			// Fired before a restore that reset the watermark: like Flink's
			// trigger, fire again when the watermark gets there.
			acc.fired = false
			o.stats.OpenWindows++
			o.timers.register(w.maxTimestamp(), timerEntry{w: w, key: strings.Clone(key), kg: int32(kg), flags: timerFire})
		}
		return nil
	}
	if acc.fired {
		o.stats.Refired++
	} else {
		// Only after a restore into an operator whose watermark is ahead.
		acc.fired = true
		o.stats.OpenWindows--
		o.stats.Fired++
	}
	return o.emit(kg, key, w, acc)
}

// registerWindow sets the timers of a new window state: the fire timer
// unless the watermark has passed the end (then the record's fireIfPast
// fires it), and the cleanup timer.
func (o *WindowOperator) registerWindow(kg int, key string, w window, acc *windowAcc) {
	fire := w.maxTimestamp() > o.wm
	acc.fired = !fire
	if fire {
		o.stats.OpenWindows++
	}
	o.registerTimers(kg, key, w, fire)
}

func (o *WindowOperator) registerTimers(kg int, key string, w window, fire bool) {
	cleanup := o.cleanupTime(w)
	if fire {
		flags := timerFire
		if cleanup == w.maxTimestamp() {
			flags |= timerCleanup
		}
		o.timers.register(w.maxTimestamp(), timerEntry{w: w, key: key, kg: int32(kg), flags: flags})
		if flags&timerCleanup != 0 {
			return
		}
	}
	o.timers.register(cleanup, timerEntry{w: w, key: key, kg: int32(kg), flags: timerCleanup})
}

// addSession merges the record's window [t, t+gap) with the key's sessions
// it intersects, as Flink's MergingWindowSet does.
func (o *WindowOperator) addSession(r *Record) error {
	nw := window{r.Time, r.Time + o.cfg.Gap}
	set, _ := o.sessions.Get(r.KeyGroup, struct{}{}, r.Key)
	actual := nw
	nMerged, first := 0, -1
	if set != nil {
		for i, w := range set.ws {
			if w.intersects(nw) {
				if first < 0 {
					first = i
				}
				nMerged++
				actual.Start = min(actual.Start, w.Start)
				actual.End = max(actual.End, w.End)
			}
		}
	}
	switch {
	case nMerged == 0:
		if o.windowLate(actual) {
			return o.lateRecord(r)
		}
		key := strings.Clone(r.Key)
		if set == nil {
			set = &sessionSet{}
			o.sessions.Put(r.KeyGroup, struct{}{}, key, set)
		}
		set.ws = append(set.ws, actual)
		acc := o.newAcc()
		o.accs.Put(r.KeyGroup, actual, key, acc)
		o.registerWindow(r.KeyGroup, key, actual, acc)
		o.accumulate(acc, r)
		return o.fireIfPast(r.KeyGroup, key, actual, acc)
	case nMerged == 1 && set.ws[first] == actual:
		// Inside an existing session: no merge, timers already set.
		acc, _ := o.accs.Get(r.KeyGroup, actual, r.Key)
		o.accumulate(acc, r)
		return o.fireIfPast(r.KeyGroup, r.Key, actual, acc)
	}
	// Merge every intersecting session into the first one's accumulator,
	// which moves to the merged window. Timers of the merged-away windows
	// stay queued and find no state when they fire. An existing session is
	// never late (the watermark purges it first), so neither is the merge.
	key := strings.Clone(r.Key)
	target, _ := o.accs.Get(r.KeyGroup, set.ws[first], key)
	kept := set.ws[:0]
	for _, w := range set.ws {
		if !w.intersects(nw) {
			kept = append(kept, w)
			continue
		}
		acc, _ := o.accs.Get(r.KeyGroup, w, key)
		if !acc.fired {
			o.stats.OpenWindows--
		}
		o.accs.Delete(r.KeyGroup, w, key)
		if acc != target {
			o.mergeAcc(target, acc)
			o.freeAcc(acc)
		}
	}
	set.ws = append(kept, actual)
	o.accs.Put(r.KeyGroup, actual, key, target)
	o.registerWindow(r.KeyGroup, key, actual, target)
	o.accumulate(target, r)
	return o.fireIfPast(r.KeyGroup, key, actual, target)
}

// Watermark advances event time and fires and purges the windows whose
// timers are due. Timers due at the same time run in (window start, window
// end, key group, key) order; a tumbling or sliding window fires its keys in
// the order they arrived (after a restore, key group by key group in key
// order). The caller forwards the watermark
// downstream afterwards.
func (o *WindowOperator) Watermark(wm int64) error {
	if wm > o.wm {
		o.wm = wm
	}
	// Checked even when wm did not advance: a restore may leave timers due.
	for o.timers.due(o.wm) {
		b := o.timers.pop()
		b.sort()
		for i := range b.entries {
			if err := o.onTimer(&b.entries[i]); err != nil {
				return err
			}
		}
		o.timers.release(b)
	}
	return nil
}

func (o *WindowOperator) onTimer(e *timerEntry) error {
	if e.kg == paneTimer {
		return o.onPaneTimer(e)
	}
	kg := int(e.kg)
	acc, ok := o.accs.Get(kg, e.w, e.key)
	if !ok {
		return nil // a session merged away
	}
	if e.flags&timerFire != 0 && !acc.fired {
		acc.fired = true
		o.stats.OpenWindows--
		o.stats.Fired++
		if err := o.emit(kg, e.key, e.w, acc); err != nil {
			return err
		}
	}
	if e.flags&timerCleanup != 0 {
		o.purge(kg, e.key, e.w, acc)
	}
	return nil
}

func (o *WindowOperator) purge(kg int, key string, w window, acc *windowAcc) {
	if !acc.fired {
		o.stats.OpenWindows-- // not reached with a consistent timer order; kept exact anyway
	}
	o.accs.Delete(kg, w, key)
	o.freeAcc(acc)
	set, ok := o.sessions.Get(kg, struct{}{}, key)
	if !ok {
		return
	}
	for i, sw := range set.ws {
		if sw == w {
			set.ws = append(set.ws[:i], set.ws[i+1:]...)
			break
		}
	}
	if len(set.ws) == 0 {
		o.sessions.Delete(kg, struct{}{}, key)
	}
}

// emit sends one window result. The output record is reused.
func (o *WindowOperator) emit(kg int, key string, w window, acc *windowAcc) error {
	row := o.outRec.Row
	row[0], row[1], row[2] = Int(w.Start), Int(w.End), String(key)
	for i := range o.aggs {
		row[3+i] = o.aggs[i].result(&acc.slots[i])
	}
	o.outRec.Time, o.outRec.Key, o.outRec.KeyGroup = w.maxTimestamp(), key, kg
	return o.out.Emit(&o.outRec)
}
