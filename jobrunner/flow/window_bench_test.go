package flow

import (
	"fmt"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/state"
)

// BenchmarkWindowProcessTumblingCount measures a keyed tumbling count over
// 10,000 keys, the hot path of a windowed job, with watermarks trailing by
// 1s so every window fires and is purged: the figure includes state
// creation, timers and firing, amortised per record. Sub-benchmarks vary the
// records per key and window: with 10 most of the cost is creating and
// firing the 10,000 states of each window, with 100 it is mostly adding to an
// existing state.
func BenchmarkWindowProcessTumblingCount(b *testing.B) {
	for _, perKeyWindow := range []int{10, 100} {
		b.Run(fmt.Sprintf("perKeyWindow=%d", perKeyWindow), func(b *testing.B) {
			benchTumblingCount(b, perKeyWindow)
		})
	}
}

func benchTumblingCount(b *testing.B, perKeyWindow int) {
	const (
		nKeys  = 10_000
		maxPar = 128
		perMs  = 10 // records per ms of event time
	)
	windowSize := int64(nKeys * perKeyWindow / perMs)
	in, err := NewSchema([]string{"key"}, []Kind{KindString})
	if err != nil {
		b.Fatal(err)
	}
	var fired int64
	op, err := NewWindowOperator(WindowConfig{Kind: WindowTumbling, Size: windowSize},
		[]AggConfig{{Func: AggCount}}, in, state.KeyGroupRange{Start: 0, End: maxPar - 1},
		EmitterFunc(func(*Record) error { fired++; return nil }), nil)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]Record, nKeys)
	for i := range recs {
		k := fmt.Sprintf("user-%d", i)
		recs[i] = Record{Key: k, KeyHash: state.KeyHash(k), KeyGroup: state.KeyGroup(k, maxPar), Row: []Value{String(k)}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// A stride coprime with nKeys visits keys in a scattered order.
		r := &recs[(i*7919)%nKeys]
		r.Time = int64(i / perMs)
		if err := op.Process(r); err != nil {
			b.Fatal(err)
		}
		if i%10_000 == 9_999 {
			if err := op.Watermark(r.Time - 1_000); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if b.N > 10*int(windowSize)*perMs && fired == 0 {
		b.Fatal("no window fired")
	}
}

// BenchmarkWindowMigrate500k moves a window operator's 500,000 (key, window)
// states from the heap to Pebble and back, one key group per step as a
// subtask does between batches of records, with a batch of 512 records
// processed between steps. It reports the time per full move and the
// longest step (the longest time records wait).
func BenchmarkWindowMigrate500k(b *testing.B) {
	const (
		nKeys  = 500_000
		maxPar = 128
	)
	in, err := NewSchema([]string{"key"}, []Kind{KindString})
	if err != nil {
		b.Fatal(err)
	}
	op, err := NewWindowOperator(WindowConfig{Kind: WindowTumbling, Size: 1 << 40},
		[]AggConfig{{Func: AggCount}}, in, state.KeyGroupRange{Start: 0, End: maxPar - 1},
		EmitterFunc(func(*Record) error { return nil }), nil)
	if err != nil {
		b.Fatal(err)
	}
	db := openTestPebble(b)
	if err := op.UsePebble(db, 1, BackendHeap); err != nil {
		b.Fatal(err)
	}
	recs := make([]Record, nKeys)
	for i := range recs {
		k := fmt.Sprintf("user-%d", i)
		recs[i] = Record{Time: 1, Key: k, KeyHash: state.KeyHash(k), KeyGroup: state.KeyGroup(k, maxPar), Row: []Value{String(k)}}
		if err := op.Process(&recs[i]); err != nil {
			b.Fatal(err)
		}
	}
	next := 0
	produce := func() {
		for range 512 {
			if err := op.Process(&recs[next%nKeys]); err != nil {
				b.Fatal(err)
			}
			next += 7919
		}
	}
	var total time.Duration
	var stall time.Duration
	moves := 0
	b.ResetTimer()
	for range b.N {
		for _, to := range []Backend{BackendPebble, BackendHeap} {
			for kg := range maxPar {
				step, err := op.MigrateKeyGroup(kg, to)
				if err != nil {
					b.Fatal(err)
				}
				total += step.Took
				stall = max(stall, step.Took)
				produce()
			}
			moves++
		}
	}
	b.StopTimer()
	if got := op.StateEntries(); got != nKeys {
		b.Fatalf("%d entries after the moves, want %d", got, nKeys)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(moves), "ms/migration")
	b.ReportMetric(float64(stall.Microseconds())/1000, "max-stall-ms")
}
