package jobrunner

import (
	"testing"
	"time"
)

func TestDatagenDeterministic(t *testing.T) {
	spec := DatagenSpec{Rate: 250, Keys: 13, Seed: 42, Disorder: 300 * time.Millisecond}
	a := newDatagen(spec, 1_700_000_000_000)
	var first []Record
	for range 1000 {
		first = append(first, a.next())
	}
	// A fresh generator repositioned at an offset replays the same records.
	b := newDatagen(spec, 1_700_000_000_000)
	b.offset = 400
	for i := 400; i < 1000; i++ {
		if r := b.next(); r != first[i] {
			t.Fatalf("record %d after reposition = %+v, first run %+v", i, r, first[i])
		}
	}
	keys := map[string]bool{}
	for i, r := range first {
		keys[r.Key] = true
		base := int64(1_700_000_000_000) + int64(i)*1000/250
		if r.TS > base || r.TS < base-300 {
			t.Fatalf("record %d ts %d outside [base-300, base] = [%d, %d]", i, r.TS, base-300, base)
		}
		if r.Value < 0 || r.Value >= 100 {
			t.Fatalf("record %d value %v outside [0, 100)", i, r.Value)
		}
	}
	if len(keys) != 13 {
		t.Errorf("saw %d distinct keys, want 13", len(keys))
	}
	// Another seed gives another sequence.
	c := newDatagen(DatagenSpec{Rate: 250, Keys: 13, Seed: 43}, 1_700_000_000_000)
	same := 0
	for i := range 100 {
		if c.record(int64(i)).Key == first[i].Key {
			same++
		}
	}
	if same > 30 {
		t.Errorf("seed 43 matched %d/100 keys of seed 42", same)
	}
}

func TestDatagenTimestamps(t *testing.T) {
	tests := []struct {
		rate   int64
		i      int64
		wantMs int64
	}{
		{rate: 1000, i: 5, wantMs: 5},
		{rate: 200, i: 3, wantMs: 15},
		{rate: 3, i: 4, wantMs: 1333},
		{rate: 0, i: 7, wantMs: 7},                      // as fast as possible: 1 ms apart
		{rate: 1, i: 1 << 50, wantMs: (1 << 50) * 1000}, // no overflow of i*1000 on the way
	}
	for _, tc := range tests {
		g := newDatagen(DatagenSpec{Rate: tc.rate, Keys: 1}, 0)
		if got := g.record(tc.i).TS; got != tc.wantMs {
			t.Errorf("rate %d record %d ts = %d, want %d", tc.rate, tc.i, got, tc.wantMs)
		}
	}
}

func TestPacer(t *testing.T) {
	base := time.Unix(1000, 0)
	p := &pacer{rate: 3, baseWall: base, baseOffset: 10}
	tests := []struct {
		after time.Duration
		due   int64
	}{
		{0, 10}, {333 * time.Millisecond, 10}, {334 * time.Millisecond, 11}, {time.Second, 13}, {-time.Second, 10},
	}
	for _, tc := range tests {
		if got := p.due(base.Add(tc.after)); got != tc.due {
			t.Errorf("due(+%v) = %d, want %d", tc.after, got, tc.due)
		}
	}
	for off := int64(10); off < 20; off++ {
		at := p.nextAt(off)
		if p.due(at) <= off {
			t.Errorf("at nextAt(%d) = +%v, due = %d: record not due", off, at.Sub(base), p.due(at))
		}
		if p.due(at.Add(-time.Nanosecond)) > off {
			t.Errorf("nextAt(%d) = +%v is later than necessary", off, at.Sub(base))
		}
	}
}
