package jobrunner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Spec is a parsed job specification with defaults applied. Obtain one with
// ParseSpec; a Spec built by hand is not validated.
type Spec struct {
	Name           string           `yaml:"name" json:"name"`
	Parallelism    int              `yaml:"parallelism" json:"parallelism"`
	MaxParallelism int              `yaml:"maxParallelism" json:"maxParallelism"`
	Time           string           `yaml:"time" json:"time"`
	Watermark      WatermarkSpec    `yaml:"watermark" json:"watermark"`
	Checkpoint     CheckpointSpec   `yaml:"checkpoint" json:"checkpoint"`
	StateBackend   string           `yaml:"stateBackend" json:"stateBackend"`
	Source         SourceSpec       `yaml:"source" json:"source"`
	Transforms     []TransformSpec  `yaml:"transforms" json:"transforms"`
	KeyBy          string           `yaml:"keyBy" json:"keyBy"`
	Window         WindowSpec       `yaml:"window" json:"window"`
	Aggregate      Aggregates       `yaml:"aggregate" json:"aggregate"`
	Sink           SinkSpec         `yaml:"sink" json:"sink"`
	LateSink       SinkSpec         `yaml:"lateSink" json:"lateSink"`
	Resources      ResourcesSpec    `yaml:"resources" json:"resources"`
	AutoMigrate    *AutoMigrateSpec `yaml:"autoMigrate" json:"autoMigrate,omitempty"`
}

// AutoMigrateSpec is the job master's memory-pressure policy: when the Go
// heap stays above HeapLoad of resources.memory for Sustain, it moves every
// key group still on the heap to Pebble, without a restart.
type AutoMigrateSpec struct {
	HeapLoad float64       `yaml:"heapLoad" json:"heapLoad"`
	Sustain  time.Duration `yaml:"sustain" json:"sustain"`
}

// ResourcesSpec is what the job's container asks for: on YARN the container
// size; everywhere the memory limit the job master keeps its Go heap under
// (GOMEMLIMIT) and reports heap load against.
type ResourcesSpec struct {
	Memory ByteSize `yaml:"memory" json:"memory"`
	VCores int      `yaml:"vcores" json:"vcores"`
}

// ByteSize is a number of bytes, written in a spec as an integer (bytes) or
// with a binary unit: "512m", "1g", "1536Mi", "2Gi", "64k".
type ByteSize int64

// ParseByteSize parses the spec form of a ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRight(t, "kKmMgGtTiIbB")
	unit := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(t[len(num):], "B"), "b"))
	unit = strings.TrimSuffix(unit, "i")
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size like 512m, 1g or 1536Mi", s)
	}
	if n > math.MaxInt64>>sh {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(n << sh), nil
}

func (b ByteSize) String() string {
	for _, u := range []struct {
		sh   uint
		name string
	}{{40, "Ti"}, {30, "Gi"}, {20, "Mi"}, {10, "Ki"}} {
		if b > 0 && b%(1<<u.sh) == 0 {
			return strconv.FormatInt(int64(b>>u.sh), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// WatermarkSpec configures bounded out-of-orderness watermarks.
type WatermarkSpec struct {
	MaxOutOfOrderness time.Duration `yaml:"maxOutOfOrderness" json:"maxOutOfOrderness"`
	// IdleTimeout marks a source subtask idle after this long without
	// records, so it does not hold the watermark back; 0 never.
	IdleTimeout time.Duration `yaml:"idleTimeout" json:"idleTimeout"`
}

// CheckpointSpec configures periodic checkpoints. Interval 0 disables them.
type CheckpointSpec struct {
	Interval time.Duration `yaml:"interval" json:"interval"`
	Retained int           `yaml:"retained" json:"retained"`
}

// SourceSpec selects and configures the source.
type SourceSpec struct {
	Type        string         `yaml:"type" json:"type"`
	Parallelism int            `yaml:"parallelism" json:"parallelism"`
	Datagen     DatagenSpec    `yaml:"datagen" json:"datagen"`
	File        FileSourceSpec `yaml:"file" json:"file"`
	HTTP        HTTPSourceSpec `yaml:"http" json:"http"`
}

// DatagenSpec configures the deterministic generator source.
type DatagenSpec struct {
	Rate     float64       `yaml:"rate" json:"rate"`
	Keys     int           `yaml:"keys" json:"keys"`
	KeySkew  float64       `yaml:"keySkew" json:"keySkew"`
	Values   ValuesSpec    `yaml:"values" json:"values"`
	Seed     int64         `yaml:"seed" json:"seed"`
	Count    int64         `yaml:"count" json:"count"`
	Disorder time.Duration `yaml:"disorder" json:"disorder"`
	// StartTime is the synthetic event time of record 0; zero means "wall
	// time at the job's first start".
	StartTime time.Time `yaml:"startTime" json:"startTime"`
}

// ValuesSpec is the distribution of datagen's value field.
type ValuesSpec struct {
	Distribution string  `yaml:"distribution" json:"distribution"`
	Min          float64 `yaml:"min" json:"min"`
	Max          float64 `yaml:"max" json:"max"`
	Mean         float64 `yaml:"mean" json:"mean"`
	Stddev       float64 `yaml:"stddev" json:"stddev"`
}

// FieldSpec declares one field of a file or HTTP source.
type FieldSpec struct {
	Name string `yaml:"name" json:"name"`
	Type string `yaml:"type" json:"type"`
}

// FileSourceSpec configures the file source.
type FileSourceSpec struct {
	Path      string      `yaml:"path" json:"path"`
	Format    string      `yaml:"format" json:"format"`
	Fields    []FieldSpec `yaml:"fields" json:"fields"`
	TimeField string      `yaml:"timeField" json:"timeField"`
	Header    bool        `yaml:"header" json:"header"`
	Tail      bool        `yaml:"tail" json:"tail"`
	OnError   string      `yaml:"onError" json:"onError"`
}

// HTTPSourceSpec configures the ingest endpoint of the job master.
type HTTPSourceSpec struct {
	Fields       []FieldSpec `yaml:"fields" json:"fields"`
	TimeField    string      `yaml:"timeField" json:"timeField"`
	MaxBodyBytes int64       `yaml:"maxBodyBytes" json:"maxBodyBytes"`
}

// TransformSpec is one stateless operator before key-by: exactly one of
// filter, map and flatMap.
type TransformSpec struct {
	Filter  string      `yaml:"filter" json:"filter"`
	Map     FieldList   `yaml:"map" json:"map"`
	FlatMap FlatMapSpec `yaml:"flatMap" json:"flatMap"`
}

// FieldList is an ordered mapping of output field names to expressions.
type FieldList []FieldExpr

// FieldExpr is one field of a map transform.
type FieldExpr struct {
	Name string `json:"name"`
	Expr string `json:"expr"`
}

// FlatMapSpec splits a string field into one record per part.
type FlatMapSpec struct {
	Field     string `yaml:"field" json:"field"`
	Separator string `yaml:"separator" json:"separator"`
	As        string `yaml:"as" json:"as"`
}

// WindowSpec configures the window assigner.
type WindowSpec struct {
	Type            string        `yaml:"type" json:"type"`
	Size            time.Duration `yaml:"size" json:"size"`
	Slide           time.Duration `yaml:"slide" json:"slide"`
	Gap             time.Duration `yaml:"gap" json:"gap"`
	AllowedLateness time.Duration `yaml:"allowedLateness" json:"allowedLateness"`
	Parallelism     int           `yaml:"parallelism" json:"parallelism"`
}

// Aggregates are the aggregates a window computes. In YAML either one
// function name ("count") or a list of {fn, field, as}.
type Aggregates []AggregateSpec

// AggregateSpec is one aggregate of a window.
type AggregateSpec struct {
	Fn    string `yaml:"fn" json:"fn"`
	Field string `yaml:"field" json:"field"`
	As    string `yaml:"as" json:"as"`
}

// SinkSpec selects and configures a sink.
type SinkSpec struct {
	Type string       `yaml:"type" json:"type"`
	File FileSinkSpec `yaml:"file" json:"file"`
	HTTP WebhookSpec  `yaml:"http" json:"http"`
}

// FileSinkSpec configures the file sink.
type FileSinkSpec struct {
	Path     string `yaml:"path" json:"path"`
	Format   string `yaml:"format" json:"format"`
	RollSize int64  `yaml:"rollSize" json:"rollSize"`
}

// WebhookSpec configures the HTTP (webhook) sink.
type WebhookSpec struct {
	URL        string            `yaml:"url" json:"url"`
	BatchSize  int               `yaml:"batchSize" json:"batchSize"`
	Timeout    time.Duration     `yaml:"timeout" json:"timeout"`
	MaxRetries int               `yaml:"maxRetries" json:"maxRetries"`
	Headers    map[string]string `yaml:"headers" json:"headers"`
}

// Values accepted by the spec.
const (
	TimeEvent      = "event"
	TimeProcessing = "processing"

	SourceDatagen = "datagen"
	SourceFile    = "file"
	SourceHTTP    = "http"

	SinkFile   = "file"
	SinkStdout = "stdout"
	SinkHTTP   = "http"

	BackendHeap   = "heap"
	BackendPebble = "pebble"

	windowSession = "session"
)

// Bounded reports whether the source ends by itself.
func (s *Spec) Bounded() bool {
	switch s.Source.Type {
	case SourceDatagen:
		return s.Source.Datagen.Count > 0
	case SourceFile:
		return !s.Source.File.Tail
	}
	return false
}

// Keyed reports whether the job has a keyed window stage.
func (s *Spec) Keyed() bool { return s.Window.Type != "" }

// defaultSpec returns the values a field takes when the document omits it.
func defaultSpec() Spec {
	return Spec{
		Parallelism:    1,
		MaxParallelism: 128,
		Time:           TimeEvent,
		Checkpoint:     CheckpointSpec{Interval: 10 * time.Second, Retained: 3},
		StateBackend:   BackendHeap,
		Resources:      ResourcesSpec{Memory: 1 << 30, VCores: 1},
		Source: SourceSpec{Datagen: DatagenSpec{
			Rate: 1000,
			Keys: 100,
			Seed: 1,
		}},
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
	if len(d.errs) == 0 {
		d.compile(&spec)
	}
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return &spec, nil
}

var (
	durationType   = reflect.TypeFor[time.Duration]()
	byteSizeType   = reflect.TypeFor[ByteSize]()
	timeType       = reflect.TypeFor[time.Time]()
	fieldListType  = reflect.TypeFor[FieldList]()
	aggregatesType = reflect.TypeFor[Aggregates]()
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
	case byteSizeType:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, path, `must be a size like "512m" or "1g", got %s`, describe(n))
			return
		}
		b, err := ParseByteSize(n.Value)
		if err != nil {
			d.errorf(n.Line, path, "must be a size: %v", err)
			return
		}
		v.SetInt(int64(b))
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
	case fieldListType:
		// An ordered mapping: output field → expression.
		if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
			d.errorf(n.Line, path, "must be a mapping of output field names to expressions, got %s", describe(n))
			return
		}
		var fl FieldList
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if seen[k.Value] {
				d.errorf(k.Line, p, "duplicate key")
				continue
			}
			seen[k.Value] = true
			if val.Kind != yaml.ScalarNode || val.Value == "" {
				d.errorf(val.Line, p, "must be an expression, got %s", describe(val))
				continue
			}
			d.lines[p] = k.Line
			fl = append(fl, FieldExpr{Name: k.Value, Expr: val.Value})
		}
		v.Set(reflect.ValueOf(fl))
		return
	case aggregatesType:
		// One function name, or a list of {fn, field, as}.
		if n.Kind == yaml.ScalarNode {
			v.Set(reflect.ValueOf(Aggregates{{Fn: n.Value}}))
			return
		}
	}
	switch v.Kind() {
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n.Line, path, "must be a list, got %s", describe(n))
			return
		}
		sl := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, el := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = el.Line
			d.decode(el, sl.Index(i), p)
		}
		v.Set(sl)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n.Line, path, "must be a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if val.Kind != yaml.ScalarNode {
				d.errorf(val.Line, join(path, k.Value), "must be a string, got %s", describe(val))
				continue
			}
			m.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(val.Value))
		}
		v.Set(m)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.errorf(n.Line, path, "must be true or false, got %s", describe(n))
			return
		}
		var b bool
		_ = n.Decode(&b)
		v.SetBool(b)
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&f) != nil {
			d.errorf(n.Line, path, "must be a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Pointer: // an optional section: present means set
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
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

// defaultAutoMigrateSustain is how long the heap load must stay above the
// threshold before the memory-pressure policy acts.
const defaultAutoMigrateSustain = 30 * time.Second

// minJobMemory is the smallest memory a job may ask for.
const minJobMemory ByteSize = 64 << 20

// maxDatagenRate keeps the pacer's arithmetic far from overflow.
const maxDatagenRate = 1_000_000_000

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	fieldRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

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
	if s.Parallelism < 1 {
		d.fail("parallelism", "must be >= 1, got %d", s.Parallelism)
	}
	if s.MaxParallelism < 1 || s.MaxParallelism > 32768 {
		d.fail("maxParallelism", "must be between 1 and 32768, got %d", s.MaxParallelism)
	} else if s.Parallelism > s.MaxParallelism {
		d.fail("parallelism", "must be <= maxParallelism (%d), got %d", s.MaxParallelism, s.Parallelism)
	}
	switch s.Time {
	case TimeEvent, TimeProcessing:
	default:
		d.fail("time", "must be one of event, processing, got %q", s.Time)
	}
	if s.Resources.Memory < minJobMemory {
		d.fail("resources.memory", "must be at least %s, got %s", minJobMemory, s.Resources.Memory)
	}
	if s.Resources.VCores < 1 {
		d.fail("resources.vcores", "must be >= 1, got %d", s.Resources.VCores)
	}
	if s.Watermark.MaxOutOfOrderness < 0 {
		d.fail("watermark.maxOutOfOrderness", "must be >= 0, got %s", s.Watermark.MaxOutOfOrderness)
	}
	if s.Watermark.IdleTimeout < 0 {
		d.fail("watermark.idleTimeout", "must be >= 0, got %s", s.Watermark.IdleTimeout)
	}
	if iv := s.Checkpoint.Interval; iv < 0 || iv > 0 && iv < 100*time.Millisecond {
		d.fail("checkpoint.interval", "must be 0 (disabled) or >= 100ms, got %s", iv)
	}
	if s.Checkpoint.Retained < 1 {
		d.fail("checkpoint.retained", "must be >= 1, got %d", s.Checkpoint.Retained)
	}
	switch s.StateBackend {
	case BackendHeap:
	case BackendPebble:
		if s.Window.Type == windowSession {
			d.fail("stateBackend", "%s", notYet("state backend for session windows", strconv.Quote(s.StateBackend), BackendHeap))
		}
	default:
		d.fail("stateBackend", "must be heap or pebble, got %q", s.StateBackend)
	}
	if a := s.AutoMigrate; a != nil {
		if !d.present["autoMigrate.sustain"] {
			a.Sustain = defaultAutoMigrateSustain
		}
		if !(a.HeapLoad > 0 && a.HeapLoad < 1) {
			d.fail("autoMigrate.heapLoad", "must be between 0 and 1 (exclusive), got %v", a.HeapLoad)
		}
		if a.Sustain < 0 {
			d.fail("autoMigrate.sustain", "must be >= 0, got %s", a.Sustain)
		}
		if s.Window.Type == windowSession {
			d.fail("autoMigrate", "session windows keep their state on the heap: nothing to migrate")
		} else if !s.Keyed() {
			d.fail("autoMigrate", "the job has no window: no keyed state to migrate")
		}
	}

	d.validateSource(s)
	d.validateTransforms(s)
	d.validateWindow(s)
	d.validateSink("sink", s.Sink, true)
	if d.present["lateSink"] {
		if !s.Keyed() {
			d.fail("lateSink", "only valid with a window (it receives records later than the window allows)")
		}
		d.validateSink("lateSink", s.LateSink, true)
	}
}

func (d *specDecoder) parallelism(path string, p, max int) {
	if p < 0 {
		d.fail(path, "must be >= 1, got %d", p)
	} else if p > max {
		d.fail(path, "must be <= maxParallelism (%d), got %d", max, p)
	}
}

func (d *specDecoder) validateSource(s *Spec) {
	src := &s.Source
	d.parallelism("source.parallelism", src.Parallelism, s.MaxParallelism)
	for _, other := range []string{SourceDatagen, SourceFile, SourceHTTP} {
		if other != src.Type && d.present["source."+other] {
			d.fail("source."+other, "only valid with source type %s", other)
		}
	}
	switch src.Type {
	case SourceDatagen:
		g := src.Datagen
		switch {
		case g.Rate < 0:
			d.fail("source.datagen.rate", "must be >= 0, got %g", g.Rate)
		case g.Rate > maxDatagenRate:
			d.fail("source.datagen.rate", "must be <= %d, got %g", maxDatagenRate, g.Rate)
		}
		if g.Keys < 1 {
			d.fail("source.datagen.keys", "must be >= 1, got %d", g.Keys)
		}
		if g.KeySkew != 0 && g.KeySkew <= 1 {
			d.fail("source.datagen.keySkew", "must be 0 (uniform) or a Zipf exponent > 1, got %g", g.KeySkew)
		}
		if g.Count < 0 {
			d.fail("source.datagen.count", "must be >= 0, got %d", g.Count)
		}
		if g.Disorder < 0 {
			d.fail("source.datagen.disorder", "must be >= 0, got %s", g.Disorder)
		}
		switch v := g.Values; v.Distribution {
		case "", "uniform":
			if v.Max < v.Min {
				d.fail("source.datagen.values.max", "must be >= min (%g), got %g", v.Min, v.Max)
			}
		case "normal":
			if v.Stddev < 0 {
				d.fail("source.datagen.values.stddev", "must be >= 0, got %g", v.Stddev)
			}
		case "exponential":
			if v.Mean <= 0 {
				d.fail("source.datagen.values.mean", "must be > 0 for an exponential distribution, got %g", v.Mean)
			}
		default:
			d.fail("source.datagen.values.distribution", "must be uniform, normal or exponential, got %q", v.Distribution)
		}
	case SourceFile:
		f := src.File
		if f.Path == "" {
			d.fail("source.file.path", "required for source type file")
		}
		switch f.Format {
		case "", "jsonl", "csv":
		default:
			d.fail("source.file.format", "must be jsonl or csv, got %q", f.Format)
		}
		switch f.OnError {
		case "", "fail", "skip":
		default:
			d.fail("source.file.onError", "must be fail or skip, got %q", f.OnError)
		}
		d.validateFields("source.file", f.Fields, f.TimeField, s.Time)
	case SourceHTTP:
		if src.Parallelism > 1 {
			d.fail("source.parallelism", "must be 1 for source type http (one ingest log), got %d", src.Parallelism)
		}
		if src.HTTP.MaxBodyBytes < 0 {
			d.fail("source.http.maxBodyBytes", "must be >= 0, got %d", src.HTTP.MaxBodyBytes)
		}
		d.validateFields("source.http", src.HTTP.Fields, src.HTTP.TimeField, "")
	case "":
		d.fail("source.type", "required")
	case "kafka":
		d.fail("source.type", "%s", notYet("source type", strconv.Quote(src.Type), "datagen, file, http"))
	default:
		d.fail("source.type", "unknown source type %q (supported: datagen, file, http)", src.Type)
	}
}

func (d *specDecoder) validateFields(path string, fields []FieldSpec, timeField, timeChar string) {
	if len(fields) == 0 {
		d.fail(path+".fields", "required: the fields of the records, each {name, type}")
		return
	}
	seen := map[string]string{}
	for i, f := range fields {
		p := fmt.Sprintf("%s.fields[%d]", path, i)
		switch {
		case !fieldRE.MatchString(f.Name):
			d.fail(p+".name", "must be an identifier (letters, digits, _), got %q", f.Name)
		case seen[f.Name] != "":
			d.fail(p+".name", "%q appears twice", f.Name)
		}
		switch f.Type {
		case "int", "float", "string", "bool":
		default:
			d.fail(p+".type", "must be int, float, string or bool, got %q", f.Type)
		}
		seen[f.Name] = f.Type
	}
	switch {
	case timeField == "" && timeChar == TimeEvent:
		d.fail(path+".timeField", "required with time: event (the field holding the event time)")
	case timeField != "" && seen[timeField] == "":
		d.fail(path+".timeField", "names no field: %q", timeField)
	case timeField != "" && seen[timeField] != "int" && seen[timeField] != "string":
		d.fail(path+".timeField", "must name an int (epoch ms) or string (RFC 3339) field; %q is %s", timeField, seen[timeField])
	}
}

func (d *specDecoder) validateTransforms(s *Spec) {
	for i, t := range s.Transforms {
		p := fmt.Sprintf("transforms[%d]", i)
		n := 0
		if t.Filter != "" {
			n++
		}
		if len(t.Map) > 0 {
			n++
		}
		if d.present[p+".flatMap"] {
			n++
			if t.FlatMap.Field == "" {
				d.fail(p+".flatMap.field", "required: the string field to split")
			}
			if t.FlatMap.As == "" {
				d.fail(p+".flatMap.as", "required: the name of the field each part goes to")
			}
		}
		if n != 1 {
			d.fail(p, "must have exactly one of filter, map, flatMap")
		}
	}
}

var aggregateFns = []string{"count", "sum", "min", "max", "avg", "countDistinct"}

func (d *specDecoder) validateWindow(s *Spec) {
	w := s.Window
	if !s.Keyed() {
		if d.present["window"] {
			d.fail("window.type", "required")
		}
		if s.KeyBy != "" {
			d.fail("keyBy", "needs a window: keyed state is kept by windows")
		}
		if len(s.Aggregate) > 0 {
			d.fail("aggregate", "needs a window")
		}
		return
	}
	if s.KeyBy == "" {
		d.fail("keyBy", "required with a window: the field or expression to key by")
	}
	d.parallelism("window.parallelism", w.Parallelism, s.MaxParallelism)
	ms := func(path string, v time.Duration, required bool) {
		switch {
		case required && v < time.Millisecond:
			d.fail(path, "must be >= 1ms, got %s", v)
		case !required && v < 0:
			d.fail(path, "must be >= 0, got %s", v)
		case v%time.Millisecond != 0:
			d.fail(path, "must be a whole number of milliseconds, got %s", v)
		}
	}
	switch w.Type {
	case "tumbling":
		ms("window.size", w.Size, true)
	case "sliding":
		ms("window.size", w.Size, true)
		ms("window.slide", w.Slide, true)
		if w.Slide > w.Size {
			d.fail("window.slide", "must be <= size (%s), got %s", w.Size, w.Slide)
		}
	case "session":
		ms("window.gap", w.Gap, true)
	default:
		d.fail("window.type", "must be one of tumbling, sliding, session, got %q", w.Type)
	}
	ms("window.allowedLateness", w.AllowedLateness, false)
	if len(s.Aggregate) == 0 {
		d.fail("aggregate", "required with a window: count, or a list of {fn, field, as}")
	}
	names := map[string]bool{"windowStart": true, "windowEnd": true, "key": true}
	for i, a := range s.Aggregate {
		p := fmt.Sprintf("aggregate[%d]", i)
		if len(s.Aggregate) == 1 && d.lines[p] == 0 {
			p = "aggregate"
		}
		if !slices.Contains(aggregateFns, a.Fn) {
			d.fail(p+".fn", "must be one of %s, got %q", strings.Join(aggregateFns, ", "), a.Fn)
			continue
		}
		if a.Fn == "count" && a.Field != "" {
			d.fail(p+".field", "count takes no field")
		}
		if a.Fn != "count" && a.Field == "" {
			d.fail(p+".field", "required for %s", a.Fn)
		}
		as := a.As
		if as == "" {
			as = a.Fn
			if a.Field != "" {
				as = a.Fn + "_" + a.Field
			}
		}
		if names[as] {
			d.fail(p+".as", "output field %q is used twice (windowStart, windowEnd and key are taken)", as)
		}
		names[as] = true
	}
}

func (d *specDecoder) validateSink(path string, k SinkSpec, required bool) {
	for _, other := range []string{SinkFile, SinkHTTP} {
		if other != k.Type && d.present[path+"."+other] {
			d.fail(path+"."+other, "only valid with %s type %s", path, other)
		}
	}
	switch k.Type {
	case SinkFile:
		if k.File.Path == "" {
			d.fail(path+".file.path", "required for sink type file (a directory for the part files)")
		}
		switch k.File.Format {
		case "", "jsonl", "csv":
		default:
			d.fail(path+".file.format", "must be jsonl or csv, got %q", k.File.Format)
		}
		if k.File.RollSize < 0 {
			d.fail(path+".file.rollSize", "must be >= 0 bytes, got %d", k.File.RollSize)
		}
	case SinkStdout:
	case SinkHTTP:
		h := k.HTTP
		if !strings.HasPrefix(h.URL, "http://") && !strings.HasPrefix(h.URL, "https://") {
			d.fail(path+".http.url", "required: an http:// or https:// URL")
		}
		if h.BatchSize < 0 {
			d.fail(path+".http.batchSize", "must be >= 0, got %d", h.BatchSize)
		}
		if h.Timeout < 0 {
			d.fail(path+".http.timeout", "must be >= 0, got %s", h.Timeout)
		}
	case "":
		if required {
			d.fail(path+".type", "required")
		}
	case "kafka":
		d.fail(path+".type", "%s", notYet("sink type", strconv.Quote(k.Type), "file, stdout, http"))
	default:
		d.fail(path+".type", "unknown sink type %q (supported: file, stdout, http)", k.Type)
	}
}

// compile checks the expressions and the window against the schemas they
// will see.
func (d *specDecoder) compile(s *Spec) {
	schema, err := sourceSchema(s)
	if err != nil {
		d.fail("source", "%v", err)
		return
	}
	if _, err := compileOperators(s, schema); err != nil {
		var se *SpecError
		if errors.As(err, &se) {
			d.fail(se.Path, "%s", strings.TrimPrefix(se.Msg, "flow: "))
			return
		}
		d.fail("", "%v", err)
	}
}
