package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tidewatch/tidewatch/state"
)

// Backend is where a key group's window state lives.
type Backend uint8

// Backends of a key group.
const (
	BackendHeap Backend = iota
	BackendPebble
)

func (b Backend) String() string {
	if b == BackendPebble {
		return "pebble"
	}
	return "heap"
}

// ParseBackend parses "heap" or "pebble".
func ParseBackend(s string) (Backend, error) {
	switch s {
	case "heap":
		return BackendHeap, nil
	case "pebble":
		return BackendPebble, nil
	}
	return 0, fmt.Errorf("flow: state backend %q (want heap or pebble)", s)
}

// ErrBackend: the operator cannot put this state on that backend.
var ErrBackend = errors.New("flow: state backend")

// A key group on the Pebble backend keeps each (key, window) accumulator at
// the key state.AppendKey(id, kg, window, key), whose value is the entry's
// snapshot bytes after key and window (appendAcc). Windows are encoded so
// that byte order is time order. Writes go through an indexed batch, read
// through by Process and applied to the store when it grows large and before
// anything iterates the store (firing, snapshots, migration). The panes keep
// the timers and, per window, how many entries each Pebble key group holds,
// so firing a window scans only the key groups that have it.
type pebbleState struct {
	db      *state.PebbleDB
	id      state.StateID
	backend []Backend // by key group - kgs.Start
	batch   *pebble.Batch
	entries int
	perKG   []int      // entries by key group - kgs.Start
	acc     *windowAcc // scratch accumulator for Process
	key     []byte
	val     []byte
	ns      [16]byte
}

// maxBatchBytes is when the write buffer is applied to the store.
const maxBatchBytes = 1 << 20

// UsePebble gives the operator a Pebble store (shared by the operators of a
// process; id names this operator's state in it) and puts every key group on
// initial. Call it before the first record or restore. Session windows keep
// their state on the heap.
func (o *WindowOperator) UsePebble(db *state.PebbleDB, id state.StateID, initial Backend) error {
	if o.kind == kindSession {
		if initial == BackendPebble {
			return fmt.Errorf("%w: session windows keep their state on the heap", ErrBackend)
		}
		return nil
	}
	o.pebble = &pebbleState{db: db, id: id, backend: make([]Backend, o.kgs.Len()), batch: db.DB().NewIndexedBatch(),
		acc: newWindowAcc(len(o.aggs)), perKG: make([]int, o.kgs.Len())}
	for i := range o.pebble.backend {
		o.pebble.backend[i] = initial
	}
	return nil
}

// CanMigrate reports why key groups cannot move: the operator has no Pebble
// store, or its windows are sessions.
func (o *WindowOperator) CanMigrate() error {
	if o.kind == kindSession {
		return fmt.Errorf("%w: session windows keep their state on the heap", ErrBackend)
	}
	if o.pebble == nil {
		return fmt.Errorf("%w: the operator has no Pebble store", ErrBackend)
	}
	return nil
}

// KeyGroupBackend reports where key group kg's state lives.
func (o *WindowOperator) KeyGroupBackend(kg int) Backend {
	if o.pebble == nil || !o.kgs.Contains(kg) {
		return BackendHeap
	}
	return o.pebble.backend[kg-o.kgs.Start]
}

func (o *WindowOperator) onPebble(kg int) bool {
	return o.pebble != nil && o.pebble.backend[kg-o.kgs.Start] == BackendPebble
}

// appendWindow encodes w so that byte order is (start, end) order.
func appendWindow(b []byte, w window) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(w.Start)^1<<63)
	return binary.BigEndian.AppendUint64(b, uint64(w.End)^1<<63)
}

func decodeWindow(b []byte) (window, error) {
	if len(b) != 16 {
		return window{}, fmt.Errorf("%w: window namespace of %d bytes", ErrCorruptSnapshot, len(b))
	}
	return window{int64(binary.BigEndian.Uint64(b) ^ 1<<63), int64(binary.BigEndian.Uint64(b[8:]) ^ 1<<63)}, nil
}

func (ps *pebbleState) keyOf(kg int, w window, key string) []byte {
	ps.key = state.AppendKey(ps.key[:0], ps.id, kg, appendWindow(ps.ns[:0], w), key)
	return ps.key
}

// flush applies the write buffer to the store.
func (ps *pebbleState) flush() error {
	if ps.batch.Empty() {
		return nil
	}
	if err := ps.batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("flow: pebble state: %w", err)
	}
	ps.batch.Reset()
	return nil
}

func (ps *pebbleState) set(k []byte, v []byte) error {
	if err := ps.batch.Set(k, v, nil); err != nil {
		return fmt.Errorf("flow: pebble state: %w", err)
	}
	if ps.batch.Len() >= maxBatchBytes {
		return ps.flush()
	}
	return nil
}

// addPebble is addPane for a key group on Pebble: read, accumulate, write.
func (o *WindowOperator) addPebble(r *Record, w window) error {
	ps := o.pebble
	k := ps.keyOf(r.KeyGroup, w, r.Key)
	acc := ps.acc
	clear(acc.slots)
	acc.fired = false
	v, closer, err := ps.batch.Get(k)
	created := errors.Is(err, pebble.ErrNotFound)
	switch {
	case created:
	case err != nil:
		return fmt.Errorf("flow: pebble state: %w", err)
	default:
		d := decoder{b: v}
		o.decodeAcc(&d, acc)
		closer.Close()
		if d.err == nil && len(d.b) > 0 {
			d.fail("bytes after the accumulator")
		}
		if d.err != nil {
			return fmt.Errorf("%w: pebble value of key %q window %v: %v", ErrCorruptSnapshot, r.Key, w, d.err)
		}
	}
	p := o.paneFor(w)
	if created {
		if p.pebbleKGs == nil {
			p.pebbleKGs = map[int32]int{}
		}
		p.pebbleKGs[int32(r.KeyGroup)]++
		ps.entries++
		ps.perKG[r.KeyGroup-o.kgs.Start]++
		acc.fired = w.maxTimestamp() <= o.wm
		if !acc.fired {
			o.stats.OpenWindows++
			o.queueFire(p)
		}
	}
	o.accumulate(acc, r)
	emit := false
	switch {
	case w.maxTimestamp() > o.wm:
		if acc.fired { // fired before a restore that reset the watermark
			acc.fired = false
			o.stats.OpenWindows++
			o.queueFire(p)
		}
	case !acc.fired:
		acc.fired = true
		o.stats.OpenWindows--
		o.stats.Fired++
		emit = true
	default:
		o.stats.Refired++
		emit = true
	}
	// k aliases ps.key, which keyOf reuses: copy before emitting.
	ps.val = o.appendAcc(ps.val[:0], acc)
	if err := ps.set(k, ps.val); err != nil {
		return err
	}
	if emit {
		return o.emit(r.KeyGroup, r.Key, w, acc)
	}
	return nil
}

// firePebble fires (and, with cleanup, purges) window w in every Pebble key
// group that has it, key group by key group in key order.
func (o *WindowOperator) firePebble(p *pane, fire, cleanup bool) error {
	if len(p.pebbleKGs) == 0 {
		return nil
	}
	ps := o.pebble
	if err := ps.flush(); err != nil {
		return err
	}
	kgs := make([]int32, 0, len(p.pebbleKGs))
	for kg := range p.pebbleKGs {
		kgs = append(kgs, kg)
	}
	slices.Sort(kgs)
	ns := appendWindow(nil, p.w)
	acc := ps.acc
	for _, kg := range kgs {
		lo, hi := state.NamespaceBounds(ps.id, int(kg), ns)
		if fire {
			it, err := ps.db.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
			if err != nil {
				return fmt.Errorf("flow: pebble state: %w", err)
			}
			for it.First(); it.Valid(); it.Next() {
				_, _, _, key, err := state.SplitKey(it.Key())
				if err != nil {
					it.Close()
					return err
				}
				clear(acc.slots)
				d := decoder{b: it.Value()}
				o.decodeAcc(&d, acc)
				if d.err != nil {
					it.Close()
					return fmt.Errorf("%w: pebble value of key %q window %v: %v", ErrCorruptSnapshot, key, p.w, d.err)
				}
				if acc.fired {
					continue
				}
				acc.fired = true
				o.stats.OpenWindows--
				o.stats.Fired++
				if err := o.emit(int(kg), string(key), p.w, acc); err != nil {
					it.Close()
					return err
				}
				if !cleanup {
					ps.val = o.appendAcc(ps.val[:0], acc)
					if err := ps.batch.Set(it.Key(), ps.val, nil); err != nil {
						it.Close()
						return fmt.Errorf("flow: pebble state: %w", err)
					}
				}
			}
			if err := it.Close(); err != nil {
				return fmt.Errorf("flow: pebble state: %w", err)
			}
		}
		if cleanup {
			if !fire {
				if err := o.countUnfired(lo, hi); err != nil {
					return err
				}
			}
			if err := ps.batch.DeleteRange(lo, hi, nil); err != nil {
				return fmt.Errorf("flow: pebble state: %w", err)
			}
			ps.entries -= p.pebbleKGs[kg]
			ps.perKG[int(kg)-o.kgs.Start] -= p.pebbleKGs[kg]
			delete(p.pebbleKGs, kg)
		}
	}
	return ps.flush()
}

// countUnfired keeps OpenWindows exact when a window is purged without
// firing (not reached with a consistent timer order).
func (o *WindowOperator) countUnfired(lo, hi []byte) error {
	it, err := o.pebble.db.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("flow: pebble state: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		if v := it.Value(); len(v) > 0 && v[0]&entryFired == 0 {
			o.stats.OpenWindows--
		}
	}
	return it.Close()
}

// eachPebbleEntry calls fn for every entry of key group kg on Pebble, in
// (window, key) order, each with an accumulator of its own.
func (o *WindowOperator) eachPebbleEntry(kg int, fn func(key string, w window, acc *windowAcc) error) error {
	return o.scanPebbleGroup(kg, func() *windowAcc { return newWindowAcc(len(o.aggs)) },
		func(key []byte, w window, acc *windowAcc) error { return fn(string(key), w, acc) })
}

// scanPebbleGroup decodes every entry of key group kg on Pebble, in
// (window, key) order, into accumulators from alloc, and hands them to fn.
// key aliases the iterator's buffer and is valid only during the call.
func (o *WindowOperator) scanPebbleGroup(kg int, alloc func() *windowAcc, fn func(key []byte, w window, acc *windowAcc) error) error {
	ps := o.pebble
	if err := ps.flush(); err != nil {
		return err
	}
	lo, hi := state.KeyGroupBounds(ps.id, kg)
	it, err := ps.db.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("flow: pebble state: %w", err)
	}
	// Closed exactly once: a second Close would hand the iterator to the
	// pool twice, and two subtasks would share it.
	err = func() error {
		for it.First(); it.Valid(); it.Next() {
			_, _, ns, key, err := state.SplitKey(it.Key())
			if err != nil {
				return err
			}
			w, err := decodeWindow(ns)
			if err != nil {
				return err
			}
			acc := alloc()
			d := decoder{b: it.Value()}
			o.decodeAcc(&d, acc)
			if d.err != nil {
				return fmt.Errorf("%w: pebble value of key %q window %v: %v", ErrCorruptSnapshot, key, w, d.err)
			}
			if err := fn(key, w, acc); err != nil {
				return err
			}
		}
		return nil
	}()
	return errors.Join(err, it.Close())
}

// putPebbleEntry stores a restored or migrated entry of key group kg and
// registers its window.
func (o *WindowOperator) putPebbleEntry(kg int, key string, w window, acc *windowAcc) error {
	ps := o.pebble
	ps.val = o.appendAcc(ps.val[:0], acc)
	if err := ps.set(ps.keyOf(kg, w, key), ps.val); err != nil {
		return err
	}
	p := o.paneFor(w)
	if p.pebbleKGs == nil {
		p.pebbleKGs = map[int32]int{}
	}
	p.pebbleKGs[int32(kg)]++
	ps.entries++
	ps.perKG[kg-o.kgs.Start]++
	if acc.fired {
		o.queueCleanup(p)
	} else {
		o.queueFire(p)
	}
	return nil
}

// MigrationStep is the result of moving one key group.
type MigrationStep struct {
	KeyGroup int
	Entries  int
	Took     time.Duration
}

// MigrateKeyGroup moves key group kg's state to backend to, at once: a
// record processed after it returns finds all of the group's state there,
// one processed before found all of it on the other side. It runs on the
// operator's goroutine, between records.
func (o *WindowOperator) MigrateKeyGroup(kg int, to Backend) (MigrationStep, error) {
	runtime.Gosched() // see state.Migration.Step: GC work owed to this P goes first
	start := time.Now()
	step := MigrationStep{KeyGroup: kg}
	if !o.kgs.Contains(kg) {
		return step, fmt.Errorf("%w: key group %d, range %v", ErrKeyGroup, kg, o.kgs)
	}
	if err := o.CanMigrate(); err != nil {
		return step, err
	}
	ps := o.pebble
	if ps.backend[kg-o.kgs.Start] == to {
		return step, nil
	}
	var err error
	if to == BackendPebble {
		step.Entries, err = o.heapToPebble(kg)
	} else {
		step.Entries, err = o.pebbleToHeap(kg)
	}
	step.Took = time.Since(start)
	return step, err
}

func (o *WindowOperator) heapToPebble(kg int) (int, error) {
	ps := o.pebble
	n := 0
	list := o.groupKeys[kg-o.kgs.Start]
	// A plain batch straight to the store: the write buffer holds nothing
	// of a group on the heap, and bulk writes need no index.
	wb := ps.db.DB().NewBatch()
	defer wb.Close()
	for _, ks := range list {
		for _, kw := range ks.wins {
			ps.val = o.appendAcc(ps.val[:0], kw.acc)
			if err := wb.Set(ps.keyOf(kg, kw.w, ks.key), ps.val, nil); err != nil {
				return 0, fmt.Errorf("flow: pebble state: %w", err)
			}
			n++
		}
	}
	if err := wb.Commit(pebble.NoSync); err != nil {
		return 0, fmt.Errorf("flow: pebble state: %w", err)
	}
	var touched []*pane
	for _, ks := range list {
		for _, kw := range ks.wins {
			p := o.paneFor(kw.w)
			if p.pebbleKGs == nil {
				p.pebbleKGs = map[int32]int{}
			}
			if p.stale == 0 {
				touched = append(touched, p)
			}
			p.pebbleKGs[int32(kg)]++
			p.stale++
		}
	}
	// Only now, with everything written, does the group switch over. The
	// heap entries become stale: panes skip entries whose key state has a
	// newer generation, and their accumulators are left to the collector.
	for _, ks := range list {
		if len(ks.wins) > 0 {
			o.idleKeys++
		}
		ks.gen++
		clear(ks.wins)
		ks.wins = ks.wins[:0]
		ks.gone = true
	}
	clear(list)
	o.groupKeys[kg-o.kgs.Start] = nil
	// Once most of a pane's entries are stale, drop them, so that a long
	// window moved back and forth does not keep every old accumulator.
	for _, p := range touched {
		if p.stale*2 > p.entries.len() {
			p.entries.keep(func(pe paneEntry) bool { return !pe.stale() })
			p.stale = 0
		}
	}
	o.paneEntries -= n
	ps.entries += n
	ps.perKG[kg-o.kgs.Start] += n
	ps.backend[kg-o.kgs.Start] = BackendPebble
	return n, nil
}

func (o *WindowOperator) pebbleToHeap(kg int) (int, error) {
	ps := o.pebble
	if ps.perKG[kg-o.kgs.Start] == 0 { // nothing to read or delete
		ps.backend[kg-o.kgs.Start] = BackendHeap
		return 0, nil
	}
	// One pass, straight into the heap structures: an entry that does not
	// decode means corrupt state, which fails the job (it restores from a
	// checkpoint), so there is no half-moved group to protect. The
	// accumulators come from one slab per group.
	slab := make([]windowAcc, ps.perKG[kg-o.kgs.Start])
	n := 0
	alloc := func() *windowAcc {
		if n >= len(slab) {
			return newWindowAcc(len(o.aggs))
		}
		acc := &slab[n]
		if na := len(o.aggs); na <= len(acc.inline) {
			acc.slots = acc.inline[:na:na]
		} else {
			acc.slots = make([]aggSlot, na)
		}
		return acc
	}
	err := o.scanPebbleGroup(kg, alloc, func(key []byte, w window, acc *windowAcc) error {
		if p := o.panes[w]; p != nil && p.pebbleKGs != nil {
			if p.pebbleKGs[int32(kg)]--; p.pebbleKGs[int32(kg)] <= 0 {
				delete(p.pebbleKGs, int32(kg))
			}
		}
		// The key aliases the iterator's buffer only for the call:
		// keyWindowAcc copies it when it makes a new key state.
		k := unsafe.String(unsafe.SliceData(key), len(key))
		if _, _, err := o.keyWindowAcc(kg, k, state.KeyHash(k), w, acc); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return 0, err
	}
	// scanPebbleGroup flushed the write buffer, so deleting in the store
	// leaves nothing of the group behind to come back.
	lo, hi := state.KeyGroupBounds(ps.id, kg)
	if err := ps.db.DB().DeleteRange(lo, hi, pebble.NoSync); err != nil {
		return 0, fmt.Errorf("flow: pebble state: %w", err)
	}
	ps.backend[kg-o.kgs.Start] = BackendHeap
	ps.entries -= n
	ps.perKG[kg-o.kgs.Start] = 0
	return n, nil
}

// PebbleEntries is the number of (key, window) states on Pebble.
func (o *WindowOperator) PebbleEntries() int {
	if o.pebble == nil {
		return 0
	}
	return o.pebble.entries
}
