package flow

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tidewatch/tidewatch/state"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenCase is testdata/windows/<case>/config.json.
type goldenCase struct {
	Comment    string       `json:"comment"`
	Window     WindowConfig `json:"window"`
	Aggregates []AggConfig  `json:"aggregates"`
	// ValueKind is the kind of field v: int (default) or float.
	ValueKind string `json:"valueKind"`
	// LateOutput connects a late emitter; without it late records are
	// dropped and counted.
	LateOutput bool `json:"lateOutput"`
}

// inputLine is one line of input.jsonl: a record or a watermark.
type inputLine struct {
	T         *int64      `json:"t"`
	Key       string      `json:"key"`
	V         json.Number `json:"v"`
	U         *string     `json:"u"`
	Watermark *int64      `json:"watermark"`
}

const goldenMaxParallelism = 128

// goldenSchema is key, v (int or float), u (string, null when absent).
func goldenSchema(t testing.TB, valueKind string) *Schema {
	t.Helper()
	vk := KindInt
	if valueKind == "float" {
		vk = KindFloat
	}
	s, err := NewSchema([]string{"key", "v", "u"}, []Kind{KindString, vk, KindString})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func parseInput(t testing.TB, path string, in *Schema) []inputLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []inputLine
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue // comments explain the expected output to the reviewer
		}
		var l inputLine
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		if (l.T == nil) == (l.Watermark == nil) {
			t.Fatalf("%s:%d: want either t or watermark", path, n)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func (l inputLine) record(t testing.TB, in *Schema) Record {
	t.Helper()
	r := Record{Time: *l.T, Row: []Value{String(l.Key), Null(), Null()}}
	if l.V != "" {
		if in.Kinds[1] == KindInt {
			i, err := l.V.Int64()
			if err != nil {
				t.Fatalf("v %s: %v", l.V, err)
			}
			r.Row[1] = Int(i)
		} else {
			f, err := l.V.Float64()
			if err != nil {
				t.Fatalf("v %s: %v", l.V, err)
			}
			r.Row[1] = Float(f)
		}
	}
	if l.U != nil {
		r.Row[2] = String(*l.U)
	}
	return r
}

func formatValue(v Value) string {
	switch v.Kind {
	case KindInt:
		return strconv.FormatInt(v.Int(), 10)
	case KindFloat:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case KindString:
		b, _ := json.Marshal(v.S)
		return string(b)
	case KindBool:
		return strconv.FormatBool(v.Int() != 0)
	}
	return "null"
}

// formatRecord writes a record as a JSON object in schema order, optionally
// led by its time.
func formatRecord(s *Schema, r *Record, withTime bool) string {
	var b strings.Builder
	b.WriteByte('{')
	if withTime {
		fmt.Fprintf(&b, `"t":%d`, r.Time)
	}
	for i, n := range s.Names {
		if i > 0 || withTime {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", n, formatValue(r.Row[i]))
	}
	b.WriteByte('}')
	return b.String()
}

// windowRun drives a key-by and a window operator over a case's input and
// records what they emit. With restoreEachWatermark the operator is
// snapshotted after every watermark line and replaced by a fresh one
// restored from the snapshots.
type windowRun struct {
	t        testing.TB
	gc       goldenCase
	in       *Schema
	kgs      state.KeyGroupRange
	op       *WindowOperator
	out      []string
	firing   bool
	fired    []firedResult
	restores int

	// With pebble set, operators get a Pebble store with every key group
	// on initial; migrate moves every key group to the other backend after
	// each watermark.
	pebble  *state.PebbleDB
	initial Backend
	migrate bool
	opID    state.StateID
}

// firedResult is a result emitted by a watermark. The results of one
// watermark are written in (window start, window end, key) order: within a
// key group the operator fires keys in arrival order, which a restore
// changes.
type firedResult struct {
	start, end int64
	key, line  string
}

func (w *windowRun) flushFired() {
	slices.SortFunc(w.fired, func(a, b firedResult) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.end, b.end), strings.Compare(a.key, b.key))
	})
	for _, f := range w.fired {
		w.out = append(w.out, f.line)
	}
	w.fired = w.fired[:0]
}

func (w *windowRun) newOperator() *WindowOperator {
	w.t.Helper()
	var late Emitter
	if w.gc.LateOutput {
		late = EmitterFunc(func(r *Record) error {
			w.out = append(w.out, "late "+formatRecord(w.in, r, true))
			return nil
		})
	}
	var op *WindowOperator
	out := EmitterFunc(func(r *Record) error {
		if r.Time != r.Row[1].Int()-1 || r.Key != r.Row[2].S || r.KeyGroup != state.KeyGroup(r.Key, goldenMaxParallelism) {
			w.t.Errorf("result record time/key/group %d/%q/%d do not match %s", r.Time, r.Key, r.KeyGroup, formatRecord(op.OutSchema(), r, false))
		}
		if w.firing {
			w.fired = append(w.fired, firedResult{r.Row[0].Int(), r.Row[1].Int(), r.Key, "fire " + formatRecord(op.OutSchema(), r, false)})
			return nil
		}
		w.out = append(w.out, "refire "+formatRecord(op.OutSchema(), r, false))
		return nil
	})
	op, err := NewWindowOperator(w.gc.Window, w.gc.Aggregates, w.in, w.kgs, out, late)
	if err != nil {
		w.t.Fatal(err)
	}
	if w.pebble != nil {
		w.opID++ // a fresh key space for each operator of the run
		if err := op.UsePebble(w.pebble, w.opID, w.initial); err != nil {
			w.t.Fatal(err)
		}
	}
	return op
}

// migrateAll moves every key group to the backend it is not on.
func (w *windowRun) migrateAll() {
	w.t.Helper()
	for kg := w.kgs.Start; kg <= w.kgs.End; kg++ {
		to := BackendPebble
		if w.op.KeyGroupBackend(kg) == BackendPebble {
			to = BackendHeap
		}
		if _, err := w.op.MigrateKeyGroup(kg, to); err != nil {
			w.t.Fatalf("migrate key group %d to %s: %v", kg, to, err)
		}
	}
}

func (w *windowRun) run(lines []inputLine, restoreEachWatermark bool) {
	w.t.Helper()
	w.op = w.newOperator()
	keyBy, err := NewKeyBy("key", w.in, goldenMaxParallelism, EmitterFunc(func(r *Record) error {
		return w.op.Process(r)
	}))
	if err != nil {
		w.t.Fatal(err)
	}
	for _, l := range lines {
		if l.Watermark != nil {
			w.out = append(w.out, fmt.Sprintf("watermark %d", *l.Watermark))
			w.firing = true
			if err := w.op.Watermark(*l.Watermark); err != nil {
				w.t.Fatal(err)
			}
			w.firing = false
			w.flushFired()
			if w.migrate {
				w.migrateAll()
			}
			if restoreEachWatermark {
				w.restore()
			}
			continue
		}
		r := l.record(w.t, w.in)
		if err := keyBy.Process(&r); err != nil {
			w.t.Fatal(err)
		}
	}
	s := w.op.Stats()
	if w.op.panes != nil {
		cleanups := 0
		for _, b := range w.op.timers.buckets {
			for _, e := range b.entries {
				if e.kg == paneTimer && e.flags&timerCleanup != 0 {
					cleanups++
				}
			}
		}
		if cleanups != len(w.op.panes) {
			w.t.Errorf("%d cleanup timers queued for %d windows: some state would never be purged", cleanups, len(w.op.panes))
		}
	} else if w.op.timers.len() < int(s.StateEntries) {
		w.t.Errorf("%d timers queued for %d state entries: some state would never be purged", w.op.timers.len(), s.StateEntries)
	}
	if restoreEachWatermark {
		// Counters of events are not state; only the state gauges survive.
		w.out = append(w.out, fmt.Sprintf("state open=%d entries=%d", s.OpenWindows, s.StateEntries))
		return
	}
	b, _ := json.Marshal(s)
	w.out = append(w.out, "stats "+string(b))
}

// restore replaces the operator by one restored from its snapshots, and
// checks the snapshots are canonical (the restored operator writes the same
// bytes).
func (w *windowRun) restore() {
	w.t.Helper()
	next := w.newOperator()
	for kg := w.kgs.Start; kg <= w.kgs.End; kg++ {
		var a bytes.Buffer
		if err := w.op.SnapshotKeyGroup(kg, &a); err != nil {
			w.t.Fatal(err)
		}
		if err := next.RestoreKeyGroup(kg, bytes.NewReader(a.Bytes())); err != nil {
			w.t.Fatalf("restore key group %d: %v", kg, err)
		}
		var b bytes.Buffer
		if err := next.SnapshotKeyGroup(kg, &b); err != nil {
			w.t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			w.t.Fatalf("key group %d: snapshot of the restored operator differs", kg)
		}
	}
	if err := next.Watermark(w.op.CurrentWatermark()); err != nil {
		w.t.Fatal(err)
	}
	w.op = next
	w.restores++
}

// TestWindowGolden runs every case under testdata/windows and compares the
// emitted results, late records and counters with expected.golden. Each case
// runs twice more: restored from snapshots after every watermark, which
// must emit exactly the same.
func TestWindowGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/windows/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no cases under testdata/windows")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var gc goldenCase
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&gc); err != nil {
				t.Fatalf("config.json: %v", err)
			}
			in := goldenSchema(t, gc.ValueKind)
			lines := parseInput(t, filepath.Join(dir, "input.jsonl"), in)
			full := state.KeyGroupRange{Start: 0, End: goldenMaxParallelism - 1}

			plain := &windowRun{t: t, gc: gc, in: in, kgs: full}
			plain.run(lines, false)
			got := strings.Join(plain.out, "\n") + "\n"

			golden := filepath.Join(dir, "expected.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run with -update and review the diff)\n got:\n%s\nwant:\n%s", golden, got, want)
			}

			// The same on the Pebble backend, and with every key group moved
			// between the backends after each watermark.
			if gc.Window.Kind != WindowSession {
				db := openTestPebble(t)
				for _, variant := range []*windowRun{
					{t: t, gc: gc, in: in, kgs: full, pebble: db, initial: BackendPebble, opID: 10},
					{t: t, gc: gc, in: in, kgs: full, pebble: db, initial: BackendHeap, migrate: true, opID: 20},
					{t: t, gc: gc, in: in, kgs: full, pebble: db, initial: BackendPebble, migrate: true, opID: 30},
				} {
					variant.run(lines, false)
					if !slices.Equal(variant.out, plain.out) {
						t.Errorf("initial %s, migrating %v: output differs:\n got:\n%s\nwant:\n%s", variant.initial, variant.migrate,
							strings.Join(variant.out, "\n"), strings.Join(plain.out, "\n"))
					}
				}
				onPebble := &windowRun{t: t, gc: gc, in: in, kgs: full, pebble: db, initial: BackendPebble, opID: 100}
				onPebble.run(lines, true)
				if s := plain.op.Stats(); onPebble.out[len(onPebble.out)-1] != fmt.Sprintf("state open=%d entries=%d", s.OpenWindows, s.StateEntries) {
					t.Errorf("on Pebble, restored after every watermark: %s", onPebble.out[len(onPebble.out)-1])
				}
			}

			restored := &windowRun{t: t, gc: gc, in: in, kgs: full}
			restored.run(lines, true)
			s := plain.op.Stats()
			want2 := append(slices.Clone(plain.out[:len(plain.out)-1]),
				fmt.Sprintf("state open=%d entries=%d", s.OpenWindows, s.StateEntries))
			if !slices.Equal(restored.out, want2) {
				t.Errorf("restored after every watermark (%d restores), output differs:\n got:\n%s\nwant:\n%s",
					restored.restores, strings.Join(restored.out, "\n"), strings.Join(want2, "\n"))
			}
		})
	}
}

func openTestPebble(t testing.TB) *state.PebbleDB {
	t.Helper()
	db, err := state.OpenPebble(filepath.Join(t.TempDir(), "pebble"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
