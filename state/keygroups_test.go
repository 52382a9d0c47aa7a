package state

import (
	"fmt"
	"testing"
)

func TestKeyGroupAssignmentCoversEveryGroupOnce(t *testing.T) {
	for _, maxP := range []int{1, 7, 128, 1000} {
		for p := 1; p <= maxP && p <= 33; p++ {
			next := 0
			for i := 0; i < p; i++ {
				r := RangeForSubtask(maxP, p, i)
				if r.Start != next || r.End < r.Start {
					t.Fatalf("maxP %d p %d subtask %d: range %s, want start %d", maxP, p, i, r, next)
				}
				for kg := r.Start; kg <= r.End; kg++ {
					if got := SubtaskForKeyGroup(maxP, p, kg); got != i {
						t.Fatalf("maxP %d p %d: key group %d owned by %d, assigned to %d", maxP, p, kg, i, got)
					}
				}
				next = r.End + 1
			}
			if next != maxP {
				t.Fatalf("maxP %d p %d: ranges end at %d", maxP, p, next)
			}
		}
	}
}

func TestKeyGroupIsStableAndSpread(t *testing.T) {
	// Stable across processes and releases: checkpoints depend on it.
	for key, want := range map[string]int{"k0": 42, "k17": 17, "user-42": 1, "": 25} {
		if got := KeyGroup(key, 128); got != want {
			t.Errorf("KeyGroup(%q, 128) = %d, want %d", key, got, want)
		}
	}
	counts := make([]int, 128)
	for i := 0; i < 128000; i++ {
		counts[KeyGroup(fmt.Sprintf("user-%d", i), 128)]++
	}
	for kg, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("key group %d has %d of 128000 keys", kg, n)
		}
	}
}
