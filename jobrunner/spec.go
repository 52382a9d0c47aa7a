package jobrunner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Spec is a parsed job specification with defaults applied. Obtain one with
// ParseSpec; a Spec built by hand is not validated.
type Spec struct {
	Name           string         `yaml:"name" json:"name"`
	Parallelism    int            `yaml:"parallelism" json:"parallelism"`
	MaxParallelism int            `yaml:"maxParallelism" json:"maxParallelism"`
	Time           string         `yaml:"time" json:"time"`
	Watermark      WatermarkSpec  `yaml:"watermark" json:"watermark"`
	Checkpoint     CheckpointSpec `yaml:"checkpoint" json:"checkpoint"`
	Source         SourceSpec     `yaml:"source" json:"source"`
	KeyBy          string         `yaml:"keyBy" json:"keyBy"`
	Window         WindowSpec     `yaml:"window" json:"window"`
	Aggregate      string         `yaml:"aggregate" json:"aggregate"`
	Sink           SinkSpec       `yaml:"sink" json:"sink"`
}

// WatermarkSpec configures bounded out-of-orderness watermarks.
type WatermarkSpec struct {
	MaxOutOfOrderness time.Duration `yaml:"maxOutOfOrderness" json:"maxOutOfOrderness"`
}

// CheckpointSpec configures periodic checkpoints. Interval 0 disables them.
type CheckpointSpec struct {
	Interval time.Duration `yaml:"interval" json:"interval"`
	Retained int           `yaml:"retained" json:"retained"`
}

// SourceSpec selects and configures the source.
type SourceSpec struct {
	Type    string      `yaml:"type" json:"type"`
	Datagen DatagenSpec `yaml:"datagen" json:"datagen"`
}

// DatagenSpec configures the deterministic generator source.
type DatagenSpec struct {
	Rate     int64         `yaml:"rate" json:"rate"`
	Keys     int64         `yaml:"keys" json:"keys"`
	Seed     int64         `yaml:"seed" json:"seed"`
	Count    int64         `yaml:"count" json:"count"`
	Disorder time.Duration `yaml:"disorder" json:"disorder"`
	// StartTime is the synthetic event time of record 0; zero means "wall
	// time at the job's first start".
	StartTime time.Time `yaml:"startTime" json:"startTime"`
}

// WindowSpec configures the window assigner.
type WindowSpec struct {
	Type string        `yaml:"type" json:"type"`
	Size time.Duration `yaml:"size" json:"size"`
}

// SinkSpec selects and configures the sink.
type SinkSpec struct {
	Type string       `yaml:"type" json:"type"`
	File FileSinkSpec `yaml:"file" json:"file"`
}

// FileSinkSpec configures the file sink.
type FileSinkSpec struct {
	Path   string `yaml:"path" json:"path"`
	Format string `yaml:"format" json:"format"`
}

// Values accepted by the spec.
const (
	TimeEvent      = "event"
	TimeProcessing = "processing"

	SourceDatagen = "datagen"
	WindowTumble  = "tumbling"
	AggregateCnt  = "count"
	SinkFile      = "file"
	SinkStdout    = "stdout"
	FormatJSONL   = "jsonl"
)

// Bounded reports whether the source ends by itself.
func (s *Spec) Bounded() bool { return s.Source.Datagen.Count > 0 }

// defaultSpec returns the values a field takes when the document omits it.
func defaultSpec() Spec {
	return Spec{
		Parallelism:    1,
		MaxParallelism: 128,
		Time:           TimeEvent,
		Checkpoint:     CheckpointSpec{Interval: 10 * time.Second, Retained: 3},
		Source: SourceSpec{Datagen: DatagenSpec{
			Rate: 1000,
			Keys: 100,
			Seed: 1,
		}},
		Sink: SinkSpec{File: FileSinkSpec{Format: FormatJSONL}},
	}
}

// SpecError is one problem in a job spec. Line is 0 and File empty when
// unknown.
type SpecError struct {
	File string
	Line int
	Path string
	Msg  string
}

func (e *SpecError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ParseSpec parses a YAML (or JSON) job spec, applies defaults and validates
// it. file is used in error messages only. All problems found are returned,
// joined; each is a *SpecError.
func ParseSpec(data []byte, file string) (*Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &SpecError{File: file, Msg: "empty job spec"}
		}
		return nil, &SpecError{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &SpecError{File: file, Line: extra.Line, Msg: "a job spec must be a single YAML document"}
	}

	d := &specDecoder{file: file, lines: map[string]int{}, present: map[string]bool{}}
	spec := defaultSpec()
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, &SpecError{File: file, Line: doc.Line, Msg: "a job spec must be a mapping"}
	}
	d.decode(doc, reflect.ValueOf(&spec).Elem(), "")
	if len(d.errs) == 0 {
		d.validate(&spec)
	}
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return &spec, nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

// specDecoder decodes a yaml.Node tree into Spec by reflection over the yaml
// tags. It rejects unknown and duplicate keys, records the line of every path
// for later validation messages, and collects every error instead of stopping
// at the first.
type specDecoder struct {
	file    string
	errs    []error
	lines   map[string]int
	present map[string]bool
}

func (d *specDecoder) errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &SpecError{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// fail reports a validation error at path, using the line recorded for it.
func (d *specDecoder) fail(path, format string, args ...any) {
	d.errorf(d.lineOf(path), path, format, args...)
}

// lineOf returns the line of path or of its nearest present ancestor.
func (d *specDecoder) lineOf(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

func (d *specDecoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // explicit null keeps the default
	}
	d.present[path] = true
	switch v.Type() {
	case durationType:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" && n.Value != "0" {
			d.errorf(n.Line, path, `must be a duration like "10s" or "500ms", got %s`, describe(n))
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.errorf(n.Line, path, `must be a duration like "10s" or "500ms", got %s`, describe(n))
			return
		}
		v.SetInt(int64(dur))
		return
	case timeType:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, path, "must be an RFC 3339 time, got %s", describe(n))
			return
		}
		t, err := time.Parse(time.RFC3339Nano, n.Value)
		if err != nil {
			d.errorf(n.Line, path, "must be an RFC 3339 time like 2024-05-01T00:00:00Z, got %s", describe(n))
			return
		}
		v.Set(reflect.ValueOf(t))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errorf(n.Line, path, "must be a mapping, got %s", describe(n))
			return
		}
		fields := map[string]int{}
		for i := range v.NumField() {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if tag != "" && tag != "-" {
				fields[tag] = i
			}
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := k.Value
			p := join(path, key)
			if k.Kind != yaml.ScalarNode {
				d.errorf(k.Line, path, "keys must be strings, got %s", describe(k))
				continue
			}
			if seen[key] {
				d.errorf(k.Line, p, "duplicate key")
				continue
			}
			seen[key] = true
			idx, ok := fields[key]
			if !ok {
				d.errorf(k.Line, p, "unknown field (valid fields here: %s)", strings.Join(sortedKeys(fields), ", "))
				continue
			}
			d.lines[p] = k.Line
			d.decode(val, v.Field(idx), p)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.errorf(n.Line, path, "must be a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64:
		var x int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&x) != nil {
			d.errorf(n.Line, path, "must be an integer, got %s", describe(n))
			return
		}
		if v.OverflowInt(x) {
			d.errorf(n.Line, path, "integer %s out of range", n.Value)
			return
		}
		v.SetInt(x)
	default:
		// Only reachable if a field of an unsupported kind is added to Spec.
		d.errorf(n.Line, path, "internal error: cannot decode into %s", v.Type())
	}
}

// sortedKeys returns the field names in declaration order.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, len(m))
	for k, i := range m {
		keys[i] = k
	}
	return keys
}

// maxDatagenRate keeps the pacer's integer arithmetic far from overflow.
const maxDatagenRate = 1_000_000_000

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// notYet formats the message for a value the spec language reserves but the
// runtime does not implement yet.
func notYet(what string, value any, supported string) string {
	return fmt.Sprintf("%s %v is not supported yet (supported: %s)", what, value, supported)
}

func (d *specDecoder) validate(s *Spec) {
	switch {
	case s.Name == "":
		d.fail("name", "required")
	case !nameRE.MatchString(s.Name):
		d.fail("name", "must match %s, got %q", nameRE, s.Name)
	}

	switch {
	case s.Parallelism < 1:
		d.fail("parallelism", "must be >= 1, got %d", s.Parallelism)
	case s.Parallelism > 1:
		d.fail("parallelism", "%s", notYet("parallelism", s.Parallelism, "1"))
	}
	if s.MaxParallelism < 1 || s.MaxParallelism > 32768 {
		d.fail("maxParallelism", "must be between 1 and 32768, got %d", s.MaxParallelism)
	} else if s.MaxParallelism < s.Parallelism {
		d.fail("maxParallelism", "must be >= parallelism (%d), got %d", s.Parallelism, s.MaxParallelism)
	}

	switch s.Time {
	case TimeEvent:
	case TimeProcessing:
		d.fail("time", "%s", notYet("time characteristic", strconv.Quote(s.Time), "event"))
	default:
		d.fail("time", "must be one of event, processing, got %q", s.Time)
	}

	if s.Watermark.MaxOutOfOrderness < 0 {
		d.fail("watermark.maxOutOfOrderness", "must be >= 0, got %s", s.Watermark.MaxOutOfOrderness)
	}

	if iv := s.Checkpoint.Interval; iv < 0 || iv > 0 && iv < 100*time.Millisecond {
		d.fail("checkpoint.interval", "must be 0 (disabled) or >= 100ms, got %s", iv)
	}
	if s.Checkpoint.Retained < 1 {
		d.fail("checkpoint.retained", "must be >= 1, got %d", s.Checkpoint.Retained)
	}

	d.validateSource(s)

	switch s.KeyBy {
	case "key":
	case "":
		d.fail("keyBy", "required (datagen records have fields key, value, ts)")
	case "value", "ts":
		d.fail("keyBy", "%s", notYet("keying by field", strconv.Quote(s.KeyBy), "key"))
	default:
		d.fail("keyBy", "datagen records have no field %q (fields: key, value, ts)", s.KeyBy)
	}

	d.validateWindow(s)

	switch s.Aggregate {
	case AggregateCnt:
	case "":
		d.fail("aggregate", "required")
	case "sum", "min", "max", "avg":
		d.fail("aggregate", "%s", notYet("aggregate", strconv.Quote(s.Aggregate), AggregateCnt))
	default:
		d.fail("aggregate", "must be one of count, sum, min, max, avg, got %q", s.Aggregate)
	}

	d.validateSink(s)
}

func (d *specDecoder) validateSource(s *Spec) {
	switch s.Source.Type {
	case SourceDatagen:
	case "":
		d.fail("source.type", "required")
		return
	case "file", "http", "kafka":
		d.fail("source.type", "%s", notYet("source type", strconv.Quote(s.Source.Type), SourceDatagen))
		return
	default:
		d.fail("source.type", "unknown source type %q (supported: datagen)", s.Source.Type)
		return
	}
	g := s.Source.Datagen
	switch {
	case g.Rate < 0:
		d.fail("source.datagen.rate", "must be >= 0, got %d", g.Rate)
	case g.Rate > maxDatagenRate:
		d.fail("source.datagen.rate", "must be <= %d, got %d", maxDatagenRate, g.Rate)
	}
	if g.Keys < 1 {
		d.fail("source.datagen.keys", "must be >= 1, got %d", g.Keys)
	}
	if g.Count < 0 {
		d.fail("source.datagen.count", "must be >= 0, got %d", g.Count)
	}
	if g.Disorder < 0 {
		d.fail("source.datagen.disorder", "must be >= 0, got %s", g.Disorder)
	}
}

func (d *specDecoder) validateWindow(s *Spec) {
	if !d.present["window"] {
		d.fail("window", "required")
		return
	}
	switch s.Window.Type {
	case WindowTumble:
	case "":
		d.fail("window.type", "required")
	case "sliding", "session":
		d.fail("window.type", "%s", notYet("window type", strconv.Quote(s.Window.Type), WindowTumble))
	default:
		d.fail("window.type", "must be one of tumbling, sliding, session, got %q", s.Window.Type)
	}
	switch {
	case s.Window.Size < time.Millisecond:
		d.fail("window.size", "must be >= 1ms, got %s", s.Window.Size)
	case s.Window.Size%time.Millisecond != 0:
		d.fail("window.size", "must be a whole number of milliseconds, got %s", s.Window.Size)
	}
}

func (d *specDecoder) validateSink(s *Spec) {
	switch s.Sink.Type {
	case SinkFile:
		if s.Sink.File.Path == "" {
			d.fail("sink.file.path", "required for sink type file")
		}
		switch s.Sink.File.Format {
		case FormatJSONL:
		case "csv", "json":
			d.fail("sink.file.format", "%s", notYet("format", strconv.Quote(s.Sink.File.Format), FormatJSONL))
		default:
			d.fail("sink.file.format", "unknown format %q (supported: jsonl)", s.Sink.File.Format)
		}
	case SinkStdout:
		if d.present["sink.file"] {
			d.fail("sink.file", "only valid with sink type file")
		}
	case "":
		d.fail("sink.type", "required")
	case "kafka", "http":
		d.fail("sink.type", "%s", notYet("sink type", strconv.Quote(s.Sink.Type), "file, stdout"))
	default:
		d.fail("sink.type", "unknown sink type %q (supported: file, stdout)", s.Sink.Type)
	}
}
