package jobrunner

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/tidewatch/tidewatch/jobrunner/connectors"
	"github.com/tidewatch/tidewatch/jobrunner/flow"
	"github.com/tidewatch/tidewatch/state"
)

const (
	benchRecords = 2_000_000
	benchKeys    = 1000
	benchWindow  = 1000 // ms of event time: 1000 records per window at rate 0
)

// discardSink sums the counts it is given (field 3 of a window result).
type discardSink struct{ n int64 }

func (d *discardSink) Emit(r *flow.Record) error      { d.n += r.Row[3].Int(); return nil }
func (d *discardSink) Snapshot(int64) ([]byte, error) { return []byte{}, nil }
func (d *discardSink) Commit(int64) error             { return nil }
func (d *discardSink) Close() error                   { return nil }
func benchDatagen(b *testing.B) flow.SourceFactory {
	f, err := connectors.NewDatagenSource(connectors.DatagenConfig{Keys: benchKeys, Count: benchRecords, Seed: 1, StartTime: 1})
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkKeyedWindowCount runs a bounded datagen job through key-by and a
// keyed tumbling count on the heap backend, on the engine at parallelism 1.
func BenchmarkKeyedWindowCount(b *testing.B) {
	spec, err := ParseSpec([]byte(`
name: bench
source: {type: datagen, datagen: {keys: 1000}}
keyBy: key
window: {type: tumbling, size: 1s}
aggregate: count
sink: {type: stdout}
`), "bench")
	if err != nil {
		b.Fatal(err)
	}
	ops, err := compileOperators(spec, connectors.DatagenSchema())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sink := &discardSink{}
		plan := flow.Plan{
			MaxParallelism: 128, SourceParallelism: 1, Source: benchDatagen(b), KeyedParallelism: 1,
			Chain: func(out flow.Emitter) (flow.Emitter, error) { return ops.stages[0](out) },
			Keyed: func(kgs state.KeyGroupRange, out, late flow.Emitter) (flow.KeyedOperator, error) {
				return flow.NewWindowOperator(ops.window, ops.aggs, ops.windowIn, kgs, out, late)
			},
			Sink: func(int, int, []byte) (flow.Sink, error) { return sink, nil },
		}
		e, err := flow.Start(context.Background(), plan, nil)
		if err != nil {
			b.Fatal(err)
		}
		<-e.SourcesFinished()
		e.Finish()
		<-e.Done()
		if err := e.Err(); err != nil {
			b.Fatal(err)
		}
		if sink.n != benchRecords {
			b.Fatalf("window counts sum to %d, want %d", sink.n, benchRecords)
		}
	}
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkKeyedWindowCountPlainLoop is the baseline: the same records from
// the same generator, counted per (window, key) in a Go map by a plain loop.
// The records come in time order, so the loop keeps one map for the current
// window and emits it when the next window starts: the fastest simple loop.
func BenchmarkKeyedWindowCountPlainLoop(b *testing.B) {
	var results int64
	for i := 0; i < b.N; i++ {
		src, err := benchDatagen(b)(0, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		counts := map[string]int64{}
		cur := int64(-1)
		buf := make([]flow.Record, 0, 1024)
		for {
			recs, err := src.Read(context.Background(), buf[:0], 1024)
			for j := range recs {
				t := recs[j].Time
				if w := t - t%benchWindow; w != cur {
					for _, n := range counts {
						results += n
					}
					clear(counts)
					cur = w
				}
				counts[recs[j].Row[0].S]++
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		for _, n := range counts {
			results += n
		}
	}
	if results != benchRecords*int64(b.N) {
		b.Fatalf("counts sum to %d, want %d", results, benchRecords*int64(b.N))
	}
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
