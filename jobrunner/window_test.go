package jobrunner

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestWindowStart(t *testing.T) {
	w := newTumblingCount(1000)
	tests := []struct{ ts, want int64 }{
		{0, 0}, {999, 0}, {1000, 1000}, {1999, 1000}, {-1, -1000}, {-1000, -1000}, {-1001, -2000},
	}
	for _, tc := range tests {
		if got := w.windowStart(tc.ts); got != tc.want {
			t.Errorf("windowStart(%d) = %d, want %d", tc.ts, got, tc.want)
		}
	}
}

func TestBoundedOutOfOrderness(t *testing.T) {
	g := newBoundedOutOfOrderness(200)
	if g.current() != watermarkNone {
		t.Fatalf("watermark before any record = %d", g.current())
	}
	for _, ts := range []int64{1000, 900, 1500, 1200} {
		g.observe(ts)
	}
	if got, want := g.current(), int64(1500-200-1); got != want {
		t.Errorf("watermark = %d, want %d", got, want)
	}
}

// runWindow feeds (key, ts) records through watermark generation and the
// window operator like the pipeline does, then fires the rest with the
// final watermark.
func runWindow(t *testing.T, sizeMs, delayMs int64, recs []Record) (out []WindowResult, late int) {
	t.Helper()
	w := newTumblingCount(sizeMs)
	g := newBoundedOutOfOrderness(delayMs)
	wm := int64(watermarkNone)
	emit := func(r WindowResult) error { out = append(out, r); return nil }
	for _, r := range recs {
		if !w.add(r.Key, r.TS, wm) {
			late++
		}
		g.observe(r.TS)
		if c := g.current(); c > wm {
			wm = c
			if err := w.advance(wm, emit); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.advance(watermarkMax, emit); err != nil {
		t.Fatal(err)
	}
	return out, late
}

func TestTumblingCountOutOfOrder(t *testing.T) {
	tests := []struct {
		name     string
		delayMs  int64
		recs     []Record
		want     []WindowResult
		wantLate int
	}{
		{
			name:    "in order",
			delayMs: 0,
			recs:    []Record{{Key: "a", TS: 100}, {Key: "b", TS: 200}, {Key: "a", TS: 900}, {Key: "a", TS: 1000}},
			want: []WindowResult{
				{Start: 0, End: 1000, Key: "a", Count: 2}, {Start: 0, End: 1000, Key: "b", Count: 1},
				{Start: 1000, End: 2000, Key: "a", Count: 1},
			},
		},
		{
			name:    "out of order within bound is counted",
			delayMs: 500,
			// 1200 moves the watermark to 699: window [0,1000) stays open for 950 and 400.
			recs: []Record{{Key: "a", TS: 100}, {Key: "b", TS: 1200}, {Key: "a", TS: 950}, {Key: "b", TS: 400}, {Key: "a", TS: 2100}},
			want: []WindowResult{
				{Start: 0, End: 1000, Key: "a", Count: 2}, {Start: 0, End: 1000, Key: "b", Count: 1},
				{Start: 1000, End: 2000, Key: "b", Count: 1},
				{Start: 2000, End: 3000, Key: "a", Count: 1},
			},
		},
		{
			name:    "late record after window fired is dropped",
			delayMs: 100,
			// 1200 → watermark 1099 ≥ 999 fires [0,1000); 500 is then late.
			recs: []Record{{Key: "a", TS: 100}, {Key: "a", TS: 1200}, {Key: "a", TS: 500}, {Key: "a", TS: 1100}},
			want: []WindowResult{
				{Start: 0, End: 1000, Key: "a", Count: 1},
				{Start: 1000, End: 2000, Key: "a", Count: 2},
			},
			wantLate: 1,
		},
		{
			name:    "record at window max timestamp equal to watermark is late",
			delayMs: 0,
			// 1000 → watermark 999 fires [0,1000); 999 belongs to it and is late.
			recs:     []Record{{Key: "a", TS: 1000}, {Key: "a", TS: 999}},
			want:     []WindowResult{{Start: 1000, End: 2000, Key: "a", Count: 1}},
			wantLate: 1,
		},
		{
			name:    "windows opened out of order fire in order",
			delayMs: 5000,
			recs:    []Record{{Key: "x", TS: 3500}, {Key: "x", TS: 1500}, {Key: "y", TS: 2500}, {Key: "x", TS: 500}},
			want: []WindowResult{
				{Start: 0, End: 1000, Key: "x", Count: 1},
				{Start: 1000, End: 2000, Key: "x", Count: 1},
				{Start: 2000, End: 3000, Key: "y", Count: 1},
				{Start: 3000, End: 4000, Key: "x", Count: 1},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, late := runWindow(t, 1000, tc.delayMs, tc.recs)
			if !slices.Equal(got, tc.want) {
				t.Errorf("results\n got: %v\nwant: %v", got, tc.want)
			}
			if late != tc.wantLate {
				t.Errorf("late = %d, want %d", late, tc.wantLate)
			}
		})
	}
}

func TestTumblingCountSnapshotRestore(t *testing.T) {
	w := newTumblingCount(1000)
	for _, r := range []Record{{Key: "b", TS: 1500}, {Key: "a", TS: 1600}, {Key: "a", TS: 200}, {Key: "c", TS: 2100}} {
		w.add(r.Key, r.TS, watermarkNone)
	}
	b, err := w.snapshot(42, 2100)
	if err != nil {
		t.Fatal(err)
	}
	w2 := newTumblingCount(1000)
	wm, maxTs, err := w2.restore(b)
	if err != nil {
		t.Fatal(err)
	}
	if wm != 42 || maxTs != 2100 {
		t.Errorf("restored watermark state = %d, %d", wm, maxTs)
	}
	var a, c []WindowResult
	w.advance(math.MaxInt64, func(r WindowResult) error { a = append(a, r); return nil })
	w2.advance(math.MaxInt64, func(r WindowResult) error { c = append(c, r); return nil })
	if len(a) != 4 || !slices.Equal(a, c) {
		t.Errorf("restored operator fired %v, original %v", c, a)
	}

	if _, _, err := newTumblingCount(500).restore(b); !errors.Is(err, ErrIncompatibleCheckpoint) {
		t.Errorf("restore with another window size: err = %v, want ErrIncompatibleCheckpoint", err)
	}
}
