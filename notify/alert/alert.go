// Package alert is the vocabulary shared by the notifier (package notify) and
// its channels: an alert, its labels and fingerprint, and the message a channel
// is asked to deliver. It depends on nothing else in Tidewatch, so channel
// packages and the monitor can import it without import cycles.
package alert

import (
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Names of the labels every alert carries.
const (
	// LabelJob is the id (or name) of the job the alert is about.
	LabelJob = "job"
	// LabelEvent is the event name, e.g. TASK_MANAGER_HEAP_MEM_LOAD_HIGH. It
	// is called alertname, as in Prometheus, so that webhook receivers and
	// Alertmanager see the name where they expect it.
	LabelEvent = "alertname"
	// LabelLevel is FATAL, ERROR, WARN or INFO.
	LabelLevel = "level"
	// LabelFamily is added by the notifier: the event name without its
	// _TOO_HIGH, _HIGH or _LOW suffix (see Family).
	LabelFamily = "family"
)

// Level is the severity of an alert.
type Level string

// The levels, most severe first.
const (
	LevelFatal Level = "FATAL"
	LevelError Level = "ERROR"
	LevelWarn  Level = "WARN"
	LevelInfo  Level = "INFO"
)

// Levels lists the known levels, most severe first.
var Levels = []Level{LevelFatal, LevelError, LevelWarn, LevelInfo}

// ParseLevel accepts a level in any case.
func ParseLevel(s string) (Level, error) {
	l := Level(strings.ToUpper(strings.TrimSpace(s)))
	for _, k := range Levels {
		if l == k {
			return l, nil
		}
	}
	return "", fmt.Errorf("%w: %q (want FATAL, ERROR, WARN or INFO)", ErrBadLevel, s)
}

// Errors of alert validation.
var (
	ErrBadLevel = errors.New("alert: unknown level")
	ErrInvalid  = errors.New("alert: invalid alert")
)

// Labels are an alert's identifying name/value pairs; annotations use the
// same type for their descriptive ones.
type Labels map[string]string

// Names returns the label names in order.
func (ls Labels) Names() []string {
	names := make([]string, 0, len(ls))
	for k := range ls {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Clone returns a copy.
func (ls Labels) Clone() Labels {
	c := make(Labels, len(ls))
	for k, v := range ls {
		c[k] = v
	}
	return c
}

// String renders the labels as {a="1", b="2"}, sorted by name.
func (ls Labels) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range ls.Names() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, ls[k])
	}
	b.WriteByte('}')
	return b.String()
}

// Fingerprint identifies an alert by its labels.
type Fingerprint uint64

// String is the fingerprint as 16 hex digits, as Alertmanager shows it.
func (f Fingerprint) String() string { return fmt.Sprintf("%016x", uint64(f)) }

// ParseFingerprint reads the form String writes.
func ParseFingerprint(s string) (Fingerprint, error) {
	var v uint64
	if len(s) != 16 {
		return 0, fmt.Errorf("alert: fingerprint %q is not 16 hex digits", s)
	}
	if _, err := fmt.Sscanf(s, "%016x", &v); err != nil {
		return 0, fmt.Errorf("alert: fingerprint %q is not 16 hex digits", s)
	}
	return Fingerprint(v), nil
}

// Fingerprint hashes the labels (FNV-1a over sorted names and values, with a
// separator byte that cannot occur in UTF-8), the way Prometheus does.
func (ls Labels) Fingerprint() Fingerprint {
	h := fnv.New64a()
	for _, k := range ls.Names() {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(ls[k]))
		h.Write([]byte{0xff})
	}
	return Fingerprint(h.Sum64())
}

// Alert is one condition, raised by the monitor (or anything else) about a
// job. Its identity is its labels; annotations, times and the generator URL
// describe it.
type Alert struct {
	// Labels must hold job, alertname (the event) and level; any other labels
	// (the worker, the operator, the host) distinguish alerts of one event.
	Labels Labels `json:"labels"`
	// Annotations describe the alert: summary, description, value, runbook.
	Annotations Labels `json:"annotations,omitempty"`
	// StartsAt is when the condition began; the notifier sets it to now if
	// zero.
	StartsAt time.Time `json:"startsAt"`
	// EndsAt, if set, is when the condition ended (or, in the future, when
	// the alert resolves unless raised again).
	EndsAt time.Time `json:"endsAt,omitzero"`
	// GeneratorURL links to what raised the alert (a rule, a job's page).
	GeneratorURL string `json:"generatorURL,omitempty"`
}

// New returns an alert with the three identifying labels and any extra ones.
func New(job, event string, level Level, extra Labels) Alert {
	ls := make(Labels, len(extra)+3)
	for k, v := range extra {
		ls[k] = v
	}
	ls[LabelJob], ls[LabelEvent], ls[LabelLevel] = job, event, string(level)
	return Alert{Labels: ls, Annotations: Labels{}}
}

// Job is the alert's job label.
func (a Alert) Job() string { return a.Labels[LabelJob] }

// Event is the alert's event name (label alertname).
func (a Alert) Event() string { return a.Labels[LabelEvent] }

// Level is the alert's level label.
func (a Alert) Level() Level { return Level(a.Labels[LabelLevel]) }

// Fingerprint of the alert's labels.
func (a Alert) Fingerprint() Fingerprint { return a.Labels.Fingerprint() }

// Resolved reports whether the alert has ended by the given time.
func (a Alert) Resolved(at time.Time) bool { return !a.EndsAt.IsZero() && !a.EndsAt.After(at) }

// Status is "firing" or "resolved" at the given time.
func (a Alert) Status(at time.Time) string {
	if a.Resolved(at) {
		return StatusResolved
	}
	return StatusFiring
}

// Alert and notification statuses.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// ValidLabelName reports whether s can be a label name.
func ValidLabelName(s string) bool { return labelName.MatchString(s) }

// Limits on what an alert may carry.
const (
	MaxLabels     = 64
	MaxValueBytes = 4096
)

// Validate checks an alert as it comes in: the identifying labels are there,
// the level is known, names are label names and values are not too long.
func (a Alert) Validate() error {
	for _, k := range []string{LabelJob, LabelEvent, LabelLevel} {
		if a.Labels[k] == "" {
			return fmt.Errorf("%w: label %s is missing", ErrInvalid, k)
		}
	}
	if _, err := ParseLevel(a.Labels[LabelLevel]); err != nil {
		return fmt.Errorf("%w: label level: %v", ErrInvalid, err)
	}
	if len(a.Labels) > MaxLabels || len(a.Annotations) > MaxLabels {
		return fmt.Errorf("%w: more than %d labels or annotations", ErrInvalid, MaxLabels)
	}
	for _, m := range []Labels{a.Labels, a.Annotations} {
		for k, v := range m {
			if !ValidLabelName(k) {
				return fmt.Errorf("%w: %q is not a label name", ErrInvalid, k)
			}
			if len(v) > MaxValueBytes {
				return fmt.Errorf("%w: the value of %s is longer than %d bytes", ErrInvalid, k, MaxValueBytes)
			}
		}
	}
	if !a.EndsAt.IsZero() && !a.StartsAt.IsZero() && a.EndsAt.Before(a.StartsAt) {
		return fmt.Errorf("%w: endsAt is before startsAt", ErrInvalid)
	}
	return nil
}

// familySuffixes are stripped from an event name to give its family, longest
// first so that _TOO_HIGH is not mistaken for _HIGH.
var familySuffixes = []string{"_TOO_HIGH", "_HIGH", "_LOW"}

// Family is the event name without its _TOO_HIGH, _HIGH or _LOW suffix:
// TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH, _HIGH and _LOW are one family,
// TASK_MANAGER_HEAP_MEM_LOAD. Other names are their own family.
func Family(event string) string {
	for _, s := range familySuffixes {
		if strings.HasSuffix(event, s) && len(event) > len(s) {
			return strings.TrimSuffix(event, s)
		}
	}
	return event
}
