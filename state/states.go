package state

import (
	"encoding/binary"
	"slices"
)

// cellState is the storage of a state that holds one value of type C per
// (key group, namespace, key): value, list, reducing and aggregating
// states. On the heap, key group i is a map from entry key to a typed cell;
// on Pebble, one key per entry holding the serialized value.
type cellState[C any] struct {
	stateBase
	ser  Serializer[C]
	heap []map[string]heapCell[C] // by key group index; nil when empty
	// spare is the buffers of the last installed loader, for the next one:
	// a migration loads key group after key group, and growing fresh
	// buffers each time would double its garbage.
	spare *cellLoader[C]
}

// heapCell is one heap entry.
type heapCell[C any] struct {
	key string // the map key, kept so that an overwrite reuses it instead of allocating
	val C
	ts  int64 // time of the last write, for TTL
}

func newCellState[C any](b stateBase, ser Serializer[C]) *cellState[C] {
	return &cellState[C]{stateBase: b, ser: ser, heap: make([]map[string]heapCell[C], b.st.r.Len())}
}

func (s *cellState[C]) heapGroup(i int) map[string]heapCell[C] {
	m := s.heap[i]
	if m == nil {
		m = map[string]heapCell[C]{}
		s.heap[i] = m
	}
	return m
}

// get returns the value at (kg, ns, key).
func (s *cellState[C]) get(kg int, ns []byte, key string) (v C, ok bool, err error) {
	i, err := s.st.index(kg)
	if err != nil {
		return v, false, err
	}
	now := s.now()
	if s.st.route[i] == Heap {
		k := appendEntryKey(s.st.key[:0], ns, key)
		s.st.key = k
		c, found := s.heap[i][string(k)]
		if !found {
			return v, false, nil
		}
		if !s.live(c.ts, now) {
			delete(s.heap[i], c.key)
			return v, false, nil
		}
		return c.val, true, nil
	}
	k := appendEntryKey(s.pebbleKey(kg), ns, key)
	s.st.key = k
	w, err := s.st.pebble.load(i, k)
	if err != nil {
		return v, false, s.errorf("read", kg, err)
	}
	enc, ok, err := s.readable(w, now)
	if err != nil {
		return v, false, s.errorf("read", kg, err)
	}
	if !ok {
		return v, false, nil
	}
	if v, err = s.ser.Decode(enc); err != nil {
		return v, false, s.errorf("decode", kg, err)
	}
	return v, true, nil
}

// put sets the value at (kg, ns, key).
func (s *cellState[C]) put(kg int, ns []byte, key string, v C) error {
	i, err := s.st.index(kg)
	if err != nil {
		return err
	}
	now := s.now()
	if s.st.route[i] == Heap {
		k := appendEntryKey(s.st.key[:0], ns, key)
		s.st.key = k
		m := s.heapGroup(i)
		c, found := m[string(k)]
		if !found {
			c.key = string(k)
		}
		c.val, c.ts = v, now
		m[c.key] = c
		return nil
	}
	k := appendEntryKey(s.pebbleKey(kg), ns, key)
	s.st.key = k
	w, err := s.st.pebble.slot(i, k)
	if err != nil {
		return s.errorf("write", kg, err)
	}
	s.st.pebble.set(i, w, s.ser.Append(s.appendStoredHeader(w.val()[:0], now), v))
	return nil
}

// modify replaces the value at (kg, ns, key) with fn's result; ok tells fn
// whether there is a value.
func (s *cellState[C]) modify(kg int, ns []byte, key string, fn func(old C, ok bool) C) error {
	i, err := s.st.index(kg)
	if err != nil {
		return err
	}
	now := s.now()
	if s.st.route[i] == Heap {
		k := appendEntryKey(s.st.key[:0], ns, key)
		s.st.key = k
		m := s.heapGroup(i)
		c, found := m[string(k)]
		ok := found && s.live(c.ts, now)
		if !ok {
			var zero C
			c.val = zero
		}
		if !found {
			c.key = string(k)
		}
		c.val, c.ts = fn(c.val, ok), now
		m[c.key] = c
		return nil
	}
	k := appendEntryKey(s.pebbleKey(kg), ns, key)
	s.st.key = k
	w, err := s.st.pebble.load(i, k)
	if err != nil {
		return s.errorf("read", kg, err)
	}
	enc, ok, err := s.readable(w, now)
	if err != nil {
		return s.errorf("read", kg, err)
	}
	var old C
	if ok {
		if old, err = s.ser.Decode(enc); err != nil {
			return s.errorf("decode", kg, err)
		}
	}
	s.st.pebble.set(i, w, s.ser.Append(s.appendStoredHeader(w.val()[:0], now), fn(old, ok)))
	return nil
}

// remove deletes the value at (kg, ns, key).
func (s *cellState[C]) remove(kg int, ns []byte, key string) error {
	i, err := s.st.index(kg)
	if err != nil {
		return err
	}
	if s.st.route[i] == Heap {
		k := appendEntryKey(s.st.key[:0], ns, key)
		s.st.key = k
		if m := s.heap[i]; m != nil {
			delete(m, string(k))
		}
		return nil
	}
	k := appendEntryKey(s.pebbleKey(kg), ns, key)
	s.st.key = k
	w, err := s.st.pebble.slot(i, k)
	if err != nil {
		return s.errorf("delete", kg, err)
	}
	s.st.pebble.remove(w)
	return nil
}

func (s *cellState[C]) heapLen(i int) int { return len(s.heap[i]) }
func (s *cellState[C]) dropHeap(i int)    { s.heap[i] = nil }
func (s *cellState[C]) dropAllHeap()      { clear(s.heap) }

func (s *cellState[C]) validate(key, val []byte) error {
	if err := checkEntryKey(key); err != nil {
		return err
	}
	_, err := s.ser.Decode(val)
	return err
}

func (s *cellState[C]) heapScan(i int, now int64, fn entryFunc) error {
	m := s.heap[i]
	if len(m) == 0 {
		return nil
	}
	srt := &s.st.sorter
	srt.reset()
	for k, c := range m {
		if s.live(c.ts, now) {
			off := srt.start(k)
			srt.arena = s.ser.Append(srt.arena, c.val)
			srt.end(off, len(k), c.ts, 0)
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

func (s *cellState[C]) heapLoader(i int) heapLoader {
	l := s.spare
	if l == nil {
		return &cellLoader[C]{s: s, i: i}
	}
	s.spare = nil // a loader owns its buffers until install
	l.i = i
	return l
}

// maxSpareEntries bounds the buffers a state keeps for its next loader, so
// that one huge key group does not pin its buffers for the store's life.
const maxSpareEntries = 1 << 16

// cellLoader collects a key group's entries and builds its map at install,
// sized once. The keys share one string: one allocation instead of one per
// key, and a later scan of the map reads them from one place. (The string
// lives as long as any of its keys is in the map.)
type cellLoader[C any] struct {
	s    *cellState[C]
	i    int
	keys []byte
	ends []int32 // ends[j] is where key j ends in keys
	vals []C
	ts   []int64
}

func (l *cellLoader[C]) add(key []byte, ts int64, val []byte) error {
	if err := checkEntryKey(key); err != nil {
		return err
	}
	v, err := l.s.ser.Decode(val)
	if err != nil {
		return err
	}
	l.keys = append(l.keys, key...)
	l.ends = append(l.ends, int32(len(l.keys)))
	l.vals = append(l.vals, v)
	l.ts = append(l.ts, ts)
	return nil
}

func (l *cellLoader[C]) install() {
	if len(l.vals) == 0 {
		l.s.heap[l.i] = nil
		return
	}
	all := string(l.keys)
	m := make(map[string]heapCell[C], len(l.vals))
	start := int32(0)
	for j, v := range l.vals {
		k := all[start:l.ends[j]]
		m[k] = heapCell[C]{key: k, val: v, ts: l.ts[j]}
		start = l.ends[j]
	}
	l.s.heap[l.i] = m
	if cap(l.vals) <= maxSpareEntries {
		clear(l.vals) // values may hold pointers
		l.keys, l.ends, l.vals, l.ts = l.keys[:0], l.ends[:0], l.vals[:0], l.ts[:0]
		l.s.spare = l
	}
}

// ValueState holds one value per (key group, namespace, key).
type ValueState[V any] struct {
	c *cellState[V]
}

// NewValueState registers a value state named name with st.
func NewValueState[V any](st *Store, name string, ser Serializer[V], opts StateOptions) (*ValueState[V], error) {
	if ser == nil {
		return nil, errNilSerializer(name)
	}
	s := &ValueState[V]{}
	err := st.register(name, kindValue, opts, func(b stateBase) keyedState {
		s.c = newCellState(b, ser)
		return s.c
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Value returns the value at (kg, ns, key) and whether there is one.
func (s *ValueState[V]) Value(kg int, ns []byte, key string) (V, bool, error) {
	return s.c.get(kg, ns, key)
}

// Update sets the value at (kg, ns, key).
func (s *ValueState[V]) Update(kg int, ns []byte, key string, v V) error {
	return s.c.put(kg, ns, key, v)
}

// Clear deletes the value at (kg, ns, key).
func (s *ValueState[V]) Clear(kg int, ns []byte, key string) error {
	return s.c.remove(kg, ns, key)
}

// ReducingState holds one value per (key group, namespace, key) that Add
// folds new values into with a reduce function.
type ReducingState[V any] struct {
	c      *cellState[V]
	reduce func(acc, v V) V
}

// NewReducingState registers a reducing state named name with st. reduce
// combines the current value with an added one.
func NewReducingState[V any](st *Store, name string, reduce func(acc, v V) V, ser Serializer[V], opts StateOptions) (*ReducingState[V], error) {
	if ser == nil {
		return nil, errNilSerializer(name)
	}
	if reduce == nil {
		return nil, errNilFunction(name, "reduce function")
	}
	s := &ReducingState[V]{reduce: reduce}
	err := st.register(name, kindReducing, opts, func(b stateBase) keyedState {
		s.c = newCellState(b, ser)
		return s.c
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Get returns the value at (kg, ns, key) and whether there is one.
func (s *ReducingState[V]) Get(kg int, ns []byte, key string) (V, bool, error) {
	return s.c.get(kg, ns, key)
}

// Add sets the value at (kg, ns, key) to reduce(value, v), or to v if
// there is no value.
func (s *ReducingState[V]) Add(kg int, ns []byte, key string, v V) error {
	return s.c.modify(kg, ns, key, func(acc V, ok bool) V {
		if !ok {
			return v
		}
		return s.reduce(acc, v)
	})
}

// Clear deletes the value at (kg, ns, key).
func (s *ReducingState[V]) Clear(kg int, ns []byte, key string) error {
	return s.c.remove(kg, ns, key)
}

// AggregateFunction aggregates inputs of type IN into an accumulator of
// type ACC, and computes a result of type OUT from it.
type AggregateFunction[IN, ACC, OUT any] interface {
	CreateAccumulator() ACC
	Add(acc ACC, in IN) ACC
	Result(acc ACC) OUT
}

// AggregatingState holds one accumulator per (key group, namespace, key).
type AggregatingState[IN, ACC, OUT any] struct {
	c   *cellState[ACC]
	agg AggregateFunction[IN, ACC, OUT]
}

// NewAggregatingState registers an aggregating state named name with st;
// accSer serializes the accumulators.
func NewAggregatingState[IN, ACC, OUT any](st *Store, name string, agg AggregateFunction[IN, ACC, OUT], accSer Serializer[ACC], opts StateOptions) (*AggregatingState[IN, ACC, OUT], error) {
	if accSer == nil {
		return nil, errNilSerializer(name)
	}
	if agg == nil {
		return nil, errNilFunction(name, "aggregate function")
	}
	s := &AggregatingState[IN, ACC, OUT]{agg: agg}
	err := st.register(name, kindAggregating, opts, func(b stateBase) keyedState {
		s.c = newCellState(b, accSer)
		return s.c
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Get returns the result of the accumulator at (kg, ns, key) and whether
// there is one.
func (s *AggregatingState[IN, ACC, OUT]) Get(kg int, ns []byte, key string) (OUT, bool, error) {
	acc, ok, err := s.c.get(kg, ns, key)
	if !ok || err != nil {
		var zero OUT
		return zero, false, err
	}
	return s.agg.Result(acc), true, nil
}

// Add adds in to the accumulator at (kg, ns, key), creating it if there is
// none.
func (s *AggregatingState[IN, ACC, OUT]) Add(kg int, ns []byte, key string, in IN) error {
	return s.c.modify(kg, ns, key, func(acc ACC, ok bool) ACC {
		if !ok {
			acc = s.agg.CreateAccumulator()
		}
		return s.agg.Add(acc, in)
	})
}

// Clear deletes the accumulator at (kg, ns, key).
func (s *AggregatingState[IN, ACC, OUT]) Clear(kg int, ns []byte, key string) error {
	return s.c.remove(kg, ns, key)
}

// ListState holds a list per (key group, namespace, key). With a TTL, a
// list expires as a whole, TTL after its last change.
type ListState[V any] struct {
	c    *cellState[[]V]
	elem Serializer[V]
}

// NewListState registers a list state named name with st; ser serializes
// the elements.
func NewListState[V any](st *Store, name string, ser Serializer[V], opts StateOptions) (*ListState[V], error) {
	if ser == nil {
		return nil, errNilSerializer(name)
	}
	s := &ListState[V]{elem: ser}
	err := st.register(name, kindList, opts, func(b stateBase) keyedState {
		s.c = newCellState[[]V](b, listSerializer[V]{elem: ser})
		return s.c
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Get returns the list at (kg, ns, key), nil if there is none. The caller
// owns the slice.
func (s *ListState[V]) Get(kg int, ns []byte, key string) ([]V, error) {
	vs, ok, err := s.c.get(kg, ns, key)
	if !ok || err != nil {
		return nil, err
	}
	if s.c.st.route[kg-s.c.st.r.Start] == Heap {
		vs = slices.Clone(vs) // the heap's own slice is appended to in place
	}
	return vs, nil
}

// Add appends v to the list at (kg, ns, key).
func (s *ListState[V]) Add(kg int, ns []byte, key string, v V) error {
	return s.addAll(kg, ns, key, v, nil)
}

// AddAll appends vs to the list at (kg, ns, key).
func (s *ListState[V]) AddAll(kg int, ns []byte, key string, vs []V) error {
	if len(vs) == 0 {
		return nil
	}
	return s.addAll(kg, ns, key, vs[0], vs[1:])
}

// addAll appends v and then more. On Pebble it appends their encodings to
// the stored list without decoding it.
func (s *ListState[V]) addAll(kg int, ns []byte, key string, v V, more []V) error {
	c := s.c
	i, err := c.st.index(kg)
	if err != nil {
		return err
	}
	if c.st.route[i] == Heap {
		return c.modify(kg, ns, key, func(old []V, _ bool) []V {
			return append(append(old, v), more...)
		})
	}
	now := c.now()
	k := appendEntryKey(c.pebbleKey(kg), ns, key)
	c.st.key = k
	w, err := c.st.pebble.load(i, k)
	if err != nil {
		return c.errorf("read", kg, err)
	}
	buf := w.val()
	if _, ok, err := c.readable(w, now); err != nil {
		return c.errorf("read", kg, err)
	} else if !ok {
		buf = c.appendStoredHeader(buf[:0], now)
	} else if c.ttl != 0 {
		binary.BigEndian.PutUint64(buf, uint64(now))
	}
	buf = appendLenPrefixed(buf, s.elem, v)
	for _, v := range more {
		buf = appendLenPrefixed(buf, s.elem, v)
	}
	c.st.pebble.set(i, w, buf)
	return nil
}

// Update replaces the list at (kg, ns, key) with a copy of vs; an empty vs
// deletes it.
func (s *ListState[V]) Update(kg int, ns []byte, key string, vs []V) error {
	if len(vs) == 0 {
		return s.c.remove(kg, ns, key)
	}
	return s.c.put(kg, ns, key, slices.Clone(vs))
}

// Clear deletes the list at (kg, ns, key).
func (s *ListState[V]) Clear(kg int, ns []byte, key string) error {
	return s.c.remove(kg, ns, key)
}
