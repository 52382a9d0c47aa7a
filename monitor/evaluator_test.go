package monitor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/monitor/cep"
	"github.com/tidewatch/tidewatch/monitor/rules"
)

// TestGuardsChangeNothing runs the catalogue over random metrics that keep
// crossing its thresholds, once with the guards and once delivering every
// event, and expects the same firings and resolutions in the same order.
func TestGuardsChangeNothing(t *testing.T) {
	set := loadCatalogue(t)
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			guarded, plain := &Recorder{}, &Recorder{}
			eg, err := NewEvaluator(set, DefaultEvalOptions(), guarded)
			if err != nil {
				t.Fatal(err)
			}
			ep := &Evaluator{opts: DefaultEvalOptions(), sink: plain, ctx: context.Background(), noGuards: true}
			if err := ep.SetRules(context.Background(), set); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(seed, 7))
			// interesting values of every metric: around every threshold
			levels := map[string][]float64{
				MetricHeapLoad:             {0.05, 0.09, 0.11, 0.45, 0.55, 0.65, 0.71, 0.76, 0.8, 0.84, 0.86, 0.95},
				MetricNonHeapLoad:          {0.01, 0.03, 0.2, 0.36, 0.45, 0.51, 0.7},
				MetricCPULoad:              {0.01, 0.06, 0.3, 0.69, 0.75, 0.89, 0.91, 1},
				MetricGCPauseMsPerSec:      {1, 19, 21, 40},
				MetricGCCyclesPerSecond:    {0, 0.3, 0.7, 1, 2.1, 3, 9},
				MetricRestarts:             {0, 1, 2},
				MetricRunningJobs:          {0, 1},
				MetricTaskManagers:         {0, 1, 2},
				MetricCheckpointsFailedInc: {0, 0, 0, 1, 2},
				MetricLatencyP99:           {0.01, 0.9, 1.1, 3},
				MetricRecordsInSkew:        {5, 49, 51, 80},
				MetricSourceRecordsPerSec:  {0.5, 100, 300, 500, 700, 900, 1000},
				MetricSinkRecordsPerSec:    {0.5, 100, 300, 500, 700, 900, 1000},
				MetricUp:                   {1},
			}
			const jobs = 6
			cur := map[string]float64{}
			for round := range 600 {
				at := traceStart.Add(time.Duration(round) * traceStep)
				eg.AdvanceTo(context.Background(), at.Add(-1))
				ep.AdvanceTo(context.Background(), at.Add(-1))
				for j := range jobs {
					if rng.IntN(50) == 0 {
						continue // a missed scrape
					}
					for _, s := range healthySeries {
						key := fmt.Sprint(j, s.scope, s.name)
						ls := levels[s.name]
						// mostly stay, sometimes move to a neighbouring level, rarely jump
						if _, ok := cur[key]; !ok || rng.IntN(10) == 0 {
							cur[key] = ls[rng.IntN(len(ls))]
						} else if rng.IntN(3) == 0 {
							cur[key] *= 0.97 + 0.06*rng.Float64()
						}
						tm := ""
						if s.scope == rules.ScopeTaskManager {
							tm = fmt.Sprint("tm-", j)
						}
						ev := Event{Scope: s.scope, Event: cep.Event{Time: at, JobID: fmt.Sprint("job-", j), TMID: tm,
							MetricsName: s.name, MetricsKey: s.key, MetricsValue: cur[key]}}
						eg.Process(context.Background(), ev)
						ep.Process(context.Background(), ev)
					}
				}
			}
			if g, p := eg.Stats(), ep.Stats(); g.Skipped == 0 || p.Skipped != 0 || g.Matches != p.Matches {
				t.Errorf("guarded %+v\nplain %+v", g, p)
			}
			// Within one event time the order of notices of different rules
			// may differ: a match held back by an earlier partial match is
			// released by the next event its engine sees, or by the end of
			// the round. The notices and their times must not.
			gn, pn := canonical(guarded.Notices()), canonical(plain.Notices())
			if len(pn) < 50 {
				t.Fatalf("only %d notices: the stream does not exercise the rules", len(pn))
			}
			if !reflect.DeepEqual(gn, pn) {
				for i := range min(len(gn), len(pn)) {
					if !reflect.DeepEqual(gn[i], pn[i]) {
						t.Fatalf("notice %d differs:\nguarded %+v %+v\nplain   %+v %+v", i, gn[i].Firing, gn[i].Resolved, pn[i].Firing, pn[i].Resolved)
					}
				}
				t.Fatalf("%d notices guarded, %d plain", len(gn), len(pn))
			}
			fired := map[string]bool{}
			for _, n := range pn {
				if n.Firing != nil {
					fired[n.Firing.Rule] = true
				}
			}
			t.Logf("%d notices, %d rules fired, %d of %d deliveries skipped", len(pn), len(fired), eg.Stats().Skipped, eg.Stats().Skipped+eg.Stats().Delivered)
		})
	}
}

func TestGuardCompilation(t *testing.T) {
	cases := []struct {
		src  string
		ok   bool
		vals map[float64]bool
	}{
		{"metricsValue >= 0.85", true, map[float64]bool{0.85: true, 0.84: false}},
		{"metricsValue >= 0.70 && metricsValue < 0.90", true, map[float64]bool{0.7: true, 0.9: false, 0.5: false}},
		{"not (metricsValue > 1) or metricsValue * 2 == 10", true, map[float64]bool{1: true, 5: true, 3: false}},
		{"-metricsValue < -1 and metricsValue / 2 != 4", true, map[float64]bool{2: true, 8: false, 0.5: false}},
		{"true", false, nil},
		{"metricsValue > e1.metricsValue", false, nil},
		{"jobID == 'x'", false, nil},
		{"len(e1) > 0", false, nil},
		{"metricsValue % 2 == 0", false, nil},
	}
	for _, c := range cases {
		g, ok := guardOf(c.src)
		if ok != c.ok {
			t.Errorf("%s: guard %v, want %v", c.src, ok, c.ok)
			continue
		}
		for v, want := range c.vals {
			if got := g(v); got != want {
				t.Errorf("%s at %v = %v", c.src, v, got)
			}
		}
	}
	rule := func(src string) *rules.Rule {
		rs, err := rules.Parse("g.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return rs[0]
	}
	base := "rules: [{name: G, level: INFO, scope: jobmanager, metrics: [m], within: 1m, pattern: [{name: e1, where: 'metricsValue > 1'}, {name: e2, where: 'true'}]}]"
	if compileGuard(rule(base)) == nil {
		t.Error("no guard for a guardable rule")
	}
	for name, src := range map[string]string{
		"two metrics":       "rules: [{name: G, level: INFO, scope: jobmanager, metrics: [m, n], within: 1m, pattern: [{name: e1, where: 'metricsValue > 1'}]}]",
		"no window":         "rules: [{name: G, level: INFO, scope: jobmanager, metrics: [m], pattern: [{name: e1, where: 'metricsValue > 1'}]}]",
		"coarse partitions": "rules: [{name: G, level: INFO, scope: jobmanager, metrics: [m], within: 1m, partitionBy: [jobID], pattern: [{name: e1, where: 'metricsValue > 1'}]}]",
		"optional first":    "rules: [{name: G, level: INFO, scope: jobmanager, metrics: [m], within: 1m, pattern: [{name: e1, where: 'metricsValue > 1', optional: true}, {name: e2, where: 'true'}]}]",
		"times from zero":   "rules: [{name: G, level: INFO, scope: jobmanager, metrics: [m], within: 1m, pattern: [{name: e1, where: 'metricsValue > 1', times: [0, 2]}, {name: e2, where: 'true'}]}]",
		"unguardable or":    "rules: [{name: G, level: INFO, scope: jobmanager, metrics: [m], within: 1m, pattern: [{name: e1, where: 'metricsValue > 1', or: 'jobID == \"x\"'}]}]",
	} {
		if compileGuard(rule(src)) != nil {
			t.Errorf("%s: guarded", name)
		}
	}
}

// canonical orders notices by event time, then firings before resolutions,
// then by key.
func canonical(ns []Notice) []Notice {
	at := func(n Notice) (time.Time, int, string) {
		if n.Firing != nil {
			return n.Firing.At, 0, n.Firing.Key
		}
		return n.Resolved.At, 1, n.Resolved.Key
	}
	out := slices.Clone(ns)
	slices.SortStableFunc(out, func(a, b Notice) int {
		ta, ka, sa := at(a)
		tb, kb, sb := at(b)
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		if ka != kb {
			return ka - kb
		}
		return strings.Compare(sa, sb)
	})
	return out
}

func TestRefire(t *testing.T) {
	set := loadCatalogue(t)
	for _, refire := range []time.Duration{0, 2 * time.Minute} {
		rec := &Recorder{}
		opts := DefaultEvalOptions()
		opts.RefireInterval = refire
		e, err := NewEvaluator(set, opts, rec)
		if err != nil {
			t.Fatal(err)
		}
		// ten minutes of a heap at 90%: TOO_HIGH matches every four samples
		for i := range 40 {
			e.Process(context.Background(), traceEvent(seriesDef{rules.ScopeTaskManager, MetricHeapLoad, ""}, i, 0.9))
		}
		fs := rec.Firings()
		want := 1
		if refire > 0 {
			want = 5 // at 45s, then every 2 minutes or a little more: 3m, 5m15s, 7m30s, 9m45s
		}
		if len(fs) != want || fs[0].Repeat || want > 1 && !fs[1].Repeat {
			t.Errorf("refire %v: %d firings, want %d", refire, len(fs), want)
		}
	}
}
