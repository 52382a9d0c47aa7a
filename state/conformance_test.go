package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The conformance suite: every test runs against every target, a store on
// the heap, one on Pebble, and stores whose key groups move between the
// backends whenever the test calls mid.
var targets = []struct {
	name    string
	backend BackendKind
	mid     func(h *harness) // what happens between a test's phases
}{
	{"heap", Heap, func(h *harness) {}},
	{"pebble", Pebble, func(h *harness) {
		if h.mids%2 == 1 { // every other phase reads Pebble itself, not the write buffer
			h.must(h.st.Flush())
		}
	}},
	{"migrating-from-heap", Heap, func(h *harness) { h.flip(func(int) bool { return true }) }},
	{"migrating-from-pebble", Pebble, func(h *harness) { h.flip(func(int) bool { return true }) }},
	{"mixed", Heap, func(h *harness) { h.flip(func(kg int) bool { return kg%2 == 0 }) }},
}

var conformance = []struct {
	name string
	run  func(t *testing.T, h *harness)
}{
	{"Value", testValue},
	{"Map", testMap},
	{"List", testList},
	{"Reducing", testReducing},
	{"Aggregating", testAggregating},
	{"TTL", testTTL},
	{"SnapshotRestore", testSnapshotRestore},
	{"RestoreReplaces", testRestoreReplaces},
	{"KeyGroupOutOfRange", testKeyGroupOutOfRange},
}

func TestConformance(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) {
					h := newHarness(t, tg.backend)
					h.midFn = tg.mid
					c.run(t, h)
				})
			}
		})
	}
}

var testRange = KeyGroupRange{Start: 32, End: 63}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

type harness struct {
	t     testing.TB
	db    *PebbleDB
	ids   *StateIDAllocator
	clock *fakeClock
	st    *Store
	s     *testStates
	midFn func(h *harness)
	mids  int
}

func newHarness(t testing.TB, b BackendKind) *harness {
	t.Helper()
	db, err := OpenPebble(filepath.Join(t.TempDir(), "pebble"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &harness{t: t, db: db, ids: &StateIDAllocator{}, clock: &fakeClock{now: time.UnixMilli(1_700_000_000_000)}}
	h.st, h.s = h.newStore(b)
	return h
}

// newStore returns another store on the harness's DB and clock with the
// same states.
func (h *harness) newStore(b BackendKind) (*Store, *testStates) {
	h.t.Helper()
	st, err := NewStore(StoreOptions{Range: testRange, Backend: b, DB: h.db, StateIDs: h.ids, Clock: h.clock.Now})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		if err := st.Close(); err != nil {
			h.t.Error(err)
		}
	})
	return st, registerTestStates(h.t, st)
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// mid marks the end of a phase of a test: the target may flush or move key
// groups now.
func (h *harness) mid() {
	h.t.Helper()
	h.mids++
	h.midFn(h)
}

// flip moves the key groups that sel picks to the other backend, in small
// steps.
func (h *harness) flip(sel func(kg int) bool) {
	h.t.Helper()
	var toHeap, toPebble []int
	for kg := testRange.Start; kg <= testRange.End; kg++ {
		if !sel(kg) {
			continue
		}
		if b, _ := h.st.Backend(kg); b == Heap {
			toPebble = append(toPebble, kg)
		} else {
			toHeap = append(toHeap, kg)
		}
	}
	for _, m := range []struct {
		kgs []int
		to  BackendKind
	}{{toPebble, Pebble}, {toHeap, Heap}} {
		st, err := h.st.Migrate(m.kgs, m.to, MigrationOptions{StepEntries: 3}, nil)
		h.must(err)
		if st.KeyGroups+st.Skipped != len(m.kgs) {
			h.t.Fatalf("migration to %s moved %d and skipped %d of %d key groups", m.to, st.KeyGroups, st.Skipped, len(m.kgs))
		}
	}
}

// testStates are the states of the suite, one of each kind and two with a TTL.
type testStates struct {
	value    *ValueState[int64]
	bytes    *ValueState[[]byte]
	m        *MapState[string, float64]
	list     *ListState[string]
	sum      *ReducingState[int64]
	avg      *AggregatingState[float64, avgAcc, float64]
	ttlValue *ValueState[string]
	ttlMap   *MapState[int64, int64]
	ttlList  *ListState[int64]
}

func registerTestStates(t testing.TB, st *Store) *testStates {
	t.Helper()
	var s testStates
	var err error
	check := func(e error) {
		t.Helper()
		if e != nil && err == nil {
			err = e
		}
	}
	ttl := StateOptions{TTL: time.Minute}
	var e error
	s.value, e = NewValueState(st, "value", Int64Serializer{}, StateOptions{})
	check(e)
	s.bytes, e = NewValueState(st, "bytes", BytesSerializer{}, StateOptions{})
	check(e)
	s.m, e = NewMapState(st, "map", StringSerializer{}, Float64Serializer{}, StateOptions{})
	check(e)
	s.list, e = NewListState(st, "list", StringSerializer{}, StateOptions{})
	check(e)
	s.sum, e = NewReducingState(st, "sum", func(a, b int64) int64 { return a + b }, Int64Serializer{}, StateOptions{})
	check(e)
	s.avg, e = NewAggregatingState(st, "avg", avgFunc{}, avgSerializer{}, StateOptions{})
	check(e)
	s.ttlValue, e = NewValueState(st, "ttl-value", StringSerializer{}, ttl)
	check(e)
	s.ttlMap, e = NewMapState(st, "ttl-map", Int64Serializer{}, Int64Serializer{}, ttl)
	check(e)
	s.ttlList, e = NewListState(st, "ttl-list", Int64Serializer{}, ttl)
	check(e)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

// avgAcc is the accumulator of an average: a user-defined type with its
// own serializer.
type avgAcc struct {
	Sum float64
	N   int64
}

type avgFunc struct{}

func (avgFunc) CreateAccumulator() avgAcc         { return avgAcc{} }
func (avgFunc) Add(acc avgAcc, in float64) avgAcc { return avgAcc{acc.Sum + in, acc.N + 1} }
func (avgFunc) Result(acc avgAcc) float64         { return acc.Sum / float64(acc.N) }

// avgSerializer encodes an avgAcc as its sum (8 bytes) and count (varint).
type avgSerializer struct{}

func (avgSerializer) Append(dst []byte, a avgAcc) []byte {
	return binary.AppendVarint(Float64Serializer{}.Append(dst, a.Sum), a.N)
}

func (avgSerializer) Decode(src []byte) (avgAcc, error) {
	if len(src) < 9 {
		return avgAcc{}, fmt.Errorf("%w: average accumulator of %d bytes", ErrDecode, len(src))
	}
	sum, err := Float64Serializer{}.Decode(src[:8])
	if err != nil {
		return avgAcc{}, err
	}
	n, w := binary.Varint(src[8:])
	if w <= 0 || 8+w != len(src) {
		return avgAcc{}, fmt.Errorf("%w: average accumulator count", ErrDecode)
	}
	return avgAcc{sum, n}, nil
}

// kgs used by the tests: both ends of the range and two inside.
var testKGs = []int{32, 33, 47, 63}

func ns(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func wantValue[V comparable](t *testing.T, what string, got V, ok bool, err error, want V, wantOK bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if ok != wantOK || (ok && got != want) {
		t.Fatalf("%s = %v, %v; want %v, %v", what, got, ok, want, wantOK)
	}
}

func testValue(t *testing.T, h *harness) {
	v := h.s.value
	for _, kg := range testKGs {
		for j := range 20 {
			key := fmt.Sprintf("k%d", j)
			h.must(v.Update(kg, nil, key, int64(kg*100+j)))
			h.must(v.Update(kg, ns("w1"), key, -int64(kg*100+j)))
		}
	}
	h.must(h.s.bytes.Update(40, nil, "b", []byte("hello")))
	h.must(h.s.bytes.Update(40, nil, "empty", []byte{}))
	h.mid()
	for _, kg := range testKGs {
		for j := range 20 {
			key := fmt.Sprintf("k%d", j)
			got, ok, err := v.Value(kg, nil, key)
			wantValue(t, "Value "+key, got, ok, err, int64(kg*100+j), true)
			got, ok, err = v.Value(kg, ns("w1"), key)
			wantValue(t, "Value w1 "+key, got, ok, err, -int64(kg*100+j), true)
		}
		got, ok, err := v.Value(kg, ns("w2"), "k1") // another namespace
		wantValue(t, "Value w2", got, ok, err, 0, false)
		got, ok, err = v.Value(kg, nil, "k1x")
		wantValue(t, "Value of an absent key", got, ok, err, 0, false)
	}
	if b, ok, err := h.s.bytes.Value(40, nil, "b"); err != nil || !ok || string(b) != "hello" {
		t.Fatalf("bytes = %q, %v, %v", b, ok, err)
	}
	if b, ok, err := h.s.bytes.Value(40, nil, "empty"); err != nil || !ok || len(b) != 0 {
		t.Fatalf("empty bytes = %q, %v, %v", b, ok, err)
	}
	// Namespaces are prefix-free: ("w", "1k1") is not ("w1", "k1").
	got, ok, err := v.Value(32, ns("w"), "1k1")
	wantValue(t, "Value w/1k1", got, ok, err, 0, false)

	// Overwrite and delete, then check after a phase boundary.
	h.must(v.Update(32, nil, "k1", 7))
	h.must(v.Clear(32, nil, "k2"))
	h.must(v.Clear(32, nil, "never-there"))
	h.must(v.Clear(33, ns("w1"), "k3"))
	h.mid()
	got, ok, err = v.Value(32, nil, "k1")
	wantValue(t, "overwritten", got, ok, err, 7, true)
	got, ok, err = v.Value(32, nil, "k2")
	wantValue(t, "deleted", got, ok, err, 0, false)
	got, ok, err = v.Value(33, ns("w1"), "k3")
	wantValue(t, "deleted in w1", got, ok, err, 0, false)
	got, ok, err = v.Value(33, nil, "k3")
	wantValue(t, "k3 outside w1", got, ok, err, 3303, true)
	h.must(v.Update(32, nil, "k2", 99)) // a deleted key comes back
	h.mid()
	got, ok, err = v.Value(32, nil, "k2")
	wantValue(t, "rewritten", got, ok, err, 99, true)
	if st := h.st.Stats(); st.HeapKeyGroups+st.PebbleKeyGroups != testRange.Len() {
		t.Fatalf("stats count %d key groups", st.HeapKeyGroups+st.PebbleKeyGroups)
	}
}

func mapContents(t *testing.T, m *MapState[string, float64], kg int, n []byte, key string) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	if err := m.Range(kg, n, key, func(uk string, uv float64) bool { got[uk] = uv; return true }); err != nil {
		t.Fatal(err)
	}
	return got
}

func testMap(t *testing.T, h *harness) {
	m := h.s.m
	want := map[string]float64{}
	for j := range 30 {
		uk := fmt.Sprintf("u%02d", j)
		want[uk] = float64(j) / 2
		h.must(m.Put(40, nil, "a", uk, float64(j)/2))
	}
	h.must(m.Put(40, ns("w"), "a", "u00", -1))
	h.must(m.Put(40, nil, "ab", "u00", -2)) // key "ab" is not key "a" + user key "bu00"
	h.must(m.Put(41, nil, "a", "u00", -3))
	h.mid()
	if got := mapContents(t, m, 40, nil, "a"); !maps.Equal(got, want) {
		t.Fatalf("map = %v, want %v", got, want)
	}
	uv, ok, err := m.Get(40, nil, "a", "u07")
	wantValue(t, "Get u07", uv, ok, err, 3.5, true)
	uv, ok, err = m.Get(40, nil, "a", "nope")
	wantValue(t, "Get absent", uv, ok, err, 0, false)
	uv, ok, err = m.Get(40, ns("w"), "a", "u00")
	wantValue(t, "Get in w", uv, ok, err, -1, true)
	uv, ok, err = m.Get(40, nil, "ab", "u00")
	wantValue(t, "Get ab", uv, ok, err, -2, true)
	if got := mapContents(t, m, 41, nil, "a"); !maps.Equal(got, map[string]float64{"u00": -3}) {
		t.Fatalf("kg 41 map = %v", got)
	}
	// Stop early.
	n := 0
	h.must(m.Range(40, nil, "a", func(string, float64) bool { n++; return n < 5 }))
	if n != 5 {
		t.Fatalf("Range went on after false: %d calls", n)
	}

	h.must(m.Remove(40, nil, "a", "u03"))
	h.must(m.Remove(40, nil, "a", "absent"))
	h.must(m.Put(40, nil, "a", "u04", 100))
	delete(want, "u03")
	want["u04"] = 100
	h.mid()
	if got := mapContents(t, m, 40, nil, "a"); !maps.Equal(got, want) {
		t.Fatalf("map after remove/put = %v, want %v", got, want)
	}
	h.must(m.Clear(40, nil, "a"))
	if empty, err := m.IsEmpty(40, nil, "a"); err != nil || !empty {
		t.Fatalf("IsEmpty after Clear = %v, %v", empty, err)
	}
	h.mid()
	if got := mapContents(t, m, 40, nil, "a"); len(got) != 0 {
		t.Fatalf("map after Clear = %v", got)
	}
	if empty, err := m.IsEmpty(40, ns("w"), "a"); err != nil || empty {
		t.Fatalf("IsEmpty of the map in w = %v, %v", empty, err)
	}
	uv, ok, err = m.Get(40, nil, "ab", "u00")
	wantValue(t, "Get ab after clearing a", uv, ok, err, -2, true)
	h.must(m.Put(40, nil, "a", "u99", 9))
	h.mid()
	if got := mapContents(t, m, 40, nil, "a"); !maps.Equal(got, map[string]float64{"u99": 9}) {
		t.Fatalf("map refilled = %v", got)
	}
}

func testList(t *testing.T, h *harness) {
	l := h.s.list
	long := string(bytes.Repeat([]byte("x"), 300)) // a two-byte length prefix on Pebble
	h.must(l.Add(50, nil, "k", "a"))
	h.must(l.Add(50, nil, "k", long))
	h.must(l.AddAll(50, nil, "k", []string{"c", "", "e"}))
	h.must(l.AddAll(50, nil, "k", nil))
	h.must(l.Add(50, ns("w"), "k", "other"))
	want := []string{"a", long, "c", "", "e"}
	got, err := l.Get(50, nil, "k")
	h.must(err)
	if !slices.Equal(got, want) {
		t.Fatalf("list = %q, want %q", got, want)
	}
	got[0] = "changed by the caller" // the caller owns what Get returns
	h.mid()
	got, err = l.Get(50, nil, "k")
	h.must(err)
	if !slices.Equal(got, want) {
		t.Fatalf("list after phase = %q, want %q", got, want)
	}
	h.must(l.Add(50, nil, "k", "f"))
	want = append(want, "f")
	h.mid()
	if got, err = l.Get(50, nil, "k"); err != nil || !slices.Equal(got, want) {
		t.Fatalf("list after Add = %q, %v", got, err)
	}
	repl := []string{"x", "y"}
	h.must(l.Update(50, nil, "k", repl))
	repl[0] = "changed" // Update copies
	h.mid()
	if got, err = l.Get(50, nil, "k"); err != nil || !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("list after Update = %q, %v", got, err)
	}
	h.must(l.Update(50, nil, "k", nil))
	if got, err = l.Get(50, nil, "k"); err != nil || got != nil {
		t.Fatalf("list after Update(nil) = %q, %v", got, err)
	}
	h.must(l.Add(50, nil, "k", "again"))
	h.must(l.Clear(50, ns("w"), "k"))
	h.mid()
	if got, err = l.Get(50, nil, "k"); err != nil || !slices.Equal(got, []string{"again"}) {
		t.Fatalf("list restarted = %q, %v", got, err)
	}
	if got, err = l.Get(50, ns("w"), "k"); err != nil || got != nil {
		t.Fatalf("cleared list = %q, %v", got, err)
	}
}

func testReducing(t *testing.T, h *harness) {
	s := h.s.sum
	for _, kg := range testKGs {
		for j := range 10 {
			h.must(s.Add(kg, nil, "k", int64(j)))
		}
	}
	h.mid()
	for _, kg := range testKGs {
		got, ok, err := s.Get(kg, nil, "k")
		wantValue(t, "sum", got, ok, err, 45, true)
		h.must(s.Add(kg, nil, "k", 5))
	}
	h.must(s.Clear(32, nil, "k"))
	h.mid()
	got, ok, err := s.Get(33, nil, "k")
	wantValue(t, "sum after add", got, ok, err, 50, true)
	got, ok, err = s.Get(32, nil, "k")
	wantValue(t, "cleared sum", got, ok, err, 0, false)
	h.must(s.Add(32, nil, "k", 3))
	got, ok, err = s.Get(32, nil, "k")
	wantValue(t, "sum restarted", got, ok, err, 3, true)
}

func testAggregating(t *testing.T, h *harness) {
	a := h.s.avg
	for _, x := range []float64{1, 2, 3, 6} {
		h.must(a.Add(60, ns("w"), "k", x))
	}
	h.mid()
	got, ok, err := a.Get(60, ns("w"), "k")
	wantValue(t, "avg", got, ok, err, 3, true)
	h.must(a.Add(60, ns("w"), "k", 8))
	got, ok, err = a.Get(60, nil, "k")
	wantValue(t, "avg in another namespace", got, ok, err, 0, false)
	h.mid()
	got, ok, err = a.Get(60, ns("w"), "k")
	wantValue(t, "avg after add", got, ok, err, 4, true)
	h.must(a.Clear(60, ns("w"), "k"))
	h.mid()
	got, ok, err = a.Get(60, ns("w"), "k")
	wantValue(t, "cleared avg", got, ok, err, 0, false)
}

func testTTL(t *testing.T, h *harness) {
	s, c := h.s, h.clock
	h.must(s.ttlValue.Update(34, nil, "old", "o"))
	h.must(s.ttlMap.Put(34, nil, "k", 1, 10))
	h.must(s.ttlList.Add(34, nil, "k", 1))
	h.must(s.value.Update(34, nil, "k", 1)) // no TTL
	c.Advance(40 * time.Second)
	h.must(s.ttlValue.Update(34, nil, "new", "n"))
	h.must(s.ttlMap.Put(34, nil, "k", 2, 20))
	h.mid()
	c.Advance(30 * time.Second) // "old" and user key 1 are 70s old, "new" and 2 30s
	got, ok, err := s.ttlValue.Value(34, nil, "old")
	wantValue(t, "expired value", got, ok, err, "", false)
	got, ok, err = s.ttlValue.Value(34, nil, "new")
	wantValue(t, "live value", got, ok, err, "n", true)
	uv, ok, err := s.ttlMap.Get(34, nil, "k", 1)
	wantValue(t, "expired user key", uv, ok, err, 0, false)
	uv, ok, err = s.ttlMap.Get(34, nil, "k", 2)
	wantValue(t, "live user key", uv, ok, err, 20, true)
	var seen []int64
	h.must(s.ttlMap.Range(34, nil, "k", func(uk, _ int64) bool { seen = append(seen, uk); return true }))
	if !slices.Equal(seen, []int64{2}) {
		t.Fatalf("Range saw user keys %v, want [2]", seen)
	}
	if l, err := s.ttlList.Get(34, nil, "k"); err != nil || l != nil {
		t.Fatalf("expired list = %v, %v", l, err)
	}
	v, ok, err := s.value.Value(34, nil, "k")
	wantValue(t, "value without TTL", v, ok, err, 1, true)

	// An expired list starts over; a write refreshes an entry.
	h.must(s.ttlList.Add(34, nil, "k", 2))
	h.must(s.ttlValue.Update(34, nil, "new", "n2"))
	h.mid()
	c.Advance(50 * time.Second) // the list and "new" are 50s old
	if l, err := s.ttlList.Get(34, nil, "k"); err != nil || !slices.Equal(l, []int64{2}) {
		t.Fatalf("restarted list = %v, %v", l, err)
	}
	got, ok, err = s.ttlValue.Value(34, nil, "new")
	wantValue(t, "refreshed value", got, ok, err, "n2", true)
	uv, ok, err = s.ttlMap.Get(34, nil, "k", 2) // 80s old
	wantValue(t, "user key 2 expired", uv, ok, err, 0, false)

	// Snapshots leave expired entries out: the snapshot equals that of a
	// store where they were never written.
	h.must(s.ttlValue.Update(35, nil, "soon", "s"))
	c.Advance(59 * time.Second)
	h.must(s.ttlValue.Update(35, nil, "later", "l"))
	c.Advance(2 * time.Second)
	h.mid()
	var snap bytes.Buffer
	h.must(h.st.SnapshotKeyGroup(35, &snap))
	other, otherS := h.newStore(Heap)
	c.Advance(-2 * time.Second) // written at the same time as in h.st
	h.must(otherS.ttlValue.Update(35, nil, "later", "l"))
	c.Advance(2 * time.Second)
	var want bytes.Buffer
	h.must(other.SnapshotKeyGroup(35, &want))
	if !bytes.Equal(snap.Bytes(), want.Bytes()) {
		t.Fatalf("snapshot with an expired entry:\n%x\nwant\n%x", snap.Bytes(), want.Bytes())
	}
	// Restoring later drops what has expired since the snapshot.
	c.Advance(time.Minute)
	h.must(other.RestoreKeyGroup(35, bytes.NewReader(snap.Bytes())))
	got, ok, err = otherS.ttlValue.Value(35, nil, "later")
	wantValue(t, "restored after expiry", got, ok, err, "", false)
}

// fill writes entries of every state into key group kg.
func fill(t testing.TB, s *testStates, kg int, n int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for j := range n {
		key := fmt.Sprintf("key-%d-%d", kg, j)
		must(s.value.Update(kg, nil, key, int64(j)*1_000_003-500))
		must(s.value.Update(kg, ns(fmt.Sprintf("win-%d", j%3)), key, int64(j)))
		must(s.bytes.Update(kg, nil, key, []byte(key)))
		must(s.m.Put(kg, ns("w"), key, fmt.Sprintf("u%d", j%7), float64(j)*0.25))
		must(s.m.Put(kg, ns("w"), key, "z", -float64(j)))
		must(s.list.AddAll(kg, nil, key, []string{key, "", "x"}))
		must(s.sum.Add(kg, nil, key, int64(j)))
		must(s.avg.Add(kg, nil, key, float64(j)))
		must(s.ttlValue.Update(kg, nil, key, key))
		must(s.ttlMap.Put(kg, nil, key, int64(j), int64(-j)))
		must(s.ttlList.Add(kg, nil, key, int64(j)))
	}
}

func snapshot(t testing.TB, st *Store, kg int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := st.SnapshotKeyGroup(kg, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testSnapshotRestore(t *testing.T, h *harness) {
	for _, kg := range testKGs {
		fill(t, h.s, kg, 25+kg)
	}
	h.mid()
	h.must(h.s.value.Clear(33, nil, "key-33-3"))
	h.must(h.s.m.Remove(33, ns("w"), "key-33-4", "z"))
	snaps := map[int][]byte{}
	for kg := testRange.Start; kg <= testRange.End; kg++ {
		snaps[kg] = snapshot(t, h.st, kg)
	}
	h.mid()
	for kg := testRange.Start; kg <= testRange.End; kg++ {
		if again := snapshot(t, h.st, kg); !bytes.Equal(again, snaps[kg]) {
			t.Fatalf("key group %d: snapshot changed across a phase boundary", kg)
		}
	}
	// Restore into a store on each backend: reads and snapshots agree, and
	// a store restored from the other backend's snapshot gives the same
	// bytes again.
	heapSt, heapS := h.newStore(Heap)
	pebSt, pebS := h.newStore(Pebble)
	for kg, b := range snaps {
		h.must(heapSt.RestoreKeyGroup(kg, bytes.NewReader(b)))
		h.must(pebSt.RestoreKeyGroup(kg, bytes.NewReader(b)))
	}
	for _, kg := range testKGs {
		if !bytes.Equal(snapshot(t, heapSt, kg), snaps[kg]) {
			t.Fatalf("key group %d: heap store's snapshot differs from the one it was restored from", kg)
		}
		if !bytes.Equal(snapshot(t, pebSt, kg), snaps[kg]) {
			t.Fatalf("key group %d: pebble store's snapshot differs from the one it was restored from", kg)
		}
		for _, s := range []*testStates{heapS, pebS} {
			got, ok, err := s.value.Value(kg, nil, fmt.Sprintf("key-%d-5", kg))
			wantValue(t, "restored value", got, ok, err, 5*1_000_003-500, true)
			l, err := s.list.Get(kg, nil, fmt.Sprintf("key-%d-2", kg))
			if err != nil || !slices.Equal(l, []string{fmt.Sprintf("key-%d-2", kg), "", "x"}) {
				t.Fatalf("restored list = %q, %v", l, err)
			}
			a, ok, err := s.avg.Get(kg, nil, fmt.Sprintf("key-%d-4", kg))
			wantValue(t, "restored avg", a, ok, err, 4, true)
			uv, ok, err := s.ttlMap.Get(kg, nil, fmt.Sprintf("key-%d-6", kg), 6)
			wantValue(t, "restored ttl map", uv, ok, err, -6, true)
		}
	}
	got, ok, err := pebS.value.Value(33, nil, "key-33-3")
	wantValue(t, "deleted before the snapshot", got, ok, err, 0, false)
	uv, ok, err := heapS.m.Get(33, ns("w"), "key-33-4", "z")
	wantValue(t, "removed before the snapshot", uv, ok, err, 0, false)

	// Heap snapshot into Pebble and back to the heap, by migration.
	for _, kg := range testKGs {
		_, err := pebSt.MigrateKeyGroup(kg, Heap)
		h.must(err)
		if !bytes.Equal(snapshot(t, pebSt, kg), snaps[kg]) {
			t.Fatalf("key group %d: snapshot changed moving it from pebble to the heap", kg)
		}
	}
	// Snapshots read back to back from one stream.
	var stream bytes.Buffer
	for _, kg := range testKGs {
		stream.Write(snaps[kg])
	}
	r := bytes.NewReader(stream.Bytes())
	back, _ := h.newStore(Pebble)
	for _, kg := range testKGs {
		h.must(back.RestoreKeyGroup(kg, r))
		if !bytes.Equal(snapshot(t, back, kg), snaps[kg]) {
			t.Fatalf("key group %d: restored from a stream, the snapshot differs", kg)
		}
	}
}

func testRestoreReplaces(t *testing.T, h *harness) {
	fill(t, h.s, 40, 5)
	snap := snapshot(t, h.st, 40)
	h.must(h.s.value.Update(40, nil, "added-later", 1))
	h.must(h.s.value.Clear(40, nil, "key-40-1"))
	h.must(h.s.list.Add(40, nil, "key-40-2", "more"))
	h.mid()
	h.must(h.st.RestoreKeyGroup(40, bytes.NewReader(snap)))
	got, ok, err := h.s.value.Value(40, nil, "added-later")
	wantValue(t, "entry written after the snapshot", got, ok, err, 0, false)
	got, ok, err = h.s.value.Value(40, nil, "key-40-1")
	wantValue(t, "entry deleted after the snapshot", got, ok, err, -500+1_000_003, true)
	h.mid()
	if again := snapshot(t, h.st, 40); !bytes.Equal(again, snap) {
		t.Fatal("restored key group's snapshot differs from the snapshot")
	}
	// A snapshot of an empty key group empties it.
	emptySt, _ := h.newStore(Heap)
	h.must(h.st.RestoreKeyGroup(40, bytes.NewReader(snapshot(t, emptySt, 40))))
	got, ok, err = h.s.value.Value(40, nil, "key-40-1")
	wantValue(t, "entry of a key group restored empty", got, ok, err, 0, false)

	// A failed restore changes nothing.
	fill(t, h.s, 42, 3)
	before := snapshot(t, h.st, 42)
	bad := snapshot(t, h.st, 42)
	bad[len(bad)-1] ^= 1
	if err := h.st.RestoreKeyGroup(42, bytes.NewReader(bad)); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("restore of a bad checksum: %v", err)
	}
	if after := snapshot(t, h.st, 42); !bytes.Equal(after, before) {
		t.Fatal("a failed restore changed the key group")
	}
}

func testKeyGroupOutOfRange(t *testing.T, h *harness) {
	for _, kg := range []int{31, 64, -1} {
		if err := h.s.value.Update(kg, nil, "k", 1); !errors.Is(err, ErrKeyGroupOutOfRange) {
			t.Fatalf("Update in key group %d: %v", kg, err)
		}
		if _, _, err := h.s.m.Get(kg, nil, "k", "u"); !errors.Is(err, ErrKeyGroupOutOfRange) {
			t.Fatalf("map Get in key group %d: %v", kg, err)
		}
		if err := h.st.SnapshotKeyGroup(kg, &bytes.Buffer{}); !errors.Is(err, ErrKeyGroupOutOfRange) {
			t.Fatalf("snapshot of key group %d: %v", kg, err)
		}
		if _, err := h.st.MigrateKeyGroup(kg, Pebble); !errors.Is(err, ErrKeyGroupOutOfRange) {
			t.Fatalf("migration of key group %d: %v", kg, err)
		}
	}
}
