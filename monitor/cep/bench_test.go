package cep

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

const benchPartitions = 10_000

// benchSource generates a metric stream: every partition (job, worker) sends
// one sample per round, rounds 10 s apart, values from a cheap PRNG; hot is
// the share of samples (in 1/1000) above 0.9.
type benchSource struct {
	jobs, tms []string
	rng       uint64
	hot       uint64
	i         int
}

func newBenchSource(hot uint64) *benchSource {
	s := &benchSource{rng: 0x9E3779B97F4A7C15, hot: hot}
	for p := 0; p < benchPartitions; p++ {
		s.jobs = append(s.jobs, fmt.Sprintf("job-%d", p/10))
		s.tms = append(s.tms, fmt.Sprintf("tm-%d", p%10))
	}
	return s
}

func (s *benchSource) next(ev *Event) {
	p := s.i % benchPartitions
	round := s.i / benchPartitions
	s.i++
	s.rng ^= s.rng << 13
	s.rng ^= s.rng >> 7
	s.rng ^= s.rng << 17
	v := float64(s.rng%900) / 1000 // below 0.9
	if s.rng>>32%1000 < s.hot {
		v = 0.9 + float64(s.rng%100)/1000
	}
	*ev = Event{
		Time:         t0.Add(time.Duration(round) * 10 * time.Second),
		JobID:        s.jobs[p],
		TMID:         s.tms[p],
		Hostname:     "host",
		MetricsName:  "heap_used_ratio",
		MetricsKey:   "heap",
		MetricsValue: v,
	}
}

// BenchmarkNFA runs typical monitoring patterns over 10,000 partitions and
// reports events/s and the heap held per partition.
func BenchmarkNFA(b *testing.B) {
	patterns := []struct {
		name string
		p    func() *Pattern
		hot  uint64
	}{
		{
			// value > threshold, 10 times within 5 minutes, per job and worker
			name: "threshold10x5m",
			p: func() *Pattern {
				return Begin("e1").Where(`metricsName == "heap_used_ratio" && metricsValue > 0.9`).
					Times(10).Within(5 * time.Minute).Skip(SkipPastLastEvent())
			},
			hot: 20,
		},
		{
			// a high sample followed by a 10% higher one of the same job
			name: "followedByRef",
			p: func() *Pattern {
				return Begin("e1").Where(`metricsValue > 0.8`).
					FollowedBy("e2").Where(`jobID == e1.jobID && metricsValue > e1.metricsValue * 1.1`).
					Within(5 * time.Minute)
			},
			hot: 20,
		},
		{
			// a high sample not followed by a low one within two minutes
			name: "notFollowedBy2m",
			p: func() *Pattern {
				return Begin("e1").Where(`metricsValue > 0.95`).
					NotFollowedBy("e2").Where(`metricsValue < 0.5`).Within(2 * time.Minute)
			},
			hot: 20,
		},
	}
	for _, pc := range patterns {
		for _, lateness := range []time.Duration{0, 15 * time.Second} {
			b.Run(fmt.Sprintf("%s/lateness=%v", pc.name, lateness), func(b *testing.B) {
				nfa := pc.p().MustCompile()
				opts := DefaultOptions()
				opts.AllowedLateness = lateness
				matches := 0
				src := newBenchSource(pc.hot)
				var ev Event

				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				e, err := NewEngine(nfa, opts, func(Match) { matches++ })
				if err != nil {
					b.Fatal(err)
				}
				// warm up: a few rounds so every partition exists
				for range 5 * benchPartitions {
					src.next(&ev)
					e.Process(ev)
				}
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				perPartition := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / benchPartitions

				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					src.next(&ev)
					e.Process(ev)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
				b.ReportMetric(perPartition, "B/partition")
				st := e.Stats()
				if st.Late != 0 {
					b.Fatalf("late events in an in-order stream: %+v", st)
				}
				b.ReportMetric(float64(st.PartialMatches)/benchPartitions, "partial/partition")
				runtime.KeepAlive(e)
			})
		}
	}
}
