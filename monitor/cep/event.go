package cep

import (
	"fmt"
	"time"
)

// Event is one input record: a metric sample with its origin, plus
// arbitrary labels. A plain map of fields is an Event with only Time and
// Labels set.
//
// In condition expressions the typed fields are named after the seed's
// metric schema (time, jobID, tmID, hostname, metricsName, metricsKey,
// metricsValue); every other identifier names a label. A label whose name
// equals a typed field's is shadowed by the field.
type Event struct {
	Time         time.Time
	JobID        string
	TMID         string // the worker (task manager) the sample came from
	Hostname     string
	MetricsName  string
	MetricsKey   string
	MetricsValue float64
	Labels       map[string]any
}

// fieldID names a typed field of Event.
type fieldID int8

const (
	fieldNone fieldID = iota - 1
	fieldTime
	fieldJobID
	fieldTMID
	fieldHostname
	fieldMetricsName
	fieldMetricsKey
	fieldMetricsValue
	numFields
)

// fieldNames are the expression names of the typed fields, by fieldID.
var fieldNames = [numFields]string{
	fieldTime:         "time",
	fieldJobID:        "jobID",
	fieldTMID:         "tmID",
	fieldHostname:     "hostname",
	fieldMetricsName:  "metricsName",
	fieldMetricsKey:   "metricsKey",
	fieldMetricsValue: "metricsValue",
}

func lookupField(name string) fieldID {
	for i, n := range fieldNames {
		if n == name {
			return fieldID(i)
		}
	}
	return fieldNone
}

// isStringField reports whether f is one of the string-typed fields.
func (f fieldID) isString() bool {
	return f >= fieldJobID && f <= fieldMetricsKey
}

func (e *Event) stringField(f fieldID) string {
	switch f {
	case fieldJobID:
		return e.JobID
	case fieldTMID:
		return e.TMID
	case fieldHostname:
		return e.Hostname
	case fieldMetricsName:
		return e.MetricsName
	case fieldMetricsKey:
		return e.MetricsKey
	}
	return ""
}

// Field returns the value of a typed field or label by its expression name.
func (e *Event) Field(name string) (any, bool) {
	switch f := lookupField(name); {
	case f == fieldTime:
		return e.Time, true
	case f == fieldMetricsValue:
		return e.MetricsValue, true
	case f.isString():
		return e.stringField(f), true
	}
	v, ok := e.Labels[name]
	return v, ok
}

// appendKeyPart appends the value of a field or label to a partition key.
func (e *Event) appendKeyPart(b []byte, name string, f fieldID) []byte {
	switch {
	case f.isString():
		return append(b, e.stringField(f)...)
	case f == fieldMetricsValue:
		return fmt.Appendf(b, "%v", e.MetricsValue)
	case f == fieldTime:
		return fmt.Appendf(b, "%d", e.Time.UnixNano())
	}
	switch v := e.Labels[name].(type) {
	case nil:
		return b
	case string:
		return append(b, v...)
	default:
		return fmt.Appendf(b, "%v", v)
	}
}

// view returns the event as a map for the expression VM: typed fields and
// labels under their expression names.
func (e *Event) view() map[string]any {
	m := make(map[string]any, len(e.Labels)+int(numFields))
	for k, v := range e.Labels {
		m[k] = v
	}
	m[fieldNames[fieldTime]] = e.Time
	m[fieldNames[fieldJobID]] = e.JobID
	m[fieldNames[fieldTMID]] = e.TMID
	m[fieldNames[fieldHostname]] = e.Hostname
	m[fieldNames[fieldMetricsName]] = e.MetricsName
	m[fieldNames[fieldMetricsKey]] = e.MetricsKey
	m[fieldNames[fieldMetricsValue]] = e.MetricsValue
	return m
}

// record is an event inside the engine: the event, its timestamp in Unix
// nanoseconds, its arrival number and, once processed, its position in the
// partition's processing order (the Flink EventId). Records taken into a
// partial match are shared by every branch that took them.
type record struct {
	ev   Event
	ts   int64
	seq  uint64
	pos  uint64
	view map[string]any // built on first use by the expression VM
}

func (r *record) exprView() map[string]any {
	if r.view == nil {
		r.view = r.ev.view()
	}
	return r.view
}

// node is an entry of the shared buffer: one event taken by one pattern
// stage, linked to the entry before it in the same partial match. Branches of
// a partial match share their common prefix, so the buffer is a tree whose
// leaves are the partial matches; Go's collector frees what no branch
// references, which is what Flink's versioned reference counts do by hand.
type node struct {
	rec   *record
	prev  *node
	stage int32
}

// nodeRecord allocates a record with the first buffer entry that takes it.
type nodeRecord struct {
	node node
	rec  record
}
