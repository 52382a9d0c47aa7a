package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tidewatch/tidewatch/state"
)

func TestWindowConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  WindowConfig
		want string // field named in the error; "" for valid
	}{
		{WindowConfig{Kind: "tumbling", Size: 1}, ""},
		{WindowConfig{Kind: "sliding", Size: 10, Slide: 20}, ""}, // gaps between windows are allowed
		{WindowConfig{Kind: "session", Gap: 5, AllowedLateness: 7}, ""},
		{WindowConfig{Kind: "tumbling"}, "Size"},
		{WindowConfig{Kind: "sliding", Size: 10}, "Slide"},
		{WindowConfig{Kind: "sliding", Slide: 10}, "Size"},
		{WindowConfig{Kind: "session", Gap: -1}, "Gap"},
		{WindowConfig{Kind: "tumbling", Size: 1, AllowedLateness: -1}, "AllowedLateness"},
		{WindowConfig{Kind: "hopping", Size: 1}, "Kind"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.cfg, err)
			}
			continue
		}
		if !errors.Is(err, ErrWindowConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want ErrWindowConfig naming %s", tt.cfg, err, tt.want)
		}
	}
}

func TestWindowAggConfigErrors(t *testing.T) {
	in := goldenSchema(t, "int")
	tumbling := WindowConfig{Kind: WindowTumbling, Size: 10}
	tests := []struct {
		name string
		aggs []AggConfig
		want string
	}{
		{"none", nil, "no aggregates"},
		{"unknown function", []AggConfig{{Func: "median", Field: "v"}}, `unknown function "median"`},
		{"unknown field", []AggConfig{{Func: "sum", Field: "w"}}, `unknown field "w"`},
		{"sum of string", []AggConfig{{Func: "sum", Field: "key"}}, "not numeric"},
		{"count with field", []AggConfig{{Func: "count", Field: "v"}}, "takes no field"},
		{"duplicate output", []AggConfig{{Func: "count"}, {Func: "sum", Field: "v", As: "count"}}, `"count" appears twice`},
		{"clashes with key", []AggConfig{{Func: "max", Field: "v", As: "key"}}, `"key" appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWindowOperator(tumbling, tt.aggs, in, state.KeyGroupRange{Start: 0, End: 3}, &collect{}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestWindowOutSchema(t *testing.T) {
	in := goldenSchema(t, "float")
	op, err := NewWindowOperator(WindowConfig{Kind: WindowTumbling, Size: 10},
		[]AggConfig{{Func: "count"}, {Func: "sum", Field: "v"}, {Func: "avg", Field: "v"}, {Func: "countDistinct", Field: "u"}},
		in, state.KeyGroupRange{Start: 0, End: 0}, &collect{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := op.OutSchema()
	wantNames := []string{"windowStart", "windowEnd", "key", "count", "sum_v", "avg_v", "countDistinct_u"}
	wantKinds := []Kind{KindInt, KindInt, KindString, KindInt, KindFloat, KindFloat, KindInt}
	if !slices.Equal(s.Names, wantNames) || !slices.Equal(s.Kinds, wantKinds) {
		t.Errorf("schema %v %v, want %v %v", s.Names, s.Kinds, wantNames, wantKinds)
	}
}

func TestWindowRejectsForeignKeyGroup(t *testing.T) {
	in := goldenSchema(t, "int")
	op, err := NewWindowOperator(WindowConfig{Kind: WindowTumbling, Size: 10}, []AggConfig{{Func: "count"}},
		in, state.KeyGroupRange{Start: 4, End: 7}, &collect{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := Record{Key: "a", KeyHash: state.KeyHash("a"), KeyGroup: 9, Row: []Value{String("a"), Int(1), Null()}}
	if err := op.Process(&r); !errors.Is(err, ErrKeyGroup) {
		t.Errorf("err = %v, want ErrKeyGroup", err)
	}
	var buf bytes.Buffer
	if err := op.SnapshotKeyGroup(3, &buf); !errors.Is(err, ErrKeyGroup) {
		t.Errorf("snapshot: err = %v, want ErrKeyGroup", err)
	}
}

// TestWindowProcessDoesNotAllocate: once a window's state exists, adding to
// it allocates nothing; and once windows have been purged, new windows reuse
// their accumulators.
func TestWindowProcessDoesNotAllocate(t *testing.T) {
	in := goldenSchema(t, "int")
	op, err := NewWindowOperator(WindowConfig{Kind: WindowTumbling, Size: 1000},
		[]AggConfig{{Func: "count"}, {Func: "sum", Field: "v"}, {Func: "max", Field: "v"}},
		in, state.KeyGroupRange{Start: 0, End: 127}, &collect{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := Record{Time: 5, Key: "a", KeyHash: state.KeyHash("a"), KeyGroup: state.KeyGroup("a", 128), Row: []Value{String("a"), Int(3), Null()}}
	if err := op.Process(&r); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if err := op.Process(&r); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per record into an existing window", n)
	}
}

// TestWindowFiredThenRestoredWithoutWatermark follows Flink: the watermark is
// not part of the state, so after a restore a record for a window that had
// fired waits for the watermark and fires it once more, instead of
// re-firing at once.
func TestWindowFiredThenRestoredWithoutWatermark(t *testing.T) {
	in := goldenSchema(t, "int")
	cfg := WindowConfig{Kind: WindowTumbling, Size: 10, AllowedLateness: 100}
	kgs := state.KeyGroupRange{Start: 0, End: 127}
	var out collect
	a, _ := NewWindowOperator(cfg, []AggConfig{{Func: "count"}}, in, kgs, &out, nil)
	rec := func(tm int64) *Record {
		return &Record{Time: tm, Key: "k", KeyHash: state.KeyHash("k"), KeyGroup: state.KeyGroup("k", 128), Row: []Value{String("k"), Int(1), Null()}}
	}
	mustNil(t, a.Process(rec(1)))
	mustNil(t, a.Watermark(9))
	var snap bytes.Buffer
	kg := state.KeyGroup("k", 128)
	mustNil(t, a.SnapshotKeyGroup(kg, &snap))

	b, _ := NewWindowOperator(cfg, []AggConfig{{Func: "count"}}, in, kgs, &out, nil)
	mustNil(t, b.RestoreKeyGroup(kg, &snap))
	if s := b.Stats(); s.OpenWindows != 0 || s.StateEntries != 1 {
		t.Fatalf("restored stats %+v, want 1 fired entry", s)
	}
	mustNil(t, b.Watermark(5))
	mustNil(t, b.Process(rec(2)))
	mustNil(t, b.Process(rec(3)))
	if len(out.recs) != 1 {
		t.Fatalf("%d results before the watermark reached the window end, want only the original firing", len(out.recs))
	}
	mustNil(t, b.Watermark(50))
	if len(out.recs) != 2 || out.recs[1].Row[3].Int() != 3 {
		t.Fatalf("results %v, want a second firing with count 3", out.recs)
	}

	// Without new records the restored, fired window does not fire again.
	c, _ := NewWindowOperator(cfg, []AggConfig{{Func: "count"}}, in, kgs, &out, nil)
	mustNil(t, a.SnapshotKeyGroup(kg, &snap))
	mustNil(t, c.RestoreKeyGroup(kg, &snap))
	mustNil(t, c.Watermark(50))
	if len(out.recs) != 2 {
		t.Fatalf("restored fired window fired again: %v", out.recs)
	}
	mustNil(t, b.Watermark(1000))
	if s := b.Stats(); s.StateEntries != 0 || s.OpenWindows != 0 || len(out.recs) != 2 {
		t.Errorf("after purge: stats %+v, %d results", s, len(out.recs))
	}
}

func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// genEvents makes a reproducible out-of-order stream for keys in key groups
// [kgLo, kgHi] of 128: times drift forward with jitter of up to 3s, and the
// watermark trails the highest time by 2s, so some records are late.
func genEvents(seed uint64, n, kgLo, kgHi int) []inputLine {
	rng := rand.New(rand.NewPCG(seed, 7))
	var keys []string
	for i := 0; len(keys) < 20; i++ {
		k := fmt.Sprintf("key-%d", i)
		if kg := state.KeyGroup(k, 128); kg >= kgLo && kg <= kgHi {
			keys = append(keys, k)
		}
	}
	var lines []inputLine
	var maxT int64
	for i := range n {
		t := int64(i)*40 - rng.Int64N(3000)
		maxT = max(maxT, t)
		u := fmt.Sprintf("u%d", rng.IntN(8))
		l := inputLine{T: &t, Key: keys[rng.IntN(len(keys))], V: jsonInt(rng.Int64N(100) - 20), U: &u}
		lines = append(lines, l)
		if i%25 == 24 {
			wm := maxT - 2000
			lines = append(lines, inputLine{Watermark: &wm})
		}
	}
	end := int64(1) << 62
	return append(lines, inputLine{Watermark: &end})
}

func jsonInt(i int64) json.Number { return json.Number(fmt.Sprint(i)) }

// TestWindowSnapshotRestoreRescaled snapshots an operator owning key groups
// [32,63] midway, restores the groups into an operator owning [0,127] (as
// after rescaling), and checks both then emit exactly the same.
func TestWindowSnapshotRestoreRescaled(t *testing.T) {
	allAggs := []AggConfig{{Func: "count"}, {Func: "sum", Field: "v"}, {Func: "min", Field: "v"},
		{Func: "max", Field: "v"}, {Func: "avg", Field: "v"}, {Func: "countDistinct", Field: "u"}}
	tests := []WindowConfig{
		{Kind: WindowTumbling, Size: 1000, AllowedLateness: 500},
		{Kind: WindowSliding, Size: 2000, Slide: 500, AllowedLateness: 300},
		{Kind: WindowSession, Gap: 150, AllowedLateness: 400},
		{Kind: WindowSession, Gap: 300},
	}
	for _, cfg := range tests {
		t.Run(fmt.Sprintf("%s-%d", cfg.Kind, cfg.AllowedLateness), func(t *testing.T) {
			in := goldenSchema(t, "int")
			events := genEvents(uint64(cfg.Size+cfg.Gap), 2000, 32, 63)
			old := state.KeyGroupRange{Start: 32, End: 63}
			gc := goldenCase{Window: cfg, Aggregates: allAggs, LateOutput: true}

			ref := &windowRun{t: t, gc: gc, in: in, kgs: old}
			ref.run(events, false)

			// The same run, cut after the first half's last watermark.
			cut := len(events) / 2
			for events[cut-1].Watermark == nil {
				cut--
			}
			a := &windowRun{t: t, gc: gc, in: in, kgs: old}
			a.run(events[:cut], false)
			prefix := len(a.out) - 1 // drop the stats line
			if !slices.Equal(a.out[:prefix], ref.out[:prefix]) {
				t.Fatal("the first half differs from the reference run")
			}
			snaps := map[int][]byte{}
			for kg := old.Start; kg <= old.End; kg++ {
				var buf bytes.Buffer
				mustNil(t, a.op.SnapshotKeyGroup(kg, &buf))
				snaps[kg] = buf.Bytes()
			}
			if st := a.op.Stats(); st.StateEntries == 0 {
				t.Fatal("nothing in state at the cut: the test proves nothing")
			}

			// Restored on the heap, and (but for sessions) on Pebble.
			targets := []*windowRun{{t: t, gc: gc, in: in, kgs: state.KeyGroupRange{Start: 0, End: 127}}}
			if cfg.Kind != WindowSession {
				targets = append(targets, &windowRun{t: t, gc: gc, in: in, kgs: state.KeyGroupRange{Start: 0, End: 127},
					pebble: openTestPebble(t), initial: BackendPebble})
			}
			for _, b := range targets {
				b.op = b.newOperator()
				for kg, s := range snaps {
					mustNil(t, b.op.RestoreKeyGroup(kg, bytes.NewReader(s)))
				}
				mustNil(t, b.op.Watermark(a.op.CurrentWatermark()))
				if got, want := b.op.Stats(), a.op.Stats(); got.StateEntries != want.StateEntries || got.OpenWindows != want.OpenWindows {
					t.Fatalf("restored state %+v, want %+v", got, want)
				}
				b.continueRun(events[cut:])
				rest := ref.out[prefix : len(ref.out)-1]
				if !slices.Equal(b.out, rest) {
					t.Errorf("after restore into %v on %s the output differs:\n got %d lines:\n%s\nwant %d lines:\n%s", b.kgs, b.initial,
						len(b.out), strings.Join(b.out, "\n"), len(rest), strings.Join(rest, "\n"))
				}
			}
		})
	}
}

// continueRun feeds lines to the run's current operator.
func (w *windowRun) continueRun(lines []inputLine) {
	w.t.Helper()
	keyBy, err := NewKeyBy("key", w.in, goldenMaxParallelism, EmitterFunc(func(r *Record) error { return w.op.Process(r) }))
	mustNil(w.t, err)
	for _, l := range lines {
		if l.Watermark != nil {
			w.out = append(w.out, fmt.Sprintf("watermark %d", *l.Watermark))
			w.firing = true
			mustNil(w.t, w.op.Watermark(*l.Watermark))
			w.firing = false
			w.flushFired()
			continue
		}
		r := l.record(w.t, w.in)
		mustNil(w.t, keyBy.Process(&r))
	}
}

// sampleSnapshot returns a session operator's snapshot of one key group with
// merged sessions, a fired window and countDistinct sets.
func sampleSnapshot(t testing.TB) (cfg WindowConfig, aggs []AggConfig, kg int, snap []byte) {
	t.Helper()
	cfg = WindowConfig{Kind: WindowSession, Gap: 100, AllowedLateness: 1000}
	aggs = []AggConfig{{Func: "count"}, {Func: "sum", Field: "v"}, {Func: "min", Field: "v"},
		{Func: "max", Field: "v"}, {Func: "avg", Field: "v"}, {Func: "countDistinct", Field: "u"}}
	in := goldenSchema(t, "int")
	op, err := NewWindowOperator(cfg, aggs, in, state.KeyGroupRange{Start: 0, End: 127}, &collect{}, nil)
	mustNil(t, err)
	kg = state.KeyGroup("k", 128)
	for i, tm := range []int64{0, 300, 150, 50, 1000, 1050} {
		u := String(fmt.Sprintf("u%d", i%3))
		mustNil(t, op.Process(&Record{Time: tm, Key: "k", KeyHash: state.KeyHash("k"), KeyGroup: kg, Row: []Value{String("k"), Int(int64(i)), u}}))
		if tm == 50 {
			mustNil(t, op.Watermark(600)) // fires the merged [0,400)
		}
	}
	var buf bytes.Buffer
	mustNil(t, op.SnapshotKeyGroup(kg, &buf))
	return cfg, aggs, kg, buf.Bytes()
}

func TestWindowRestoreErrors(t *testing.T) {
	cfg, aggs, kg, snap := sampleSnapshot(t)
	in := goldenSchema(t, "int")
	full := state.KeyGroupRange{Start: 0, End: 127}
	tests := []struct {
		name    string
		cfg     WindowConfig
		aggs    []AggConfig
		kg      int
		data    []byte
		prefill bool
		want    error
	}{
		{name: "version", cfg: cfg, aggs: aggs, kg: kg, data: append([]byte{9}, snap[1:]...), want: ErrIncompatibleSnapshot},
		{name: "window kind", cfg: WindowConfig{Kind: WindowTumbling, Size: 100}, aggs: aggs, kg: kg, data: snap, want: ErrIncompatibleSnapshot},
		{name: "aggregates", cfg: cfg, aggs: aggs[:5], kg: kg, data: snap, want: ErrIncompatibleSnapshot},
		{name: "aggregate kind", cfg: cfg, aggs: append(slices.Clone(aggs[:5]), AggConfig{Func: "count", As: "c2"}), kg: kg, data: snap, want: ErrIncompatibleSnapshot},
		{name: "other key group", cfg: cfg, aggs: aggs, kg: (kg + 1) % 128, data: snap, want: ErrIncompatibleSnapshot},
		{name: "gap larger than sessions", cfg: WindowConfig{Kind: WindowSession, Gap: 10000, AllowedLateness: 1000}, aggs: aggs, kg: kg, data: snap, want: ErrCorruptSnapshot},
		{name: "truncated", cfg: cfg, aggs: aggs, kg: kg, data: snap[:len(snap)-1], want: ErrCorruptSnapshot},
		{name: "trailing bytes", cfg: cfg, aggs: aggs, kg: kg, data: append(slices.Clone(snap), 0), want: ErrCorruptSnapshot},
		{name: "group has state", cfg: cfg, aggs: aggs, kg: kg, data: snap, prefill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := NewWindowOperator(tt.cfg, tt.aggs, in, full, &collect{}, nil)
			mustNil(t, err)
			if tt.prefill {
				mustNil(t, op.RestoreKeyGroup(tt.kg, bytes.NewReader(tt.data)))
			}
			before := op.Stats()
			err = op.RestoreKeyGroup(tt.kg, bytes.NewReader(tt.data))
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if op.Stats() != before {
				t.Errorf("a failed restore changed the state: %+v, before %+v", op.Stats(), before)
			}
		})
	}
}

// FuzzWindowRestore feeds arbitrary bytes to the snapshot decoder: it must
// never panic, and whatever it accepts must snapshot to bytes it accepts
// again, and survive firing and purging everything.
func FuzzWindowRestore(f *testing.F) {
	cfg, aggs, kg, snap := sampleSnapshot(f)
	f.Add(snap)
	f.Add(snap[:len(snap)/2])
	f.Add([]byte{})
	f.Add([]byte{windowSnapshotVersion, byte(kindSession), 0})
	in := goldenSchema(f, "int")
	full := state.KeyGroupRange{Start: 0, End: 127}
	f.Fuzz(func(t *testing.T, data []byte) {
		op, err := NewWindowOperator(cfg, aggs, in, full, &collect{}, &collect{})
		mustNil(t, err)
		if err := op.RestoreKeyGroup(kg, bytes.NewReader(data)); err != nil {
			if !errors.Is(err, ErrCorruptSnapshot) && !errors.Is(err, ErrIncompatibleSnapshot) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		var again bytes.Buffer
		mustNil(t, op.SnapshotKeyGroup(kg, &again))
		op2, _ := NewWindowOperator(cfg, aggs, in, full, &collect{}, nil)
		if err := op2.RestoreKeyGroup(kg, bytes.NewReader(again.Bytes())); err != nil {
			t.Fatalf("re-snapshot of an accepted snapshot rejected: %v", err)
		}
		mustNil(t, op.Process(&Record{Time: 10, Key: "k", KeyHash: state.KeyHash("k"), KeyGroup: kg, Row: []Value{String("k"), Int(1), String("x")}}))
		mustNil(t, op.Watermark(math.MaxInt64))
		if s := op.Stats(); s.StateEntries != 0 || s.OpenWindows != 0 {
			t.Fatalf("state left after the final watermark: %+v", s)
		}
	})
}

// A window that fired in an operator with allowed lateness, restored into
// one without, is purged at the next watermark rather than kept forever.
func TestWindowFiredRestoredWithoutLateness(t *testing.T) {
	in := goldenSchema(t, "int")
	kgs := state.KeyGroupRange{Start: 0, End: 127}
	kg := state.KeyGroup("k", 128)
	var out collect
	a, _ := NewWindowOperator(WindowConfig{Kind: WindowTumbling, Size: 10, AllowedLateness: 100}, []AggConfig{{Func: "count"}}, in, kgs, &out, nil)
	mustNil(t, a.Process(&Record{Time: 1, Key: "k", KeyHash: state.KeyHash("k"), KeyGroup: kg, Row: []Value{String("k"), Int(1), Null()}}))
	mustNil(t, a.Watermark(9))
	var snap bytes.Buffer
	mustNil(t, a.SnapshotKeyGroup(kg, &snap))

	b, _ := NewWindowOperator(WindowConfig{Kind: WindowTumbling, Size: 10}, []AggConfig{{Func: "count"}}, in, kgs, &out, nil)
	mustNil(t, b.RestoreKeyGroup(kg, &snap))
	mustNil(t, b.Watermark(9))
	if s := b.Stats(); s.StateEntries != 0 || len(b.panes) != 0 {
		t.Errorf("after the watermark: %d entries in %d windows, want none", s.StateEntries, len(b.panes))
	}
	if len(out.recs) != 1 {
		t.Errorf("%d results, want the one firing before the snapshot", len(out.recs))
	}
}

// Keys that stop arriving are dropped from the key table once they are most
// of it; the keys that remain keep their state and results.
func TestWindowSweepsIdleKeys(t *testing.T) {
	in := goldenSchema(t, "int")
	kgs := state.KeyGroupRange{Start: 0, End: 127}
	var out collect
	op, _ := NewWindowOperator(WindowConfig{Kind: WindowTumbling, Size: 10}, []AggConfig{{Func: "count"}}, in, kgs, &out, nil)
	rec := func(tm int64, key string) *Record {
		return &Record{Time: tm, Key: key, KeyHash: state.KeyHash(key), KeyGroup: state.KeyGroup(key, 128), Row: []Value{String(key), Int(1), Null()}}
	}
	const many = 5000
	for i := range many { // window [0,10): many keys
		mustNil(t, op.Process(rec(int64(i%10), fmt.Sprint("k", i))))
	}
	for w := int64(1); w <= 3; w++ { // later windows: three keys, twice each
		for _, k := range []string{"k1", "k2", "k3", "k1", "k2", "k3"} {
			mustNil(t, op.Process(rec(w*10+1, k)))
		}
		mustNil(t, op.Watermark(w*10-1))
	}
	if op.keys.n > 10 {
		t.Errorf("%d keys in the table after the many went idle, want the 3 active ones", op.keys.n)
	}
	mustNil(t, op.Watermark(1000))
	counts := map[string]int64{}
	for _, r := range out.recs {
		counts[r.Row[2].S] += r.Row[3].Int()
	}
	if len(counts) != many || counts["k1"] != 1+2*3 || counts["k4"] != 1 {
		t.Errorf("%d keys in results, k1 counted %d (want 7), k4 %d (want 1)", len(counts), counts["k1"], counts["k4"])
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	if total != many+3*6 {
		t.Errorf("counts sum to %d, want %d", total, many+3*6)
	}
}

func TestKeyTable(t *testing.T) {
	var kt keyTable
	if kt.get(1, "x") != nil {
		t.Fatal("found a key in an empty table")
	}
	var all []*keyState
	for i := range 10000 {
		k := fmt.Sprint("key-", i)
		h := state.KeyHash(k)
		if i%7 == 0 {
			h = 42 // collisions: probing must compare keys
		}
		ks := &keyState{key: k, hash: h}
		kt.put(ks)
		all = append(all, ks)
	}
	for _, ks := range all {
		if got := kt.get(ks.hash, ks.key); got != ks {
			t.Fatalf("get(%q) = %v", ks.key, got)
		}
	}
	if kt.get(42, "absent") != nil || kt.get(state.KeyHash("absent"), "absent") != nil {
		t.Error("found an absent key")
	}
	kt.reset(2)
	kt.put(all[3])
	if kt.n != 1 || kt.get(all[3].hash, all[3].key) != all[3] || kt.get(all[4].hash, all[4].key) != nil {
		t.Error("reset table wrong")
	}
}

// Key groups moved between the backends at random moments between records
// change nothing in the output, the counters or the state.
func TestWindowMigrationBetweenRecords(t *testing.T) {
	allAggs := []AggConfig{{Func: "count"}, {Func: "sum", Field: "v"}, {Func: "min", Field: "v"},
		{Func: "avg", Field: "v"}, {Func: "countDistinct", Field: "u"}}
	for _, cfg := range []WindowConfig{
		{Kind: WindowTumbling, Size: 1000, AllowedLateness: 500},
		{Kind: WindowTumbling, Size: 700},
		{Kind: WindowSliding, Size: 2000, Slide: 500, AllowedLateness: 300},
	} {
		t.Run(fmt.Sprintf("%s-%d-%d", cfg.Kind, cfg.Size, cfg.AllowedLateness), func(t *testing.T) {
			in := goldenSchema(t, "int")
			gc := goldenCase{Window: cfg, Aggregates: allAggs, LateOutput: true}
			kgs := state.KeyGroupRange{Start: 0, End: 127}
			events := genEvents(uint64(cfg.Size), 3000, 0, 127)
			ref := &windowRun{t: t, gc: gc, in: in, kgs: kgs}
			ref.run(events, false)

			w := &windowRun{t: t, gc: gc, in: in, kgs: kgs, pebble: openTestPebble(t), initial: BackendHeap}
			w.op = w.newOperator()
			keyBy, err := NewKeyBy("key", w.in, goldenMaxParallelism, EmitterFunc(func(r *Record) error { return w.op.Process(r) }))
			mustNil(t, err)
			rng := rand.New(rand.NewPCG(7, uint64(cfg.Size)))
			moves := 0
			for _, l := range events {
				if e := events[rng.IntN(len(events))]; rng.IntN(10) == 0 && e.Watermark == nil {
					kg := state.KeyGroup(e.Key, 128) // a group that holds keys
					to := Backend(rng.IntN(2))
					_, err := w.op.MigrateKeyGroup(kg, to)
					mustNil(t, err)
					moves++
				}
				if l.Watermark != nil {
					w.out = append(w.out, fmt.Sprintf("watermark %d", *l.Watermark))
					w.firing = true
					mustNil(t, w.op.Watermark(*l.Watermark))
					w.firing = false
					w.flushFired()
					continue
				}
				r := l.record(t, in)
				mustNil(t, keyBy.Process(&r))
			}
			b, _ := json.Marshal(w.op.Stats())
			w.out = append(w.out, "stats "+string(b))
			if !slices.Equal(w.out, ref.out) {
				t.Errorf("after %d moves the output differs:\n got:\n%s\nwant:\n%s", moves, strings.Join(w.out, "\n"), strings.Join(ref.out, "\n"))
			}
			onPebble := 0
			for kg := 0; kg < 128; kg++ {
				if w.op.KeyGroupBackend(kg) == BackendPebble {
					onPebble++
				}
			}
			t.Logf("%d moves, %d key groups end on Pebble, %d entries there", moves, onPebble, w.op.PebbleEntries())
		})
	}
}
