package flow

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPaneListMatchesASlice drives a paneList and a plain slice with the
// same random adds, prefix drops, filters and resets, and compares them.
func TestPaneListMatchesASlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	ks := &keyState{}
	entry := func(i int) paneEntry { return paneEntry{ks: ks, kg: int32(i)} }
	var l paneList
	var want []int32
	got := func() []int32 {
		var out []int32
		for _, c := range l.chunks {
			for _, pe := range c {
				out = append(out, pe.kg)
			}
		}
		return out
	}
	next := 0
	for step := range 2000 {
		switch op := rng.IntN(10); {
		case op < 6:
			for range rng.IntN(3 * paneChunk) {
				l.add(entry(next))
				want = append(want, int32(next))
				next++
			}
		case op < 7 && len(want) > 0:
			n := rng.IntN(len(want) + 1)
			l.dropFirst(n)
			want = want[n:]
		case op < 9:
			m := int32(rng.IntN(5) + 2)
			l.keep(func(pe paneEntry) bool { return pe.kg%m != 0 })
			want = slices.DeleteFunc(want, func(v int32) bool { return v%m == 0 })
		default:
			l.reset()
			want = want[:0]
		}
		if g := got(); !slices.Equal(g, want) || l.len() != len(want) {
			t.Fatalf("step %d: list has %d entries (len %d), want %d", step, len(g), l.len(), len(want))
		}
		for k, c := range l.chunks {
			if len(c) > paneChunk {
				t.Fatalf("step %d: chunk %d holds %d entries", step, k, len(c))
			}
		}
	}
}
