package monitor

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

func TestTraceRoundTrip(t *testing.T) {
	evs := healthyTrace(3)
	evs[0].MetricsValue = math.NaN()
	evs[1].MetricsValue = math.Inf(1)
	evs[2].Labels = map[string]any{LabelJobName: traceJobName, "daemon": "d1"}
	for _, f := range []TraceFormat{TraceJSONL, TraceCSV} {
		var b bytes.Buffer
		tw, err := NewTraceWriter(&b, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if err := tw.Write(ev); err != nil {
				t.Fatal(err)
			}
		}
		tw.Flush()
		got, err := ReadTrace(&b, f, "x")
		if err != nil || len(got) != len(evs) {
			t.Fatalf("%s: %d events, %v", f, len(got), err)
		}
		for i := range evs {
			w, g := evs[i], got[i]
			same := w.Time.Equal(g.Time) && w.Scope == g.Scope && w.JobID == g.JobID && w.TMID == g.TMID &&
				w.MetricsName == g.MetricsName && w.MetricsKey == g.MetricsKey &&
				(w.MetricsValue == g.MetricsValue || math.IsNaN(w.MetricsValue) && math.IsNaN(g.MetricsValue)) &&
				g.Labels[LabelJobName] == traceJobName
			if !same {
				t.Errorf("%s event %d: %+v, want %+v", f, i, g, w)
			}
		}
		if f == TraceJSONL && got[2].Labels["daemon"] != "d1" {
			t.Errorf("labels lost: %v", got[2].Labels)
		}
	}
}

func TestTraceErrors(t *testing.T) {
	for _, c := range []struct {
		format TraceFormat
		text   string
		want   string
	}{
		{TraceJSONL, "# c\n\n{\"time\":\"x\",\"scope\":\"jobmanager\",\"jobID\":\"j\",\"metricsName\":\"m\",\"metricsValue\":1}\n", "t:3: time"},
		{TraceJSONL, `{"time":"2026-01-05T10:00:00Z","scope":"jobmanager","jobID":"j","metricsName":"m"}`, "t:1: metricsValue: missing"},
		{TraceJSONL, `{"time":"2026-01-05T10:00:00Z","scope":"jobmanager","jobID":"j","metricsName":"m","metricsValue":"high"}`, "t:1: "},
		{TraceJSONL, `{"time":"2026-01-05T10:00:00Z","scope":"jobmanager","jobID":"j","metricsName":"m","metricsValue":1,"extra":1}`, "unknown field"},
		{TraceCSV, "time,scope,jobID,metricsName\n", "no metricsValue column"},
		{TraceCSV, "time,scope,jobID,metricsName,metricsValue,colour\n", "unknown column"},
		{TraceCSV, "time,scope,jobID,metricsName,metricsValue\n2026-01-05T10:00:00Z,jobmanager,,m,1\n", "t:2: jobID: missing"},
	} {
		_, err := ReadTrace(strings.NewReader(c.text), c.format, "t")
		if !errors.Is(err, ErrTrace) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}

// FuzzTrace feeds arbitrary bytes to both trace readers: no panic, and an
// error is always a TraceError.
func FuzzTrace(f *testing.F) {
	for _, name := range []string{"testdata/traces/JOB_MANAGER_FULL_RESTARTS_INCREASE.jsonl"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b, false)
		}
	}
	f.Add([]byte("time,scope,jobID,metricsName,metricsValue\n2026-01-05T10:00:00Z,jobmanager,j,m,NaN\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, csv bool) {
		format := TraceJSONL
		if csv {
			format = TraceCSV
		}
		evs, err := ReadTrace(bytes.NewReader(data), format, "f")
		if err != nil {
			if !errors.Is(err, ErrTrace) {
				t.Fatalf("%T %v", err, err)
			}
			return
		}
		for _, ev := range evs {
			if ev.JobID == "" || ev.MetricsName == "" || ev.Scope == "" {
				t.Fatalf("incomplete event %+v", ev)
			}
		}
	})
}
