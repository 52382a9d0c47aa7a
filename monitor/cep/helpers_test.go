package cep

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// evs builds events from a spec like "a1 b1 d1 b2": each token is an event
// whose metricsName is the token without its trailing digits and whose
// metricsKey is the token, one second apart. A token may carry a value
// ("b:3.5") and an explicit time offset in seconds ("a@10").
func evs(spec string) []Event {
	var out []Event
	for i, tok := range strings.Fields(spec) {
		ev := Event{Time: t0.Add(time.Duration(i) * time.Second), JobID: "job", TMID: "tm"}
		if at := strings.IndexByte(tok, '@'); at >= 0 {
			d, err := time.ParseDuration(tok[at+1:] + "s")
			if err != nil {
				panic(err)
			}
			ev.Time = t0.Add(d)
			tok = tok[:at]
		}
		if c := strings.IndexByte(tok, ':'); c >= 0 {
			var v float64
			if _, err := fmt.Sscan(tok[c+1:], &v); err != nil {
				panic(err)
			}
			ev.MetricsValue = v
			tok = tok[:c]
		}
		ev.MetricsKey = tok
		ev.MetricsName = strings.TrimRight(tok, "0123456789")
		out = append(out, ev)
	}
	return out
}

// is is the condition "the event's name is n".
func is(n string) string { return `metricsName == "` + n + `"` }

// keysOf renders a match as its events' keys in time order.
func keysOf(m Match) string {
	var all []Event
	for _, es := range m.Events {
		all = append(all, es...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	var ks []string
	for _, e := range all {
		ks = append(ks, e.MetricsKey)
	}
	return strings.Join(ks, " ")
}

type runResult struct {
	matches  []string // in emission order
	timeouts []string
	stats    Stats
}

type runConfig struct {
	opts     Options
	noNative bool
	flushAt  time.Duration // advance the watermark to t0+flushAt at the end (0: just Flush)
}

func runPattern(t testing.TB, p *Pattern, events []Event, cfg runConfig) runResult {
	t.Helper()
	nfa, err := p.Compile()
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	opts := cfg.opts
	if opts.MaxBufferedEvents == 0 {
		opts.MaxBufferedEvents = 1024
	}
	if opts.MaxPartialMatches == 0 {
		opts.MaxPartialMatches = 1 << 20
	}
	var res runResult
	e, err := NewEngine(nfa, opts, func(m Match) {
		if m.TimedOut {
			res.timeouts = append(res.timeouts, keysOf(m))
		} else {
			res.matches = append(res.matches, keysOf(m))
		}
	})
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	e.noNative = cfg.noNative
	for _, ev := range events {
		e.Process(ev)
	}
	e.Flush()
	if cfg.flushAt > 0 {
		e.AdvanceWatermark(t0.Add(cfg.flushAt))
	}
	res.stats = e.Stats()
	return res
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// bothPaths runs f with the native fast path and with every condition on
// the expression VM.
func bothPaths(t *testing.T, f func(t *testing.T, noNative bool)) {
	t.Run("native", func(t *testing.T) { f(t, false) })
	t.Run("vm", func(t *testing.T) { f(t, true) })
}
