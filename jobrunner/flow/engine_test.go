package flow

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/state"
)

// testSource emits records n = index, index+par, ... < total: key "k<n%keys>",
// time n ms. gate, when set, is consulted before every read.
type testSource struct {
	index, par, total, keys int
	next                    int
	gate                    func(next int) bool
	rows                    []Value
}

func (s *testSource) Read(ctx context.Context, buf []Record, max int) ([]Record, error) {
	if s.gate != nil && !s.gate(s.next) {
		time.Sleep(time.Millisecond) // a source with nothing to read yet
		return buf, nil
	}
	s.rows = s.rows[:0]
	for len(buf) < max && s.next < s.total {
		n := s.next
		s.rows = append(s.rows, String("k"+strconv.Itoa(n%s.keys)))
		buf = append(buf, Record{Time: int64(n)})
		s.next += s.par
	}
	for i := range buf {
		buf[i].Row = s.rows[i : i+1]
	}
	if s.next >= s.total {
		return buf, io.EOF
	}
	return buf, nil
}

func (s *testSource) Snapshot() ([]byte, error) { return binary.AppendVarint(nil, int64(s.next)), nil }
func (s *testSource) Close() error              { return nil }

func testSourceFactory(total, keys int, gate func(int) bool) SourceFactory {
	return func(index, par int, st []byte) (Source, error) {
		s := &testSource{index: index, par: par, total: total, keys: keys, next: index, gate: gate}
		if st != nil {
			n, _ := binary.Varint(st)
			s.next = int(n)
		}
		return s, nil
	}
}

// keyBy sets the key from field 0.
func keyByChain(maxP int) Chain {
	return func(out Emitter) (Emitter, error) {
		return EmitterFunc(func(r *Record) error {
			r.Key = r.Row[0].S
			r.KeyHash = state.KeyHash(r.Key)
			r.KeyGroup = state.KeyGroupOfHash(r.KeyHash, maxP)
			return out.Emit(r)
		}), nil
	}
}

// countOp counts records per key and emits "key=count" at the final
// watermark; it records the watermarks it saw.
type countOp struct {
	counts *state.Table[int64, int64]
	out    Emitter
	wms    *[]int64
}

func (c *countOp) Process(r *Record) error {
	n, _ := c.counts.Get(r.KeyGroup, 0, r.Key)
	c.counts.Put(r.KeyGroup, 0, r.Key, n+1)
	return nil
}

func (c *countOp) StateEntries() int64 { return int64(c.counts.Len()) }

func (c *countOp) Watermark(wm int64) error {
	if c.wms != nil {
		*c.wms = append(*c.wms, wm)
	}
	if wm != WatermarkMax {
		return nil
	}
	r := c.counts.Range()
	for kg := r.Start; kg <= r.End; kg++ {
		var err error
		c.counts.Each(kg, func(e state.Entry[int64], v int64) bool {
			err = c.out.Emit(&Record{Key: e.Key, Row: []Value{String(e.Key), Int(v)}})
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *countOp) SnapshotKeyGroup(kg int, w io.Writer) error {
	m := map[string]int64{}
	c.counts.Each(kg, func(e state.Entry[int64], v int64) bool { m[e.Key] = v; return true })
	if len(m) == 0 {
		return nil
	}
	return json.NewEncoder(w).Encode(m)
}

func (c *countOp) RestoreKeyGroup(kg int, r io.Reader) error {
	m := map[string]int64{}
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		c.counts.Put(kg, 0, k, v)
	}
	return nil
}

func countFactory(wms *[]int64) KeyedFactory {
	return func(kgs state.KeyGroupRange, out, late Emitter) (KeyedOperator, error) {
		return &countOp{counts: state.NewTable[int64, int64](kgs), out: out, wms: wms}, nil
	}
}

// store is the outside world the test sinks write to: only committed lines count.
type store struct {
	mu        sync.Mutex
	committed []string
	done      map[string]bool // subtask/checkpoint already committed
}

type pendingState struct {
	Pending map[int64][]string // checkpoint → lines
}

// testSink keeps lines in progress until a snapshot makes them pending, and
// pending until their checkpoint is committed.
type testSink struct {
	st      *store
	index   int
	inprog  []string
	pending map[int64][]string
}

func (s *testSink) Emit(r *Record) error {
	s.inprog = append(s.inprog, fmt.Sprintf("%s=%d", r.Row[0].S, r.Row[1].Int()))
	return nil
}

func (s *testSink) Snapshot(id int64) ([]byte, error) {
	s.pending[id] = s.inprog
	s.inprog = nil
	return json.Marshal(pendingState{Pending: s.pending})
}

func (s *testSink) Commit(id int64) error {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	for cid, lines := range s.pending {
		if cid > id {
			continue
		}
		tag := fmt.Sprintf("%d/%d", s.index, cid)
		if !s.st.done[tag] {
			s.st.done[tag] = true
			s.st.committed = append(s.st.committed, lines...)
		}
		delete(s.pending, cid)
	}
	return nil
}

func (s *testSink) Close() error { s.inprog = nil; return nil }

func (st *store) factory() SinkFactory {
	return func(index, par int, state []byte) (Sink, error) {
		s := &testSink{st: st, index: index, pending: map[int64][]string{}}
		if state != nil {
			var ps pendingState
			if err := json.Unmarshal(state, &ps); err != nil {
				return nil, err
			}
			s.pending = ps.Pending
			// What the checkpoint lists as pending is committed on restore.
			var ids []int64
			for id := range s.pending {
				ids = append(ids, id)
			}
			if len(ids) > 0 {
				if err := s.Commit(slices.Max(ids)); err != nil {
					return nil, err
				}
			}
		}
		return s, nil
	}
}

func newStore() *store { return &store{done: map[string]bool{}} }

func (st *store) lines() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := slices.Clone(st.committed)
	sort.Strings(out)
	return out
}

// runToEnd runs a plan whose input is bounded: final checkpoint, commit, finish.
func runToEnd(t *testing.T, e *Engine, id int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case <-e.SourcesFinished():
	case <-e.Done():
		t.Fatalf("ended early: %v", e.Err())
	case <-ctx.Done():
		t.Fatal("sources did not finish")
	}
	if _, err := e.Checkpoint(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.Complete(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.Finish()
	select {
	case <-e.Done():
	case <-ctx.Done():
		t.Fatal("engine did not end")
	}
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
}

func sumCounts(lines []string) int {
	total := 0
	for _, l := range lines {
		var n int
		fmt.Sscanf(l[bytes.IndexByte([]byte(l), '=')+1:], "%d", &n)
		total += n
	}
	return total
}

func TestEngineCountsEveryRecordOnce(t *testing.T) {
	for _, tt := range []struct{ src, keyed int }{{1, 1}, {4, 4}, {2, 3}, {3, 1}} {
		t.Run(fmt.Sprintf("%dx%d", tt.src, tt.keyed), func(t *testing.T) {
			const total, keys = 20000, 37
			st := newStore()
			e, err := Start(context.Background(), Plan{
				MaxParallelism: 128, SourceParallelism: tt.src, Source: testSourceFactory(total, keys, nil),
				Chain: keyByChain(128), KeyedParallelism: tt.keyed, Keyed: countFactory(nil), Sink: st.factory(),
				BatchSize: 64, ChannelCapacity: 2,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			runToEnd(t, e, 1)
			lines := st.lines()
			if len(lines) != keys || sumCounts(lines) != total {
				t.Fatalf("%d keys summing to %d, want %d keys summing to %d", len(lines), sumCounts(lines), keys, total)
			}
			var in, out int64
			for _, s := range e.SourceStats {
				out += s.RecordsOut.Load()
			}
			for _, s := range e.KeyedStats {
				in += s.RecordsIn.Load()
			}
			if in != total || out != total {
				t.Errorf("records out of sources %d, into keyed subtasks %d; want %d", out, in, total)
			}
		})
	}
}

// A checkpoint taken mid-stream, a cancel, and a restore give exactly the
// output of an uninterrupted run.
func TestEngineExactlyOnceAcrossRestore(t *testing.T) {
	const total, keys = 50000, 11
	plan := func(st *store, gate func(int) bool) Plan {
		return Plan{MaxParallelism: 16, SourceParallelism: 3, Source: testSourceFactory(total, keys, gate),
			Chain: keyByChain(16), KeyedParallelism: 2, Keyed: countFactory(nil), Sink: st.factory(), BatchSize: 100}
	}
	ref := newStore()
	e, err := Start(context.Background(), plan(ref, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	runToEnd(t, e, 1)

	st := newStore()
	var mu sync.Mutex
	limit := total / 3
	gate := func(next int) bool { mu.Lock(); defer mu.Unlock(); return next < limit }
	e, err = Start(context.Background(), plan(st, gate), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitRecords(t, e, total/6)
	snap, err := e.Checkpoint(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Complete(ctx, 7); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	limit = total / 2 // more records after the checkpoint, then a crash
	mu.Unlock()
	e.Cancel()
	<-e.Done()
	if len(snap.KeyGroups) == 0 {
		t.Fatal("no keyed state in the checkpoint")
	}

	e, err = Start(context.Background(), plan(st, nil), snap)
	if err != nil {
		t.Fatal(err)
	}
	runToEnd(t, e, 8)
	if got, want := st.lines(), ref.lines(); !slices.Equal(got, want) {
		t.Fatalf("after restore:\n%v\nuninterrupted:\n%v", got, want)
	}
}

func TestEngineWatermarkIsMinOfActiveInputs(t *testing.T) {
	var wms []int64
	var mu sync.Mutex
	// Subtask 0 stops at 1000 and subtask 1 at 4000 until released.
	hold := true
	gate := func(next int) bool {
		mu.Lock()
		defer mu.Unlock()
		return !hold || next%2 == 0 && next < 1000 || next%2 == 1 && next < 4000
	}
	e, err := Start(context.Background(), Plan{MaxParallelism: 8, SourceParallelism: 2, Source: testSourceFactory(6000, 5, gate),
		Chain: keyByChain(8), KeyedParallelism: 1, Keyed: countFactory(&wms), Sink: newStore().factory(), BatchSize: 10,
		Watermarks: Watermarks{IdleTimeout: 50 * time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// While subtask 0 holds at ~1000 and before it is idle, the watermark stays below it.
	deadline := time.Now().Add(10 * time.Second)
	for e.KeyedStats[0].Watermark.Load() < 3990 {
		if time.Now().After(deadline) {
			t.Fatalf("watermark stuck at %d: the idle subtask holds it back", e.KeyedStats[0].Watermark.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !e.SourceStats[0].Idle.Load() {
		t.Error("the held subtask is not marked idle")
	}
	mu.Lock()
	hold = false
	mu.Unlock()
	runToEnd(t, e, 1)
	for i := 1; i < len(wms); i++ {
		if wms[i] <= wms[i-1] {
			t.Fatalf("watermarks not increasing: %v", wms)
		}
	}
}

func waitRecords(t *testing.T, e *Engine, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var in int64
		for _, s := range e.KeyedStats {
			in += s.RecordsIn.Load()
		}
		if in >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records processed, waited for %d", in, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEngineWithoutKeyedStage(t *testing.T) {
	st := newStore()
	chain := func(out Emitter) (Emitter, error) {
		return EmitterFunc(func(r *Record) error {
			return out.Emit(&Record{Row: []Value{r.Row[0], Int(r.Time)}})
		}), nil
	}
	e, err := Start(context.Background(), Plan{MaxParallelism: 8, SourceParallelism: 2, Source: testSourceFactory(1000, 3, nil),
		Chain: chain, Sink: st.factory()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runToEnd(t, e, 1)
	if n := len(st.lines()); n != 1000 {
		t.Fatalf("%d lines committed, want 1000", n)
	}
}

func TestPlanValidate(t *testing.T) {
	good := Plan{MaxParallelism: 8, SourceParallelism: 1, Source: testSourceFactory(1, 1, nil), Sink: newStore().factory()}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func(*Plan){
		func(p *Plan) { p.MaxParallelism = 0 },
		func(p *Plan) { p.SourceParallelism = 0 },
		func(p *Plan) { p.KeyedParallelism = 9 },
		func(p *Plan) { p.KeyedParallelism = 1 },
		func(p *Plan) { p.Sink = nil },
	} {
		p := good
		mut(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("invalid plan accepted: %+v", p)
		}
	}
}

// The valve between source subtasks and a keyed subtask: the least watermark
// of the active inputs, and when the last active input goes idle, the
// greatest watermark of all of them.
func TestKeyedWatermarkValve(t *testing.T) {
	var wms []int64
	op := &countOp{counts: state.NewTable[int64, int64](state.KeyGroupRange{Start: 0, End: 7}), wms: &wms}
	k := &keyedTask{op: op, st: &SubtaskStats{}, cur: WatermarkNone,
		wm: []int64{WatermarkNone, WatermarkNone, WatermarkNone}, idle: make([]bool, 3), ended: make([]bool, 3),
		blocked: make([]bool, 3), stash: make([][]message, 3)}
	steps := []struct {
		m    message
		want int64
	}{
		{message{kind: msgWatermark, from: 0, wm: 100}, WatermarkNone}, // inputs 1 and 2 have none yet
		{message{kind: msgWatermark, from: 1, wm: 300}, WatermarkNone},
		{message{kind: msgWatermark, from: 2, wm: 200}, 100},
		{message{kind: msgIdle, from: 0}, 200}, // the least active input is 2
		{message{kind: msgIdle, from: 2}, 300}, // only input 1 is active
		{message{kind: msgWatermark, from: 1, wm: 350}, 350},
		{message{kind: msgIdle, from: 1}, 350},               // all idle: the greatest, already out
		{message{kind: msgWatermark, from: 0, wm: 120}, 350}, // input 0 is back, behind: never goes back
		{message{kind: msgWatermark, from: 0, wm: 500}, 500},
	}
	for i, s := range steps {
		if _, err := k.handle(s.m); err != nil {
			t.Fatal(err)
		}
		if k.cur != s.want {
			t.Fatalf("step %d (%+v): watermark %d, want %d", i, s.m, k.cur, s.want)
		}
	}

	// The last active input goes idle while behind the others: their
	// greatest watermark is flushed.
	k = &keyedTask{op: op, st: &SubtaskStats{}, cur: WatermarkNone,
		wm: []int64{WatermarkNone, WatermarkNone}, idle: make([]bool, 2), ended: make([]bool, 2),
		blocked: make([]bool, 2), stash: make([][]message, 2)}
	for _, m := range []message{{kind: msgWatermark, from: 0, wm: 997}, {kind: msgWatermark, from: 1, wm: 3997},
		{kind: msgIdle, from: 1}, {kind: msgIdle, from: 0}} {
		if _, err := k.handle(m); err != nil {
			t.Fatal(err)
		}
	}
	if k.cur != 3997 {
		t.Fatalf("all inputs idle: watermark %d, want 3997", k.cur)
	}
}

// Latency markers reach every keyed subtask from every source subtask, also
// while the sources have no records; keyed subtasks publish their state size.
func TestEngineLatencyMarkersAndStateSize(t *testing.T) {
	const keys = 7
	var mu sync.Mutex
	hold := true
	gate := func(next int) bool { mu.Lock(); defer mu.Unlock(); return !hold || next < 100 }
	var seen [2]atomic.Int64
	var negative atomic.Bool
	e, err := Start(context.Background(), Plan{MaxParallelism: 16, SourceParallelism: 3, Source: testSourceFactory(3000, keys, gate),
		Chain: keyByChain(16), KeyedParallelism: 2, Keyed: countFactory(nil), Sink: newStore().factory(),
		LatencyInterval: 5 * time.Millisecond,
		OnLatency: func(keyed int, d time.Duration) {
			if d < 0 {
				negative.Store(true)
			}
			seen[keyed].Add(1)
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for seen[0].Load() < 6 || seen[1].Load() < 6 { // two rounds from each of 3 sources
		if time.Now().After(deadline) {
			t.Fatalf("markers seen by keyed subtasks: %d, %d", seen[0].Load(), seen[1].Load())
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	hold = false
	mu.Unlock()
	runToEnd(t, e, 1)
	if negative.Load() {
		t.Error("a negative latency")
	}
	var entries int64
	for _, s := range e.KeyedStats {
		entries += s.StateEntries.Load()
	}
	if entries != keys {
		t.Errorf("state entries %d, want one per key (%d)", entries, keys)
	}
}

// Two engines running the same plan with complementary Local sets, as two
// containers of one job do, together count every record once, and each
// drops what the other keeps.
func TestEngineLocalSubtasksSplitTheKeys(t *testing.T) {
	const total, keys, keyed = 20000, 37, 4
	var lines []string
	var elsewhere int64
	for _, local := range [][]bool{{true, true, false, false}, {false, false, true, true}} {
		st := newStore()
		e, err := Start(context.Background(), Plan{
			MaxParallelism: 128, SourceParallelism: 2, Source: testSourceFactory(total, keys, nil),
			Chain: keyByChain(128), KeyedParallelism: keyed, Keyed: countFactory(nil), Sink: st.factory(),
			Local: local, BatchSize: 64, ChannelCapacity: 2,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		runToEnd(t, e, 1)
		got := st.lines()
		if len(got) == 0 || len(got) == keys {
			t.Fatalf("local %v: %d keys; each engine should have some of the %d", local, len(got), keys)
		}
		lines = append(lines, got...)
		for j, s := range e.KeyedStats {
			if !local[j] && s.RecordsIn.Load() != 0 {
				t.Errorf("local %v: subtask %d is elsewhere but got %d records", local, j, s.RecordsIn.Load())
			}
		}
		for _, s := range e.SourceStats {
			elsewhere += s.RecordsElsewhere.Load()
		}
	}
	if len(lines) != keys || sumCounts(lines) != total {
		t.Fatalf("%d keys summing to %d, want %d keys summing to %d", len(lines), sumCounts(lines), keys, total)
	}
	if elsewhere != total {
		t.Errorf("records left to the other engine: %d, want %d", elsewhere, total)
	}
	if _, err := Start(context.Background(), Plan{
		MaxParallelism: 128, SourceParallelism: 1, Source: testSourceFactory(1, 1, nil),
		Chain: keyByChain(128), KeyedParallelism: 2, Keyed: countFactory(nil), Sink: newStore().factory(),
		Local: []bool{true},
	}, nil); err == nil {
		t.Error("a Local of the wrong length was accepted")
	}
}
