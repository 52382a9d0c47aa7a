package monitor

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/monitor/cep"
	"github.com/tidewatch/tidewatch/monitor/rules"
)

const benchJobs = 10_000

// seedSource generates the catalogue's input for many jobs: every job (a
// job master and the worker it hosts) sends the 18 series the catalogue
// reads once per round, rounds 15 s apart. Most jobs are healthy, 5% idle
// (the LOW rules hold partial matches for them) and 5% hot (heap and CPU
// in the HIGH bands, latency and skew up).
type seedSource struct {
	base    []Event // jobs × series, the fields that do not change
	kind    []int   // series index of base[k]
	profile []uint8 // per job: 0 healthy, 1 idle, 2 hot
	rng     uint64
	i       int
}

func newSeedSource(jobs int) *seedSource {
	s := &seedSource{rng: 0x9E3779B97F4A7C15, profile: make([]uint8, jobs)}
	for j := range jobs {
		id := fmt.Sprintf("%032x", j)
		labels := map[string]any{LabelJobName: fmt.Sprintf("job-%d", j)}
		switch j % 20 {
		case 7:
			s.profile[j] = 1
		case 13:
			s.profile[j] = 2
		}
		for k, sd := range healthySeries {
			tm := ""
			if sd.scope == rules.ScopeTaskManager {
				tm = "10.0.0.1:4000-" + id[:6]
			}
			s.base = append(s.base, Event{Scope: sd.scope, Event: cep.Event{JobID: id, TMID: tm, Hostname: "10.0.0.1",
				MetricsName: sd.name, MetricsKey: sd.key, Labels: labels}})
			s.kind = append(s.kind, k)
		}
	}
	return s
}

func (s *seedSource) perRound() int { return len(s.base) }

func (s *seedSource) next(ev *Event) (round int) {
	k := s.i % len(s.base)
	round = s.i / len(s.base)
	s.i++
	s.rng ^= s.rng << 13
	s.rng ^= s.rng >> 7
	s.rng ^= s.rng << 17
	j := float64(s.rng%2001)/1000 - 1 // jitter in [-1, 1]
	*ev = s.base[k]
	ev.Time = traceStart.Add(time.Duration(round) * traceStep)
	p := s.profile[k/len(healthySeries)]
	var v float64
	switch healthySeries[s.kind[k]].name {
	case MetricHeapLoad:
		v = [3]float64{0.40 + 0.03*float64(round%5), 0.05, 0.78}[p] + 0.01*j
	case MetricNonHeapLoad:
		v = [3]float64{0.08, 0.01, 0.30}[p] + 0.005*j
	case MetricCPULoad:
		v = [3]float64{0.30, 0.02, 0.80}[p] + 0.01*j
	case MetricGCPauseMsPerSec:
		v = 1.5 + 0.5*j
	case MetricGCCyclesPerSecond:
		v = 0.3 + 0.05*j
	case MetricRestarts, MetricCheckpointsFailedInc:
		v = 0
	case MetricRunningJobs, MetricTaskManagers, MetricUp:
		v = 1
	case MetricLatencyP99:
		v = [3]float64{0.02, 0.01, 0.5}[p] + 0.005*j
	case MetricRecordsInSkew:
		v = [3]float64{10, 5, 40}[p] + 3*j
	case MetricSourceRecordsPerSec:
		v = 1000 + 15*j
	case MetricSinkRecordsPerSec:
		v = 950 + 15*j
	}
	ev.MetricsValue = v
	return round
}

// countSink counts what it receives.
type countSink struct{ fired, resolved int }

func (c *countSink) Fire(context.Context, Firing)      { c.fired++ }
func (c *countSink) Resolve(context.Context, Resolved) { c.resolved++ }

// seedBench is the warmed-up state of BenchmarkSeedRules, built once per
// process: the testing package calls a benchmark several times with growing
// b.N, and the warm-up (8 million events) need not be repeated.
var seedBench struct {
	once   sync.Once
	e      *Evaluator
	src    *seedSource
	perJob float64
	warm   EvalStats
	err    error
}

// feedSeed gives the evaluator n more events of the source, advancing time
// at every round.
func feedSeed(e *Evaluator, src *seedSource, n int) {
	ctx := context.Background()
	var ev Event
	for range n {
		if src.i%src.perRound() == 0 && src.i > 0 {
			e.AdvanceTo(ctx, traceStart.Add(time.Duration(src.i/src.perRound()-1)*traceStep))
		}
		src.next(&ev)
		e.Process(ctx, ev)
	}
}

// BenchmarkSeedRules runs the whole catalogue over 10,000 jobs (10,000 job
// masters and 10,000 workers, each a partition of every rule of its scope)
// on one goroutine, and reports events/s and the heap the rules hold per
// job (both partitions and their partial matches, all rules).
func BenchmarkSeedRules(b *testing.B) {
	sb := &seedBench
	sb.once.Do(func() {
		set, err := rules.Load(catalogueDir)
		if err != nil {
			sb.err = err
			return
		}
		sb.src = newSeedSource(benchJobs)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		if sb.e, sb.err = NewEvaluator(set, DefaultEvalOptions(), &countSink{}); sb.err != nil {
			return
		}
		// warm up past the longest window (40 samples) so that every
		// partition and the partial matches of the LOW rules exist
		feedSeed(sb.e, sb.src, 45*sb.src.perRound())
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		sb.perJob = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / benchJobs
		sb.warm = sb.e.Stats()
	})
	if sb.err != nil {
		b.Fatal(sb.err)
	}
	before := sb.e.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	feedSeed(sb.e, sb.src, b.N)
	elapsed := time.Since(start)
	b.StopTimer()
	after := sb.e.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(sb.perJob, "B/partition")
	b.ReportMetric(float64(after.Delivered-before.Delivered)/float64(b.N), "deliveries/event")
	b.ReportMetric(float64(sb.warm.PartialMatches)/benchJobs, "partial/partition")
	b.ReportMetric(float64(sb.warm.Partitions)/benchJobs, "rule-partitions/partition")
	if after.Late != 0 || after.ConditionErrors != 0 {
		b.Fatalf("late events or condition errors: %+v", after)
	}
}
