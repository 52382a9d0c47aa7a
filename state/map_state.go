package state

import (
	"bytes"
	"errors"
	"fmt"
)

// MapState holds a map from user keys of type UK to values of type UV per
// (key group, namespace, key). With a TTL, each user key's entry expires
// on its own, TTL after its last write.
//
// On the heap, key group i maps the (namespace, key) part of the entry key
// to a Go map of typed entries; on Pebble, every user key is a Pebble key
// of its own (see entrykey.go), so reading or writing one user key never
// touches the rest of the map.
type MapState[UK comparable, UV any] struct {
	stateBase
	keySer Serializer[UK]
	valSer Serializer[UV]
	heap   []map[string]map[UK]mapCell[UV] // by key group index; nil when empty
}

type mapCell[UV any] struct {
	val UV
	ts  int64
}

// NewMapState registers a map state named name with st.
func NewMapState[UK comparable, UV any](st *Store, name string, keySer Serializer[UK], valSer Serializer[UV], opts StateOptions) (*MapState[UK, UV], error) {
	if keySer == nil || valSer == nil {
		return nil, errNilSerializer(name)
	}
	var s *MapState[UK, UV]
	err := st.register(name, kindMap, opts, func(b stateBase) keyedState {
		s = &MapState[UK, UV]{stateBase: b, keySer: keySer, valSer: valSer, heap: make([]map[string]map[UK]mapCell[UV], st.r.Len())}
		return s
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Get returns the value of user key uk in the map at (kg, ns, key) and
// whether there is one.
func (s *MapState[UK, UV]) Get(kg int, ns []byte, key string, uk UK) (uv UV, ok bool, err error) {
	i, err := s.st.index(kg)
	if err != nil {
		return uv, false, err
	}
	now := s.now()
	if s.st.route[i] == Heap {
		k := appendMapPrefix(s.st.key[:0], ns, key)
		s.st.key = k
		inner := s.heap[i][string(k)]
		c, found := inner[uk]
		if !found {
			return uv, false, nil
		}
		if !s.live(c.ts, now) {
			s.deleteHeap(i, k, inner, uk)
			return uv, false, nil
		}
		return c.val, true, nil
	}
	k := s.keySer.Append(appendMapPrefix(s.pebbleKey(kg), ns, key), uk)
	s.st.key = k
	w, err := s.st.pebble.load(i, k)
	if err != nil {
		return uv, false, s.errorf("read", kg, err)
	}
	enc, ok, err := s.readable(w, now)
	if err != nil {
		return uv, false, s.errorf("read", kg, err)
	}
	if !ok {
		return uv, false, nil
	}
	if uv, err = s.valSer.Decode(enc); err != nil {
		return uv, false, s.errorf("decode", kg, err)
	}
	return uv, true, nil
}

// Put sets user key uk to uv in the map at (kg, ns, key).
func (s *MapState[UK, UV]) Put(kg int, ns []byte, key string, uk UK, uv UV) error {
	i, err := s.st.index(kg)
	if err != nil {
		return err
	}
	now := s.now()
	if s.st.route[i] == Heap {
		k := appendMapPrefix(s.st.key[:0], ns, key)
		s.st.key = k
		g := s.heap[i]
		if g == nil {
			g = map[string]map[UK]mapCell[UV]{}
			s.heap[i] = g
		}
		inner := g[string(k)]
		if inner == nil {
			inner = map[UK]mapCell[UV]{}
			g[string(k)] = inner
		}
		inner[uk] = mapCell[UV]{val: uv, ts: now}
		return nil
	}
	k := s.keySer.Append(appendMapPrefix(s.pebbleKey(kg), ns, key), uk)
	s.st.key = k
	w, err := s.st.pebble.slot(i, k)
	if err != nil {
		return s.errorf("write", kg, err)
	}
	s.st.pebble.set(i, w, s.valSer.Append(s.appendStoredHeader(w.val()[:0], now), uv))
	return nil
}

// Remove deletes user key uk from the map at (kg, ns, key).
func (s *MapState[UK, UV]) Remove(kg int, ns []byte, key string, uk UK) error {
	i, err := s.st.index(kg)
	if err != nil {
		return err
	}
	if s.st.route[i] == Heap {
		k := appendMapPrefix(s.st.key[:0], ns, key)
		s.st.key = k
		if inner := s.heap[i][string(k)]; inner != nil {
			s.deleteHeap(i, k, inner, uk)
		}
		return nil
	}
	k := s.keySer.Append(appendMapPrefix(s.pebbleKey(kg), ns, key), uk)
	s.st.key = k
	w, err := s.st.pebble.slot(i, k)
	if err != nil {
		return s.errorf("delete", kg, err)
	}
	s.st.pebble.remove(w)
	return nil
}

// deleteHeap deletes uk from inner, the heap map at prefix k, and inner
// from key group i when it empties.
func (s *MapState[UK, UV]) deleteHeap(i int, k []byte, inner map[UK]mapCell[UV], uk UK) {
	delete(inner, uk)
	if len(inner) == 0 {
		delete(s.heap[i], string(k))
	}
}

// errStopRange ends a Pebble scan early when fn returns false.
var errStopRange = errors.New("stop")

// Range calls fn for every entry of the map at (kg, ns, key) until fn
// returns false. The order is unspecified (on Pebble it is the order of the
// encoded user keys). fn must not change the state.
func (s *MapState[UK, UV]) Range(kg int, ns []byte, key string, fn func(uk UK, uv UV) bool) error {
	i, err := s.st.index(kg)
	if err != nil {
		return err
	}
	now := s.now()
	if s.st.route[i] == Heap {
		k := appendMapPrefix(s.st.key[:0], ns, key)
		s.st.key = k
		for uk, c := range s.heap[i][string(k)] {
			if s.live(c.ts, now) && !fn(uk, c.val) {
				return nil
			}
		}
		return nil
	}
	p := s.st.pebble
	lo := appendMapPrefix(appendStatePrefix(nil, s.id, kg), ns, key)
	err = p.scanRange(&s.stateBase, i, lo, prefixEnd(lo), now, func(pk []byte, _ int64, enc []byte) error {
		uk, err := s.keySer.Decode(pk[len(lo):])
		if err != nil {
			return err
		}
		uv, err := s.valSer.Decode(enc)
		if err != nil {
			return err
		}
		if !fn(uk, uv) {
			return errStopRange
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopRange) {
		return s.errorf("iterate", kg, err)
	}
	return nil
}

// IsEmpty reports whether the map at (kg, ns, key) has no entries.
func (s *MapState[UK, UV]) IsEmpty(kg int, ns []byte, key string) (bool, error) {
	empty := true
	err := s.Range(kg, ns, key, func(UK, UV) bool { empty = false; return false })
	return empty, err
}

// Clear deletes the map at (kg, ns, key).
func (s *MapState[UK, UV]) Clear(kg int, ns []byte, key string) error {
	i, err := s.st.index(kg)
	if err != nil {
		return err
	}
	if s.st.route[i] == Heap {
		k := appendMapPrefix(s.st.key[:0], ns, key)
		s.st.key = k
		if g := s.heap[i]; g != nil {
			delete(g, string(k))
		}
		return nil
	}
	p := s.st.pebble
	lo := appendMapPrefix(appendStatePrefix(nil, s.id, kg), ns, key)
	// Expired entries are deleted too: scan with the TTL ignored.
	all := s.stateBase
	all.ttl = 0
	var keys [][]byte
	err = p.scanRange(&all, i, lo, prefixEnd(lo), 0, func(pk []byte, _ int64, _ []byte) error {
		keys = append(keys, bytes.Clone(pk))
		return nil
	})
	if err != nil {
		return s.errorf("iterate", kg, err)
	}
	for _, pk := range keys {
		w, err := p.slot(i, pk)
		if err != nil {
			return s.errorf("delete", kg, err)
		}
		p.remove(w)
	}
	return nil
}

func (s *MapState[UK, UV]) heapLen(i int) int {
	n := 0
	for _, inner := range s.heap[i] {
		n += len(inner)
	}
	return n
}

func (s *MapState[UK, UV]) dropHeap(i int) { s.heap[i] = nil }
func (s *MapState[UK, UV]) dropAllHeap()   { clear(s.heap) }

func (s *MapState[UK, UV]) validate(key, val []byte) error {
	_, uk, err := splitMapKey(key)
	if err != nil {
		return err
	}
	if _, err := s.keySer.Decode(uk); err != nil {
		return fmt.Errorf("user key: %w", err)
	}
	_, err = s.valSer.Decode(val)
	return err
}

func (s *MapState[UK, UV]) heapScan(i int, now int64, fn entryFunc) error {
	g := s.heap[i]
	if len(g) == 0 {
		return nil
	}
	srt := &s.st.sorter
	srt.reset()
	for prefix, inner := range g {
		for uk, c := range inner {
			if !s.live(c.ts, now) {
				continue
			}
			off := srt.start(prefix)
			srt.arena = s.keySer.Append(srt.arena, uk)
			klen := len(srt.arena) - off
			srt.arena = s.valSer.Append(srt.arena, c.val)
			srt.end(off, klen, c.ts, 0)
		}
	}
	srt.sort()
	for e := range srt.sorted {
		if err := fn(srt.key(e), e.ts, srt.val(e)); err != nil {
			return err
		}
	}
	return nil
}

func (s *MapState[UK, UV]) heapLoader(i int) heapLoader {
	return &mapLoader[UK, UV]{s: s, i: i, g: map[string]map[UK]mapCell[UV]{}}
}

type mapLoader[UK comparable, UV any] struct {
	s          *MapState[UK, UV]
	i          int
	g          map[string]map[UK]mapCell[UV]
	last       map[UK]mapCell[UV] // the inner map of lastPrefix: entries come sorted
	lastPrefix []byte
}

func (l *mapLoader[UK, UV]) add(key []byte, ts int64, val []byte) error {
	prefix, ukEnc, err := splitMapKey(key)
	if err != nil {
		return err
	}
	uk, err := l.s.keySer.Decode(ukEnc)
	if err != nil {
		return fmt.Errorf("user key: %w", err)
	}
	uv, err := l.s.valSer.Decode(val)
	if err != nil {
		return err
	}
	if l.last == nil || !bytes.Equal(prefix, l.lastPrefix) {
		l.last = l.g[string(prefix)]
		if l.last == nil {
			l.last = map[UK]mapCell[UV]{}
			l.g[string(prefix)] = l.last
		}
		l.lastPrefix = append(l.lastPrefix[:0], prefix...)
	}
	l.last[uk] = mapCell[UV]{val: uv, ts: ts}
	return nil
}

func (l *mapLoader[UK, UV]) install() {
	if len(l.g) == 0 {
		l.g = nil
	}
	l.s.heap[l.i] = l.g
}

// errNilSerializer is the error of a state constructor given no serializer.
func errNilSerializer(name string) error {
	return fmt.Errorf("state: state %q: nil serializer", name)
}

func errNilFunction(name, what string) error {
	return fmt.Errorf("state: state %q: nil %s", name, what)
}
