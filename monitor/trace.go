package monitor

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidewatch/tidewatch/monitor/cep"
	"github.com/tidewatch/tidewatch/monitor/rules"
)

// A metric trace is a recorded stream of metric events, replayed by
// `tidewatch rules test` and by the rule tests. Two encodings:
//
// JSONL, one event per line (blank lines and lines starting with # are
// skipped):
//
//	{"time":"2026-01-05T10:00:00Z","scope":"taskmanager","jobID":"j1","jobName":"clicks","tmID":"tm-1","metricsName":"heap_load","metricsValue":0.42}
//
// time (RFC 3339), scope, jobID, metricsName and metricsValue are
// required; jobName, tmID, hostname, metricsKey and labels (an object) are
// optional. metricsValue may be the strings "NaN", "+Inf", "-Inf".
//
// CSV, with a header naming the columns (any order; the same names as the
// JSON keys except labels; lines starting with # are skipped):
//
//	time,scope,jobID,jobName,tmID,hostname,metricsName,metricsKey,metricsValue
//	2026-01-05T10:00:00Z,taskmanager,j1,clicks,tm-1,,heap_load,,0.42
//
// Events are replayed in file order; their times must not go backwards by
// more than the replay's allowed lateness.

// TraceFormat is a trace encoding.
type TraceFormat string

// The trace encodings.
const (
	TraceJSONL TraceFormat = "jsonl"
	TraceCSV   TraceFormat = "csv"
)

// TraceFormatOf picks the encoding from a file name: .csv is CSV,
// anything else JSONL.
func TraceFormatOf(name string) TraceFormat {
	if strings.HasSuffix(strings.ToLower(name), ".csv") {
		return TraceCSV
	}
	return TraceJSONL
}

// ErrTrace is wrapped by every error reading a trace.
var ErrTrace = errors.New("monitor: invalid trace")

// TraceError is a problem at one line of a trace.
type TraceError struct {
	Name string
	Line int
	Msg  string
}

func (e *TraceError) Error() string { return fmt.Sprintf("%s:%d: %s", e.Name, e.Line, e.Msg) }

// Unwrap makes every TraceError an ErrTrace.
func (e *TraceError) Unwrap() error { return ErrTrace }

// traceRecord is the JSON form of an event.
type traceRecord struct {
	Time         string         `json:"time"`
	Scope        string         `json:"scope"`
	JobID        string         `json:"jobID"`
	JobName      string         `json:"jobName,omitempty"`
	TMID         string         `json:"tmID,omitempty"`
	Hostname     string         `json:"hostname,omitempty"`
	MetricsName  string         `json:"metricsName"`
	MetricsKey   string         `json:"metricsKey,omitempty"`
	MetricsValue traceFloat     `json:"metricsValue"`
	Labels       map[string]any `json:"labels,omitempty"`
}

// traceFloat is a float that also reads and writes "NaN", "+Inf", "-Inf".
type traceFloat struct {
	v   float64
	set bool
}

func (f traceFloat) MarshalJSON() ([]byte, error) {
	switch {
	case math.IsNaN(f.v):
		return []byte(`"NaN"`), nil
	case math.IsInf(f.v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(f.v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, f.v, 'g', -1, 64), nil
}

func (f *traceFloat) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return errors.New("metricsValue is null")
	}
	if len(s) > 1 && s[0] == '"' {
		s = s[1 : len(s)-1]
		switch s {
		case "NaN", "+Inf", "-Inf", "Inf":
		default:
			return fmt.Errorf("metricsValue %q is not a number", s)
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("metricsValue %s is not a number", b)
	}
	f.v, f.set = v, true
	return nil
}

// ReadTrace reads a whole trace; name is used in error messages.
func ReadTrace(r io.Reader, format TraceFormat, name string) ([]Event, error) {
	var out []Event
	err := ScanTrace(r, format, name, func(ev Event) error {
		out = append(out, ev)
		return nil
	})
	return out, err
}

// maxTraceLine bounds one line of a trace.
const maxTraceLine = 1 << 20

// ScanTrace reads a trace event by event, calling fn for each; it stops at
// the first error, fn's included.
func ScanTrace(r io.Reader, format TraceFormat, name string, fn func(Event) error) error {
	switch format {
	case TraceJSONL:
		return scanJSONL(r, name, fn)
	case TraceCSV:
		return scanCSV(r, name, fn)
	}
	return fmt.Errorf("%w: unknown trace format %q", ErrTrace, format)
}

func scanJSONL(r io.Reader, name string, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxTraceLine)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		var rec traceRecord
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return &TraceError{Name: name, Line: line, Msg: err.Error()}
		}
		if !rec.MetricsValue.set {
			return &TraceError{Name: name, Line: line, Msg: "metricsValue: missing"}
		}
		ev, err := rec.event()
		if err != nil {
			return &TraceError{Name: name, Line: line, Msg: err.Error()}
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return &TraceError{Name: name, Line: line + 1, Msg: err.Error()}
	}
	return nil
}

func (rec *traceRecord) event() (Event, error) {
	t, err := time.Parse(time.RFC3339Nano, rec.Time)
	if err != nil {
		return Event{}, fmt.Errorf("time: must be an RFC 3339 time, got %q", rec.Time)
	}
	scope := rules.Scope(rec.Scope)
	if scope != rules.ScopeJobManager && scope != rules.ScopeTaskManager {
		return Event{}, fmt.Errorf("scope: must be jobmanager or taskmanager, got %q", rec.Scope)
	}
	if rec.JobID == "" {
		return Event{}, errors.New("jobID: missing")
	}
	if rec.MetricsName == "" {
		return Event{}, errors.New("metricsName: missing")
	}
	labels := rec.Labels
	if rec.JobName != "" {
		labels = make(map[string]any, len(rec.Labels)+1)
		for k, v := range rec.Labels {
			labels[k] = v
		}
		labels[LabelJobName] = rec.JobName
	}
	return Event{Scope: scope, Event: cep.Event{Time: t, JobID: rec.JobID, TMID: rec.TMID, Hostname: rec.Hostname,
		MetricsName: rec.MetricsName, MetricsKey: rec.MetricsKey, MetricsValue: rec.MetricsValue.v, Labels: labels}}, nil
}

var csvColumns = []string{"time", "scope", "jobID", "jobName", "tmID", "hostname", "metricsName", "metricsKey", "metricsValue"}

func scanCSV(r io.Reader, name string, fn func(Event) error) error {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return csvError(name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if !slices.Contains(csvColumns, h) {
			line, _ := cr.FieldPos(i)
			return &TraceError{Name: name, Line: line, Msg: fmt.Sprintf("unknown column %q (known: %s)", h, strings.Join(csvColumns, ","))}
		}
		col[h] = i
	}
	for _, req := range []string{"time", "scope", "jobID", "metricsName", "metricsValue"} {
		if _, ok := col[req]; !ok {
			line, _ := cr.FieldPos(0)
			return &TraceError{Name: name, Line: line, Msg: fmt.Sprintf("the header has no %s column", req)}
		}
	}
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return csvError(name, err)
		}
		line, _ := cr.FieldPos(0)
		get := func(c string) string {
			if i, ok := col[c]; ok && i < len(row) {
				return row[i]
			}
			return ""
		}
		rec := traceRecord{Time: get("time"), Scope: get("scope"), JobID: get("jobID"), JobName: get("jobName"),
			TMID: get("tmID"), Hostname: get("hostname"), MetricsName: get("metricsName"), MetricsKey: get("metricsKey")}
		if err := rec.MetricsValue.UnmarshalJSON([]byte(get("metricsValue"))); err != nil {
			return &TraceError{Name: name, Line: line, Msg: err.Error()}
		}
		ev, err := rec.event()
		if err != nil {
			return &TraceError{Name: name, Line: line, Msg: err.Error()}
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// csvError places an error of the CSV reader at its line.
func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &TraceError{Name: name, Line: pe.Line, Msg: pe.Err.Error()}
	}
	return &TraceError{Name: name, Msg: err.Error()}
}

// TraceWriter writes events as a trace.
type TraceWriter struct {
	format TraceFormat
	w      io.Writer
	csv    *csv.Writer
	enc    *json.Encoder
}

// NewTraceWriter returns a writer of format to w; a CSV writer writes its
// header first.
func NewTraceWriter(w io.Writer, format TraceFormat) (*TraceWriter, error) {
	tw := &TraceWriter{format: format, w: w}
	switch format {
	case TraceJSONL:
		tw.enc = json.NewEncoder(w)
	case TraceCSV:
		tw.csv = csv.NewWriter(w)
		if err := tw.csv.Write(csvColumns); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unknown trace format %q", ErrTrace, format)
	}
	return tw, nil
}

// Write writes one event.
func (tw *TraceWriter) Write(ev Event) error {
	rec := traceRecord{Time: ev.Time.UTC().Format(time.RFC3339Nano), Scope: string(ev.Scope), JobID: ev.JobID,
		TMID: ev.TMID, Hostname: ev.Hostname, MetricsName: ev.MetricsName, MetricsKey: ev.MetricsKey,
		MetricsValue: traceFloat{v: ev.MetricsValue, set: true}}
	for k, v := range ev.Labels {
		if k == LabelJobName {
			rec.JobName, _ = v.(string)
			continue
		}
		if rec.Labels == nil {
			rec.Labels = map[string]any{}
		}
		rec.Labels[k] = v
	}
	if tw.enc != nil {
		return tw.enc.Encode(rec)
	}
	v, _ := rec.MetricsValue.MarshalJSON()
	return tw.csv.Write([]string{rec.Time, rec.Scope, rec.JobID, rec.JobName, rec.TMID, rec.Hostname,
		rec.MetricsName, rec.MetricsKey, strings.Trim(string(v), `"`)})
}

// Flush writes out what a CSV writer buffers.
func (tw *TraceWriter) Flush() error {
	if tw.csv != nil {
		tw.csv.Flush()
		return tw.csv.Error()
	}
	return nil
}
