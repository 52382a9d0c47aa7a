package flow

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/tidewatch/tidewatch/state"
)

// Snapshot format of one key group of a window operator, version 1. All
// integers are varints (encoding/binary), floats 8 bytes little-endian.
//
//	byte     version (1)
//	byte     window kind: 1 tumbling, 2 sliding, 3 session
//	uvarint  number of aggregates, then per aggregate:
//	           byte function code, byte 1 if over an int field
//	uvarint  key group
//	uvarint  number of entries, then per entry, sorted by (key, start, end):
//	           uvarint len + key bytes
//	           varint start, varint end
//	           byte flags: 1 = fired
//	           per aggregate:
//	             count:         varint n
//	             sum, min, max: varint n, then (if int) varint value or (if float) float
//	             avg:           varint n, float sum
//	             countDistinct: uvarint size, then sorted values as uvarint len + bytes
//
// An empty key group is written as nothing at all. The form is canonical
// (same state, same bytes) and independent of the
// backend and of the operator's key-group range; timers are not stored but
// rebuilt from the entries and their fired flags. Merged session windows are
// entries like any other; a key's session set is rebuilt from them.
const windowSnapshotVersion = 1

// Errors of RestoreKeyGroup.
var (
	ErrCorruptSnapshot      = errors.New("flow: corrupt window snapshot")
	ErrIncompatibleSnapshot = errors.New("flow: window snapshot does not fit this operator")
)

const entryFired = 1

type snapEntry struct {
	key string
	w   window
	acc *windowAcc
}

// SnapshotKeyGroup writes the canonical state of key group kg.
func (o *WindowOperator) SnapshotKeyGroup(kg int, w io.Writer) error {
	if !o.kgs.Contains(kg) {
		return fmt.Errorf("%w: key group %d, range %v", ErrKeyGroup, kg, o.kgs)
	}
	var entries []snapEntry
	if o.accs != nil {
		o.accs.Each(kg, func(e stateEntry, acc *windowAcc) bool {
			entries = append(entries, snapEntry{key: e.Key, w: e.NS, acc: acc})
			return true
		})
	} else if o.onPebble(kg) {
		err := o.eachPebbleEntry(kg, func(key string, w window, acc *windowAcc) error {
			entries = append(entries, snapEntry{key: key, w: w, acc: acc})
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		o.eachPaneEntry(kg, func(key string, w window, acc *windowAcc) {
			entries = append(entries, snapEntry{key: key, w: w, acc: acc})
		})
	}
	slices.SortFunc(entries, func(a, b snapEntry) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		if c := cmp.Compare(a.w.Start, b.w.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.w.End, b.w.End)
	})
	if len(entries) == 0 {
		return nil // an empty group writes nothing, and the engine stores nothing
	}
	b := []byte{windowSnapshotVersion, byte(o.kind)}
	b = binary.AppendUvarint(b, uint64(len(o.aggs)))
	for _, a := range o.aggs {
		b = append(b, byte(a.fn), boolByte(a.isInt))
	}
	b = binary.AppendUvarint(b, uint64(kg))
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = appendString(b, e.key)
		b = binary.AppendVarint(b, e.w.Start)
		b = binary.AppendVarint(b, e.w.End)
		b = o.appendAcc(b, e.acc)
		// Bound the buffer for large groups.
		if len(b) >= 1<<16 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	_, err := w.Write(b)
	return err
}

// appendAcc appends an accumulator's flags and aggregate slots, the part
// of a snapshot entry after its key and window; Pebble values are the same
// bytes.
func (o *WindowOperator) appendAcc(b []byte, acc *windowAcc) []byte {
	var flags byte
	if acc.fired {
		flags |= entryFired
	}
	b = append(b, flags)
	for i := range o.aggs {
		a, s := &o.aggs[i], &acc.slots[i]
		switch a.fn {
		case aggCount:
			b = binary.AppendVarint(b, s.n)
		case aggSum, aggMin, aggMax:
			b = binary.AppendVarint(b, s.n)
			if a.isInt {
				b = binary.AppendVarint(b, s.i)
			} else {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.f))
			}
		case aggAvg:
			b = binary.AppendVarint(b, s.n)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.f))
		case aggCountDistinct:
			keys := make([]string, 0, len(s.set))
			for k := range s.set {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			b = binary.AppendUvarint(b, uint64(len(keys)))
			for _, k := range keys {
				b = appendString(b, k)
			}
		}
	}
	return b
}

// decodeAcc reads what appendAcc wrote into acc.
func (o *WindowOperator) decodeAcc(d *decoder, acc *windowAcc) {
	flags := d.byte()
	if d.err != nil {
		return
	}
	if flags&^entryFired != 0 {
		d.fail(fmt.Sprintf("unknown flags %#x", flags))
		return
	}
	acc.fired = flags&entryFired != 0
	for j := range o.aggs {
		o.decodeSlot(d, &o.aggs[j], &acc.slots[j])
	}
}

// RestoreKeyGroup loads a snapshot of key group kg, which must be empty in
// this operator, and rebuilds its timers and session sets. The snapshot
// may come from an operator with another key-group range but must have the
// same window kind and aggregates. Nothing is changed if it fails.
func (o *WindowOperator) RestoreKeyGroup(kg int, r io.Reader) error {
	if !o.kgs.Contains(kg) {
		return fmt.Errorf("%w: key group %d, range %v", ErrKeyGroup, kg, o.kgs)
	}
	empty := true
	if o.accs != nil {
		o.accs.Each(kg, func(stateEntry, *windowAcc) bool { empty = false; return false })
	} else if o.onPebble(kg) {
		errFound := errors.New("found")
		if err := o.eachPebbleEntry(kg, func(string, window, *windowAcc) error { return errFound }); err != nil {
			empty = false
			if !errors.Is(err, errFound) {
				return err
			}
		}
	} else {
		o.eachPaneEntry(kg, func(string, window, *windowAcc) { empty = false })
	}
	if !empty {
		return fmt.Errorf("flow: restore key group %d: it already has state", kg)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("flow: restore key group %d: %w", kg, err)
	}
	if len(data) == 0 {
		return nil // the snapshot of an empty group
	}
	entries, err := o.decodeKeyGroup(kg, data)
	if err != nil {
		return fmt.Errorf("flow: restore key group %d: %w", kg, err)
	}
	for _, e := range entries {
		if !e.acc.fired {
			o.stats.OpenWindows++
		}
		if o.onPebble(kg) {
			if err := o.putPebbleEntry(kg, e.key, e.w, e.acc); err != nil {
				return err
			}
			continue
		}
		if o.panes != nil {
			if _, _, err := o.keyWindowAcc(kg, e.key, state.KeyHash(e.key), e.w, e.acc); err != nil {
				return err // not reached: the hash is computed here
			}
			if p := o.paneFor(e.w); !e.acc.fired {
				o.queueFire(p)
			} else {
				o.queueCleanup(p) // fired with allowed lateness, restored without
			}
			continue
		}
		o.accs.Put(kg, e.w, e.key, e.acc)
		// A fire timer only for windows not fired yet: fired ones must not
		// emit again on the next watermark.
		o.registerTimers(kg, e.key, e.w, !e.acc.fired)
		set, ok := o.sessions.Get(kg, struct{}{}, e.key)
		if !ok {
			set = &sessionSet{}
			o.sessions.Put(kg, struct{}{}, e.key, set)
		}
		set.ws = append(set.ws, e.w)
	}
	if o.onPebble(kg) {
		return o.pebble.flush()
	}
	return nil
}

// decodeKeyGroup parses and validates a snapshot without touching state.
// Every count is checked against the bytes left before anything is
// allocated, so arbitrary input cannot make it allocate without bound.
func (o *WindowOperator) decodeKeyGroup(kg int, data []byte) ([]snapEntry, error) {
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != windowSnapshotVersion {
		return nil, fmt.Errorf("%w: version %d (want %d)", ErrIncompatibleSnapshot, v, windowSnapshotVersion)
	}
	if k := d.byte(); d.err == nil && windowKind(k) != o.kind {
		return nil, fmt.Errorf("%w: window kind %d, operator has %d", ErrIncompatibleSnapshot, k, o.kind)
	}
	n := d.count(2)
	if d.err == nil && n != len(o.aggs) {
		return nil, fmt.Errorf("%w: %d aggregates, operator has %d", ErrIncompatibleSnapshot, n, len(o.aggs))
	}
	for i := 0; i < n && d.err == nil; i++ {
		fn, isInt := aggFunc(d.byte()), d.byte()
		if d.err == nil && (fn != o.aggs[i].fn || isInt != boolByte(o.aggs[i].isInt)) {
			return nil, fmt.Errorf("%w: aggregate %d differs (function %d, int %d)", ErrIncompatibleSnapshot, i, fn, isInt)
		}
	}
	if g := d.uvarint(); d.err == nil && g != uint64(kg) {
		return nil, fmt.Errorf("%w: snapshot of key group %d, restoring %d", ErrIncompatibleSnapshot, g, kg)
	}
	// An entry takes at least: key length, start, end, flags, and a byte
	// per aggregate.
	n = d.count(4 + len(o.aggs))
	var entries []snapEntry
	if d.err == nil {
		entries = make([]snapEntry, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		e := snapEntry{key: d.string()}
		e.w.Start, e.w.End = d.varint(), d.varint()
		if d.err != nil {
			break
		}
		if err := o.checkWindow(e.w); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrCorruptSnapshot, i, err)
		}
		if i > 0 {
			p := entries[i-1]
			if c := strings.Compare(p.key, e.key); c > 0 || c == 0 && (p.w.Start > e.w.Start || p.w.Start == e.w.Start && p.w.End >= e.w.End) {
				return nil, fmt.Errorf("%w: entry %d out of order or repeated", ErrCorruptSnapshot, i)
			}
			// Sessions of one key are disjoint and sorted by start here.
			if o.kind == kindSession && p.key == e.key && p.w.intersects(e.w) {
				return nil, fmt.Errorf("%w: entry %d: sessions %v and %v of one key intersect", ErrCorruptSnapshot, i, p.w, e.w)
			}
		}
		e.acc = newWindowAcc(len(o.aggs))
		o.decodeAcc(&d, e.acc)
		entries = append(entries, e)
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, d.err)
	}
	if len(d.b) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last entry", ErrCorruptSnapshot, len(d.b))
	}
	return entries, nil
}

func (o *WindowOperator) decodeSlot(d *decoder, a *agg, s *aggSlot) {
	switch a.fn {
	case aggCount:
		s.n = d.varint()
	case aggSum, aggMin, aggMax:
		s.n = d.varint()
		if a.isInt {
			s.i = d.varint()
		} else {
			s.f = d.float()
		}
	case aggAvg:
		s.n = d.varint()
		s.f = d.float()
	case aggCountDistinct:
		n := d.count(1)
		if n == 0 {
			break
		}
		s.set = make(map[string]struct{}, n)
		for range n {
			s.set[d.string()] = struct{}{}
		}
		if d.err == nil && len(s.set) != n {
			d.fail("repeated countDistinct value")
		}
		s.n = int64(len(s.set))
	}
	if d.err == nil && s.n < 0 {
		d.fail("negative count")
	}
}

// checkWindow rejects windows this operator could not have made.
func (o *WindowOperator) checkWindow(w window) error {
	if w.End <= w.Start {
		return fmt.Errorf("empty window %v", w)
	}
	switch o.kind {
	case kindTumbling:
		if w.End-w.Start != o.cfg.Size || windowStart(w.Start, o.cfg.Size) != w.Start {
			return fmt.Errorf("window %v is not a tumbling window of %dms", w, o.cfg.Size)
		}
	case kindSliding:
		if w.End-w.Start != o.cfg.Size || windowStart(w.Start, o.cfg.Slide) != w.Start {
			return fmt.Errorf("window %v is not a sliding window of %dms every %dms", w, o.cfg.Size, o.cfg.Slide)
		}
	case kindSession:
		if w.End-w.Start < o.cfg.Gap {
			return fmt.Errorf("session %v is shorter than the gap %dms", w, o.cfg.Gap)
		}
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// decoder reads a snapshot; after the first error every read returns zero
// and the error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad or truncated varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad or truncated varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of items each at least minBytes long, rejecting one
// that the remaining input cannot hold.
func (d *decoder) count(minBytes int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)/minBytes) {
		d.fail(fmt.Sprintf("count %d exceeds the %d bytes left", v, len(d.b)))
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.count(1)
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated float")
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return f
}
