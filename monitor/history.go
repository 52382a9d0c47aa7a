package monitor

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidewatch/tidewatch/monitor/rules"
)

// Sample is one value of a series.
type Sample struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
}

// SeriesKey names one series of a job: a metric event name with its scope,
// worker and metric key.
type SeriesKey struct {
	Scope rules.Scope
	TMID  string
	Name  string
	Key   string
}

// String is the key in Prometheus's notation, empty labels left out:
// heap_load{scope="taskmanager",tm="127.0.0.1:38645-c5f031"},
// records_in_per_second{scope="taskmanager",tm="…",key="window"}.
func (k SeriesKey) String() string {
	var b strings.Builder
	b.WriteString(k.Name)
	b.WriteString(`{scope=`)
	b.WriteString(strconv.Quote(string(k.Scope)))
	if k.TMID != "" {
		b.WriteString(`,tm=`)
		b.WriteString(strconv.Quote(k.TMID))
	}
	if k.Key != "" {
		b.WriteString(`,key=`)
		b.WriteString(strconv.Quote(k.Key))
	}
	b.WriteString("}")
	return b.String()
}

var (
	seriesRE      = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_:.]*)(?:\{(.*)\})?$`)
	seriesLabelRE = regexp.MustCompile(`^\s*(scope|tm|key)\s*=\s*("(?:[^"\\]|\\.)*")\s*(?:,|$)`)
)

// ParseSeriesKey reads the String form of a key. Labels may be left out:
// a bare name is the job master's series (scope jobmanager).
func ParseSeriesKey(s string) (SeriesKey, error) {
	m := seriesRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return SeriesKey{}, fmt.Errorf("monitor: series %q: want name{scope=\"…\",tm=\"…\",key=\"…\"}", s)
	}
	k := SeriesKey{Name: m[1], Scope: rules.ScopeJobManager}
	rest := m[2]
	for rest != "" {
		lm := seriesLabelRE.FindStringSubmatch(rest)
		if lm == nil {
			return SeriesKey{}, fmt.Errorf("monitor: series %q: labels must be scope, tm and key, quoted", s)
		}
		v, err := strconv.Unquote(lm[2])
		if err != nil {
			return SeriesKey{}, fmt.Errorf("monitor: series %q: %v", s, err)
		}
		switch lm[1] {
		case "scope":
			k.Scope = rules.Scope(v)
		case "tm":
			k.TMID = v
		case "key":
			k.Key = v
		}
		rest = rest[len(lm[0]):]
	}
	if k.Scope != rules.ScopeJobManager && k.Scope != rules.ScopeTaskManager {
		return SeriesKey{}, fmt.Errorf("monitor: series %q: scope must be jobmanager or taskmanager", s)
	}
	return k, nil
}

// History keeps the recent samples of every series of every job, in a ring
// buffer of fixed size per series: the console's charts and the forecaster
// read it. It is safe for concurrent use.
type History struct {
	size int

	mu   sync.RWMutex
	jobs map[string]*jobHistory
}

type jobHistory struct {
	series map[SeriesKey]*ring
	last   time.Time // the newest sample
}

// ring holds the last len(ts) samples of a series; next is where the next
// one goes, n how many are held.
type ring struct {
	ts   []int64
	vs   []float64
	next int
	n    int
}

// NewHistory keeps size samples per series (at least 1).
func NewHistory(size int) *History {
	return &History{size: max(size, 1), jobs: map[string]*jobHistory{}}
}

// Add records events.
func (h *History) Add(evs ...Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range evs {
		ev := &evs[i]
		j := h.jobs[ev.JobID]
		if j == nil {
			j = &jobHistory{series: map[SeriesKey]*ring{}}
			h.jobs[ev.JobID] = j
		}
		k := SeriesKey{Scope: ev.Scope, TMID: ev.TMID, Name: ev.MetricsName, Key: ev.MetricsKey}
		r := j.series[k]
		if r == nil {
			r = &ring{ts: make([]int64, h.size), vs: make([]float64, h.size)}
			j.series[k] = r
		}
		r.ts[r.next], r.vs[r.next] = ev.Time.UnixNano(), ev.MetricsValue
		r.next = (r.next + 1) % len(r.ts)
		r.n = min(r.n+1, len(r.ts))
		if ev.Time.After(j.last) {
			j.last = ev.Time
		}
	}
}

// Query returns a job's samples of one series at or after since, oldest
// first. A key without tm matches the series of any one worker when there
// is exactly one.
func (h *History) Query(job string, k SeriesKey, since time.Time) []Sample {
	h.mu.RLock()
	defer h.mu.RUnlock()
	j := h.jobs[job]
	if j == nil {
		return nil
	}
	r := j.series[k]
	if r == nil && k.TMID == "" {
		var only *ring
		for sk, sr := range j.series {
			if sk.Scope == k.Scope && sk.Name == k.Name && sk.Key == k.Key {
				if only != nil {
					return nil // ambiguous: name the worker
				}
				only = sr
			}
		}
		r = only
	}
	if r == nil {
		return nil
	}
	from := since.UnixNano()
	out := make([]Sample, 0, r.n)
	for i := 0; i < r.n; i++ {
		idx := (r.next - r.n + i + len(r.ts)) % len(r.ts)
		if r.ts[idx] >= from {
			out = append(out, Sample{Time: time.Unix(0, r.ts[idx]).UTC(), Value: r.vs[idx]})
		}
	}
	return out
}

// Series lists a job's series, sorted by their String form.
func (h *History) Series(job string) []SeriesKey {
	h.mu.RLock()
	defer h.mu.RUnlock()
	j := h.jobs[job]
	if j == nil {
		return nil
	}
	out := make([]SeriesKey, 0, len(j.series))
	for k := range j.series {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b SeriesKey) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Jobs lists the jobs with history, sorted.
func (h *History) Jobs() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return sortedKeys(h.jobs)
}

// ForgetBefore drops the history of jobs whose newest sample is older than
// t; it returns how many it dropped.
func (h *History) ForgetBefore(t time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for id, j := range h.jobs {
		if j.last.Before(t) {
			delete(h.jobs, id)
			n++
		}
	}
	return n
}
