package flow

import (
	"fmt"
	"strings"

	"github.com/tidewatch/tidewatch/state"
)

// Tumbling and sliding windows keep their state key first: a hash table
// from key to the key's open windows, indexed by the hash key-by computed
// (Record.KeyHash), so a record costs one probe that finds the key already
// there (keys recur from window to window) and a scan of a few windows; each
// key group also lists its keys, for snapshots. Each window also has a pane: the list of its
// (key, accumulator) entries in arrival order, with one fire timer and one
// cleanup timer for the whole window instead of a pair per key; firing and
// purging walk the list and look nothing up.

// keyState is one key's windows that are not purged yet.
type keyState struct {
	key  string
	hash uint64
	wins []keyWindow
	// gone: the key's group moved to Pebble; gen counts such moves, so that
	// pane entries made before one are recognised as stale.
	gone bool
	gen  uint32
	// inline holds the first windows in the same allocation, saving a cache
	// miss per record: a key has one open tumbling window most of the time.
	inline [2]keyWindow
}

type keyWindow struct {
	w   window
	acc *windowAcc
}

// pane is one window's entries.
type pane struct {
	w       window
	entries paneList
	// fireQueued and cleanupQueued: a fire or cleanup timer is pending.
	fireQueued, cleanupQueued bool
	// pebbleKGs counts the window's entries in each key group on Pebble.
	pebbleKGs map[int32]int
	// stale counts entries left behind by moves to Pebble since the last
	// compaction.
	stale int
}

type paneEntry struct {
	ks  *keyState
	acc *windowAcc
	kg  int32
	gen uint32 // ks.gen when made; stale if it differs
}

func (pe paneEntry) stale() bool { return pe.gen != pe.ks.gen }

// paneChunk is the most entries one chunk of a paneList holds.
const paneChunk = 1024

// paneList is a pane's entries in arrival order, in chunks of at most
// paneChunk entries rather than one slice. A window with half a million keys
// would otherwise grow by copying a slice of pointers, and a copy made
// during a GC cycle runs the write barrier over every pointer: over 100 ms
// for one append, on the task goroutine.
type paneList struct {
	chunks [][]paneEntry // only the last may have room
	n      int
}

func (l *paneList) len() int { return l.n }

func (l *paneList) add(pe paneEntry) {
	k := len(l.chunks) - 1
	if k < 0 || len(l.chunks[k]) == paneChunk {
		l.chunks = append(l.chunks, nil)
		k++
	}
	l.chunks[k] = append(l.chunks[k], pe)
	l.n++
}

// reset empties the list, keeping its first chunk for reuse.
func (l *paneList) reset() {
	for _, c := range l.chunks {
		clear(c)
	}
	if len(l.chunks) > 0 {
		l.chunks[0] = l.chunks[0][:0]
		clear(l.chunks[1:])
		l.chunks = l.chunks[:1]
	}
	l.n = 0
}

// dropFirst removes the first n entries.
func (l *paneList) dropFirst(n int) {
	l.n -= n
	for n > 0 {
		c := l.chunks[0]
		if n < len(c) {
			clear(c[:n])
			l.chunks[0] = c[n:]
			return
		}
		clear(c)
		n -= len(c)
		l.chunks[0] = nil
		l.chunks = l.chunks[1:]
	}
}

// keep keeps the entries for which fn is true, in order, in place.
func (l *paneList) keep(fn func(paneEntry) bool) {
	wc, wi := 0, 0 // where the next kept entry goes
	for _, c := range l.chunks {
		for _, pe := range c {
			if !fn(pe) {
				continue
			}
			if wi == len(l.chunks[wc]) {
				wc, wi = wc+1, 0
			}
			l.chunks[wc][wi] = pe
			wi++
		}
	}
	n := 0
	for k := range l.chunks {
		switch {
		case k < wc:
			n += len(l.chunks[k])
		case k == wc:
			clear(l.chunks[k][wi:])
			l.chunks[k] = l.chunks[k][:wi]
			n += wi
		default:
			clear(l.chunks[k])
			l.chunks[k] = nil
		}
	}
	if len(l.chunks) > 0 {
		l.chunks = l.chunks[:wc+1]
	}
	l.n = n
}

// paneTimer is the key group of a pane's timers, which act on all its keys.
const paneTimer = -1

// maxFreePanes bounds the panes kept for reuse.
const maxFreePanes = 256

// paneFor returns the pane of w, creating it with its cleanup timer. With
// no allowed lateness the cleanup falls on the fire time, and one timer does
// both (see queueFire).
func (o *WindowOperator) paneFor(w window) *pane {
	if p := o.lastPane; p != nil && p.w == w {
		return p
	}
	p := o.panes[w]
	if p == nil {
		p = reuse(&o.freePanes)
		p.w = w
		o.panes[w] = p
		if o.cleanupTime(w) != w.maxTimestamp() {
			o.queueCleanup(p)
		}
	}
	o.lastPane = p
	return p
}

// queueFire sets the pane's fire timer unless one is pending; with no
// allowed lateness it also purges the pane.
func (o *WindowOperator) queueFire(p *pane) {
	if !p.fireQueued {
		p.fireQueued = true
		flags := timerFire
		if o.cleanupTime(p.w) == p.w.maxTimestamp() && !p.cleanupQueued {
			flags |= timerCleanup
			p.cleanupQueued = true
		}
		o.timers.register(p.w.maxTimestamp(), timerEntry{w: p.w, kg: paneTimer, flags: flags})
	}
}

// queueCleanup sets the pane's cleanup timer unless one is pending.
func (o *WindowOperator) queueCleanup(p *pane) {
	if !p.cleanupQueued {
		p.cleanupQueued = true
		o.timers.register(o.cleanupTime(p.w), timerEntry{w: p.w, kg: paneTimer, flags: timerCleanup})
	}
}

// keyWindowAcc returns the accumulator of (kg, key, w), creating it if it is
// new: use if not nil (a restored one), else a fresh one.
func (o *WindowOperator) keyWindowAcc(kg int, key string, hash uint64, w window, use *windowAcc) (acc *windowAcc, created bool, err error) {
	ks := o.keys.get(hash, key)
	if ks == nil {
		// A record whose hash is wrong finds nothing and ends here: checked
		// once per key, not per record.
		if h := state.KeyHash(key); h != hash {
			return nil, false, fmt.Errorf("%w: hash %#x of key %q, want %#x (records must come through key-by)", ErrKeyHash, hash, key, h)
		}
		// Clone: key may share memory with a large input buffer that state
		// must not pin.
		ks = &keyState{key: strings.Clone(key), hash: hash}
		ks.wins = ks.inline[:0]
		o.keys.put(ks)
		o.groupKeys[kg-o.kgs.Start] = append(o.groupKeys[kg-o.kgs.Start], ks)
	} else {
		for i := range ks.wins {
			if ks.wins[i].w == w {
				return ks.wins[i].acc, false, nil
			}
		}
		if len(ks.wins) == 0 {
			o.idleKeys--
		}
		if ks.gone { // its group came back from Pebble
			ks.gone = false
			o.groupKeys[kg-o.kgs.Start] = append(o.groupKeys[kg-o.kgs.Start], ks)
		}
	}
	acc = use
	if acc == nil {
		acc = o.newAcc()
	}
	ks.wins = append(ks.wins, keyWindow{w, acc})
	p := o.paneFor(w)
	p.entries.add(paneEntry{ks: ks, acc: acc, kg: int32(kg), gen: ks.gen})
	o.paneEntries++
	return acc, true, nil
}

// addPane accumulates r into window w of its key, and re-fires w for that
// key if it has already fired.
func (o *WindowOperator) addPane(r *Record, w window) error {
	if o.onPebble(r.KeyGroup) {
		return o.addPebble(r, w)
	}
	acc, created, err := o.keyWindowAcc(r.KeyGroup, r.Key, r.KeyHash, w, nil)
	if err != nil {
		return err
	}
	if created {
		acc.fired = w.maxTimestamp() <= o.wm
		if !acc.fired {
			o.stats.OpenWindows++
			o.queueFire(o.lastPane)
		}
	}
	o.accumulate(acc, r)
	if w.maxTimestamp() > o.wm {
		if acc.fired {
			// Fired before a restore that reset the watermark: like Flink's
			// trigger, fire again when the watermark gets there.
			acc.fired = false
			o.stats.OpenWindows++
			o.queueFire(o.paneFor(w))
		}
		return nil
	}
	if !acc.fired { // only after a restore into an operator whose watermark is ahead
		acc.fired = true
		o.stats.OpenWindows--
		o.stats.Fired++
	} else {
		o.stats.Refired++
	}
	return o.emit(r.KeyGroup, r.Key, w, acc)
}

// onPaneTimer fires the pane's entries that have not fired, heap entries in
// arrival order and then the key groups on Pebble, and purges the pane.
func (o *WindowOperator) onPaneTimer(e *timerEntry) error {
	p := o.panes[e.w]
	if p == nil {
		return nil
	}
	fire, cleanup := e.flags&timerFire != 0, e.flags&timerCleanup != 0
	if fire {
		p.fireQueued = false
	}
	switch {
	case fire && cleanup:
		if err := o.fireAndDropEntries(p); err != nil {
			return err
		}
	case fire:
		for _, c := range p.entries.chunks {
			for _, pe := range c {
				if pe.acc.fired || pe.stale() {
					continue
				}
				pe.acc.fired = true
				o.stats.OpenWindows--
				o.stats.Fired++
				if err := o.emit(int(pe.kg), pe.ks.key, p.w, pe.acc); err != nil {
					return err
				}
			}
		}
	}
	if o.pebble != nil {
		if err := o.firePebble(p, fire, cleanup); err != nil {
			return err
		}
	}
	if cleanup {
		o.dropPane(p)
	}
	return nil
}

// fireAndDropEntries fires and purges a pane's heap entries in one pass.
func (o *WindowOperator) fireAndDropEntries(p *pane) error {
	done := 0
	for _, c := range p.entries.chunks {
		for _, pe := range c {
			if pe.stale() {
				done++
				continue
			}
			if !pe.acc.fired {
				pe.acc.fired = true
				o.stats.OpenWindows--
				o.stats.Fired++
				if err := o.emit(int(pe.kg), pe.ks.key, p.w, pe.acc); err != nil {
					p.entries.dropFirst(done) // the rest keep their state
					return err
				}
			}
			o.dropEntry(p.w, pe)
			done++
		}
	}
	p.entries.reset()
	return nil
}

// dropEntry removes one key's state of window w.
func (o *WindowOperator) dropEntry(w window, pe paneEntry) {
	ws := pe.ks.wins
	for i := range ws {
		if ws[i].w == w {
			last := len(ws) - 1
			ws[i] = ws[last]
			ws[last] = keyWindow{}
			pe.ks.wins = ws[:last]
			break
		}
	}
	if len(pe.ks.wins) == 0 {
		o.idleKeys++
	}
	if !pe.acc.fired {
		o.stats.OpenWindows--
	}
	o.freeAcc(pe.acc)
	o.paneEntries--
}

// dropPane purges a pane and keeps its parts for reuse.
func (o *WindowOperator) dropPane(p *pane) {
	for _, c := range p.entries.chunks {
		for _, pe := range c {
			if !pe.stale() {
				o.dropEntry(p.w, pe)
			}
		}
	}
	clear(p.pebbleKGs)
	p.entries.reset()
	p.fireQueued, p.cleanupQueued, p.stale = false, false, 0
	delete(o.panes, p.w)
	if o.lastPane == p {
		o.lastPane = nil
	}
	if len(o.freePanes) < maxFreePanes {
		o.freePanes = append(o.freePanes, p)
	}
	o.sweepIdleKeys()
}

// sweepIdleKeys deletes the keys that have no window left once they are
// more than half of all keys: a key that stops arriving costs its entry
// only until the next sweep, and a key that keeps arriving is not deleted
// and re-inserted at every window.
func (o *WindowOperator) sweepIdleKeys() {
	if o.idleKeys < 1024 || o.idleKeys*2 < o.keys.n {
		return
	}
	o.keys.reset(o.keys.n - o.idleKeys)
	for j, list := range o.groupKeys {
		kept := list[:0]
		for _, ks := range list {
			if len(ks.wins) > 0 {
				kept = append(kept, ks)
				o.keys.put(ks)
			}
		}
		clear(list[len(kept):])
		o.groupKeys[j] = kept
	}
	o.idleKeys = 0
}

// keyTable is a hash table of keyStates by their key's hash, with linear
// probing. Entries are only removed by rebuilding the table (reset, then put
// the survivors), so it needs no tombstones.
type keyTable struct {
	slots []keySlot // a power of two long
	n     int
}

type keySlot struct {
	hash uint64
	ks   *keyState // nil: empty
}

func (t *keyTable) get(hash uint64, key string) *keyState {
	if len(t.slots) == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := hash & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.ks == nil {
			return nil
		}
		if s.hash == hash && s.ks.key == key {
			return s.ks
		}
	}
}

// put adds ks, whose key is not in the table.
func (t *keyTable) put(ks *keyState) {
	if (t.n+1)*4 > len(t.slots)*3 { // keep the load under 3/4
		old := t.slots
		t.slots = make([]keySlot, max(64, 2*len(old)))
		t.n = 0
		for _, s := range old {
			if s.ks != nil {
				t.insert(s)
			}
		}
	}
	t.insert(keySlot{ks.hash, ks})
}

func (t *keyTable) insert(s keySlot) {
	mask := uint64(len(t.slots) - 1)
	i := s.hash & mask
	for t.slots[i].ks != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = s
	t.n++
}

// reset empties the table, sized for n keys.
func (t *keyTable) reset(n int) {
	size := 64
	for size*3 < n*4+4 {
		size *= 2
	}
	t.slots, t.n = make([]keySlot, size), 0
}

// eachPaneEntry calls fn for every (key, window) state of key group kg.
func (o *WindowOperator) eachPaneEntry(kg int, fn func(key string, w window, acc *windowAcc)) {
	for _, ks := range o.groupKeys[kg-o.kgs.Start] {
		for _, kw := range ks.wins {
			fn(ks.key, kw.w, kw.acc)
		}
	}
}
