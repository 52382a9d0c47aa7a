package jobrunner

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner/connectors"
	"github.com/tidewatch/tidewatch/jobrunner/flow"
	"github.com/tidewatch/tidewatch/state"
)

// SourceParallelism is the parallelism of the source and its chained operators.
func (s *Spec) SourceParallelism() int {
	if s.Source.Parallelism > 0 {
		return s.Source.Parallelism
	}
	if s.Source.Type == SourceHTTP {
		return 1
	}
	return s.Parallelism
}

// WindowParallelism is the parallelism of the window and its sinks.
func (s *Spec) WindowParallelism() int {
	if s.Window.Parallelism > 0 {
		return s.Window.Parallelism
	}
	return s.Parallelism
}

// built is a job's plan and what the job master needs to watch it.
type built struct {
	plan   flow.Plan
	ingest *connectors.Ingest // the http source's endpoint, or nil
	late   lateCounts

	// stateDir is where the Pebble store of the keyed state goes; it is
	// opened when the first keyed operator is built and closed (and
	// deleted) by closeState.
	stateDir string
	pdbMu    sync.Mutex
	pdb      *state.PebbleDB
}

// windowStateID is the window operator's state in the Pebble store.
const windowStateID state.StateID = 1

func (b *built) pebble() (*state.PebbleDB, error) {
	b.pdbMu.Lock()
	defer b.pdbMu.Unlock()
	if b.pdb == nil {
		if b.stateDir == "" {
			return nil, errors.New("jobrunner: no state directory for the Pebble backend")
		}
		db, err := state.OpenPebble(b.stateDir)
		if err != nil {
			return nil, err
		}
		b.pdb = db
	}
	return b.pdb, nil
}

// closeState closes the Pebble store, if open, and deletes its directory.
func (b *built) closeState() error {
	b.pdbMu.Lock()
	defer b.pdbMu.Unlock()
	if b.pdb == nil {
		return nil
	}
	err := b.pdb.Close()
	b.pdb = nil
	return err
}

// lateCounts counts records later than a window allows.
type lateCounts struct {
	sideOutput, dropped atomic.Int64
}

// buildPlan turns a spec into the engine's plan. ckDir holds the ingest log of
// an http source.
func buildPlan(spec *Spec, ckDir string, local []bool, log *logrus.Entry) (*built, error) {
	b := &built{}
	b.plan = flow.Plan{
		MaxParallelism:    spec.MaxParallelism,
		SourceParallelism: spec.SourceParallelism(),
		Watermarks: flow.Watermarks{
			ProcessingTime:    spec.Time == TimeProcessing,
			MaxOutOfOrderness: spec.Watermark.MaxOutOfOrderness,
			IdleTimeout:       spec.Watermark.IdleTimeout,
		},
	}
	schema, err := b.source(spec, ckDir, log)
	if err != nil {
		return nil, err
	}

	ops, err := compileOperators(spec, schema)
	if err != nil {
		return nil, err
	}
	if len(ops.stages) > 0 {
		stages := ops.stages
		b.plan.Chain = func(out flow.Emitter) (flow.Emitter, error) {
			for i := len(stages) - 1; i >= 0; i-- {
				var err error
				if out, err = stages[i](out); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
	}
	sinkSchema := ops.out
	if spec.Keyed() {
		cfg, aggs, winIn := ops.window, ops.aggs, ops.windowIn
		b.plan.KeyedParallelism = spec.WindowParallelism()
		b.plan.Keyed = func(kgs state.KeyGroupRange, out, late flow.Emitter) (flow.KeyedOperator, error) {
			lateOut := flow.EmitterFunc(func(r *flow.Record) error {
				if late == nil {
					b.late.dropped.Add(1)
					return nil
				}
				b.late.sideOutput.Add(1)
				return late.Emit(r)
			})
			op, err := flow.NewWindowOperator(cfg, aggs, winIn, kgs, out, lateOut)
			if err != nil || cfg.Kind == flow.WindowSession {
				return op, err // sessions keep their state on the heap
			}
			db, err := b.pebble()
			if err != nil {
				return nil, err
			}
			initial, err := flow.ParseBackend(spec.StateBackend)
			if err != nil {
				return nil, err
			}
			return op, op.UsePebble(db, windowStateID, initial)
		}
		if spec.LateSink.Type != "" {
			if b.plan.LateSink, err = sinkFactory(spec.LateSink, winIn, spec.Name+"-late"); err != nil {
				return nil, &SpecError{Path: "lateSink", Msg: err.Error()}
			}
		}
	}
	if b.plan.Sink, err = sinkFactory(spec.Sink, sinkSchema, spec.Name); err != nil {
		return nil, &SpecError{Path: "sink", Msg: err.Error()}
	}
	if local != nil {
		if len(local) != b.plan.KeyedParallelism {
			return nil, fmt.Errorf("jobrunner: %d local subtasks given for keyed parallelism %d", len(local), b.plan.KeyedParallelism)
		}
		b.plan.Local = local
		b.plan.Sink = onlyLocal(b.plan.Sink, local)
		if b.plan.LateSink != nil {
			b.plan.LateSink = onlyLocal(b.plan.LateSink, local)
		}
	}
	return b, nil
}

// onlyLocal opens the sinks of the local keyed subtasks; the others get
// elsewhereSink. Another container writes their output, and a sink opened
// here would discard that container's uncommitted part files as its own.
func onlyLocal(f flow.SinkFactory, local []bool) flow.SinkFactory {
	return func(index, par int, st []byte) (flow.Sink, error) {
		if index < len(local) && !local[index] {
			return elsewhereSink(index), nil
		}
		return f(index, par, st)
	}
}

// elsewhereSink stands for a sink another container runs. It receives
// nothing: the partitioners keep that subtask's records from this process.
type elsewhereSink int

func (s elsewhereSink) Emit(*flow.Record) error {
	return fmt.Errorf("jobrunner: a record reached keyed subtask %d, which runs in another container", int(s))
}
func (elsewhereSink) Snapshot(int64) ([]byte, error) { return nil, nil }
func (elsewhereSink) Commit(int64) error             { return nil }
func (elsewhereSink) Close() error                   { return nil }

// emitter adapts an operator's Process to flow.Emitter.
func emitter(op interface{ Process(*flow.Record) error }) flow.Emitter {
	if op == nil {
		return nil
	}
	return flow.EmitterFunc(op.Process)
}

func fields(fs []FieldSpec) []connectors.Field {
	out := make([]connectors.Field, len(fs))
	for i, f := range fs {
		out[i] = connectors.Field{Name: f.Name, Type: f.Type}
	}
	return out
}

func (b *built) source(spec *Spec, ckDir string, log *logrus.Entry) (*flow.Schema, error) {
	src := spec.Source
	var err error
	switch src.Type {
	case SourceDatagen:
		g := src.Datagen
		cfg := connectors.DatagenConfig{Rate: g.Rate, Keys: g.Keys, KeySkew: g.KeySkew, Disorder: g.Disorder.Milliseconds(),
			Count: g.Count, Seed: g.Seed,
			Values: connectors.ValueDist{Dist: g.Values.Distribution, Min: g.Values.Min, Max: g.Values.Max, Mean: g.Values.Mean, Stddev: g.Values.Stddev}}
		if !g.StartTime.IsZero() {
			cfg.StartTime = g.StartTime.UnixMilli()
		}
		if b.plan.Source, err = connectors.NewDatagenSource(cfg); err != nil {
			return nil, &SpecError{Path: "source.datagen", Msg: err.Error()}
		}
		return connectors.DatagenSchema(), nil
	case SourceFile:
		f := src.File
		fs, err := connectors.NewFileSource(connectors.FileConfig{Path: f.Path, Format: f.Format, Fields: fields(f.Fields),
			TimeField: f.TimeField, CSVHeader: f.Header, Tail: f.Tail, OnError: f.OnError}, log)
		if err != nil {
			return nil, &SpecError{Path: "source.file", Msg: err.Error()}
		}
		b.plan.Source = fs.Factory()
		return fs.Schema(), nil
	case SourceHTTP:
		h := src.HTTP
		if strings.Contains(ckDir, "://") {
			return nil, &SpecError{Path: "source.type", Msg: "the http source keeps its ingest log in the checkpoint directory, " +
				"which must be a local directory; " + ckDir + " is not"}
		}
		in, err := connectors.NewIngest(connectors.IngestConfig{Dir: ckDir, Fields: fields(h.Fields), TimeField: h.TimeField,
			MaxBodyBytes: h.MaxBodyBytes, Parallelism: 1}, log)
		if err != nil {
			return nil, &SpecError{Path: "source.http", Msg: err.Error()}
		}
		b.ingest = in
		b.plan.Source = in.Factory()
		return in.Schema(), nil
	}
	return nil, &SpecError{Path: "source.type", Msg: fmt.Sprintf("unknown source type %q", src.Type)}
}

func sinkFactory(k SinkSpec, schema *flow.Schema, name string) (flow.SinkFactory, error) {
	switch k.Type {
	case SinkFile:
		return connectors.NewFileSink(connectors.FileSinkConfig{Path: k.File.Path, Format: k.File.Format, RollSize: k.File.RollSize}, schema)
	case SinkStdout:
		return connectors.NewStdoutSink(os.Stdout, schema)
	case SinkHTTP:
		h := k.HTTP
		return connectors.NewWebhookSink(connectors.WebhookConfig{URL: h.URL, BatchSize: h.BatchSize, Timeout: h.Timeout,
			MaxRetries: h.MaxRetries, Headers: h.Headers, KeyPrefix: name}, schema, &http.Client{Timeout: max(h.Timeout, 10*time.Second)})
	}
	return nil, fmt.Errorf("unknown sink type %q", k.Type)
}

// operators is a spec's compiled operators: the chain run in the source
// subtasks and the window.
type operators struct {
	stages   []func(out flow.Emitter) (flow.Emitter, error)
	windowIn *flow.Schema // the window's input: the chain's output
	window   flow.WindowConfig
	aggs     []flow.AggConfig
	out      *flow.Schema // what the sink receives
}

// compileOperators compiles every expression and the window against the
// schemas they will see, so that a spec with an unknown field or a type error
// is rejected before anything runs. Errors are *SpecError naming the field.
func compileOperators(spec *Spec, schema *flow.Schema) (*operators, error) {
	ops := &operators{}
	discard := flow.EmitterFunc(func(*flow.Record) error { return nil })
	in := schema
	for i, t := range spec.Transforms {
		stageIn := in
		var st func(out flow.Emitter) (flow.Emitter, *flow.Schema, error)
		path := fmt.Sprintf("transforms[%d]", i)
		switch {
		case t.Filter != "":
			path += ".filter"
			expr := t.Filter
			st = func(out flow.Emitter) (flow.Emitter, *flow.Schema, error) {
				f, err := flow.NewFilter(expr, stageIn, out)
				if err != nil {
					return nil, nil, err
				}
				return emitter(f), stageIn, nil
			}
		case len(t.Map) > 0:
			path += ".map"
			fields := make([]flow.FieldExpr, len(t.Map))
			for k, f := range t.Map {
				fields[k] = flow.FieldExpr{Name: f.Name, Expr: f.Expr}
			}
			st = func(out flow.Emitter) (flow.Emitter, *flow.Schema, error) {
				m, err := flow.NewMap(fields, stageIn, out)
				if err != nil {
					return nil, nil, err
				}
				return emitter(m), m.OutSchema(), nil
			}
		default:
			path += ".flatMap"
			fm := t.FlatMap
			st = func(out flow.Emitter) (flow.Emitter, *flow.Schema, error) {
				f, err := flow.NewFlatMap(fm.Field, fm.Separator, fm.As, stageIn, out)
				if err != nil {
					return nil, nil, err
				}
				return emitter(f), f.OutSchema(), nil
			}
		}
		_, out, err := st(discard)
		if err != nil {
			return nil, &SpecError{Path: path, Msg: err.Error()}
		}
		ops.stages = append(ops.stages, func(o flow.Emitter) (flow.Emitter, error) {
			e, _, err := st(o)
			return e, err
		})
		in = out
	}
	ops.out = in
	if !spec.Keyed() {
		return ops, nil
	}
	keyIn := in
	if _, err := flow.NewKeyBy(spec.KeyBy, keyIn, spec.MaxParallelism, discard); err != nil {
		return nil, &SpecError{Path: "keyBy", Msg: err.Error()}
	}
	ops.stages = append(ops.stages, func(out flow.Emitter) (flow.Emitter, error) {
		k, err := flow.NewKeyBy(spec.KeyBy, keyIn, spec.MaxParallelism, out)
		if err != nil {
			return nil, err
		}
		return emitter(k), nil
	})
	w := spec.Window
	ops.window = flow.WindowConfig{Kind: w.Type, Size: w.Size.Milliseconds(), Slide: w.Slide.Milliseconds(),
		Gap: w.Gap.Milliseconds(), AllowedLateness: w.AllowedLateness.Milliseconds()}
	ops.aggs = make([]flow.AggConfig, len(spec.Aggregate))
	for i, a := range spec.Aggregate {
		ops.aggs[i] = flow.AggConfig{Func: a.Fn, Field: a.Field, As: a.As}
	}
	probe, err := flow.NewWindowOperator(ops.window, ops.aggs, keyIn, state.RangeForSubtask(spec.MaxParallelism, 1, 0), discard, nil)
	if err != nil {
		return nil, &SpecError{Path: "aggregate", Msg: err.Error()}
	}
	ops.windowIn, ops.out = keyIn, probe.OutSchema()
	return ops, nil
}

// sourceSchema is the schema of the records a spec's source produces.
func sourceSchema(spec *Spec) (*flow.Schema, error) {
	var fs []FieldSpec
	switch spec.Source.Type {
	case SourceDatagen:
		return connectors.DatagenSchema(), nil
	case SourceFile:
		fs = spec.Source.File.Fields
	case SourceHTTP:
		fs = spec.Source.HTTP.Fields
	}
	names, kinds := make([]string, len(fs)), make([]flow.Kind, len(fs))
	for i, f := range fs {
		k, err := flow.ParseKind(f.Type)
		if err != nil {
			return nil, err
		}
		names[i], kinds[i] = f.Name, k
	}
	return flow.NewSchema(names, kinds)
}
