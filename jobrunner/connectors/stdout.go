package connectors

import (
	"fmt"
	"io"
	"sync"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// NewStdoutSink returns a sink writing every record at once as a JSON line
// (the schema's field names) to w, shared by all subtasks (lines never
// interleave). It is at-least-once: records written after the last completed
// checkpoint are written again when the job restores.
func NewStdoutSink(w io.Writer, schema *flow.Schema) (flow.SinkFactory, error) {
	if w == nil {
		return nil, fmt.Errorf("%w: stdout sink: no writer", ErrInvalidConfig)
	}
	if schema == nil || len(schema.Names) == 0 {
		return nil, fmt.Errorf("%w: stdout sink: no schema", ErrInvalidConfig)
	}
	out := &lockedWriter{w: w}
	return func(index, par int, state []byte) (flow.Sink, error) {
		return &stdoutSink{out: out, names: schema.Names}, nil
	}, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

type stdoutSink struct {
	out   *lockedWriter
	names []string
	line  []byte
}

var _ flow.Sink = (*stdoutSink)(nil)

func (s *stdoutSink) Emit(r *flow.Record) error {
	s.line = append(appendJSON(s.line[:0], s.names, r.Row), '\n')
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	if _, err := s.out.w.Write(s.line); err != nil {
		return fmt.Errorf("connectors: stdout sink: %w", err)
	}
	return nil
}

// Snapshot has nothing to save: written lines cannot be taken back.
func (s *stdoutSink) Snapshot(int64) ([]byte, error) { return []byte{}, nil }
func (s *stdoutSink) Commit(int64) error             { return nil }
func (s *stdoutSink) Close() error                   { return nil }
