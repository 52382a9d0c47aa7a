package jobrunner

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// sink receives fired window results. commit makes everything written so far
// durable and returns the committed length of the output; a sink restored
// with that length continues exactly after the last committed result.
type sink interface {
	name() string
	write(WindowResult) error
	commit() (int64, error)
	close() error
}

var (
	_ sink = (*fileSink)(nil)
	_ sink = (*writerSink)(nil)
)

// appendJSONL formats one result as a JSON line.
func appendJSONL(buf []byte, r WindowResult) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return buf, err
	}
	return append(append(buf, b...), '\n'), nil
}

// fileSink appends JSON lines to a local file. It is exactly-once together
// with checkpoints: commit flushes and fsyncs and reports the file length,
// and a restore truncates the file back to the length of the checkpoint, so
// results written after the checkpoint are rewritten identically on replay.
type fileSink struct {
	path   string
	f      *os.File
	w      *bufio.Writer
	length int64 // bytes written, including the unflushed buffer
	line   []byte
}

// openFileSink opens path for appending at length, truncating anything after
// it. A fresh job (no checkpoint) passes length 0.
func openFileSink(path string, length int64) (*fileSink, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("jobrunner: file sink: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jobrunner: file sink: %w", err)
	}
	fail := func(err error) (*fileSink, error) {
		f.Close()
		return nil, fmt.Errorf("jobrunner: file sink %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if fi.Size() < length {
		return fail(fmt.Errorf("%w: output file has %d bytes, the checkpoint committed %d (was it truncated or replaced?)",
			ErrIncompatibleCheckpoint, fi.Size(), length))
	}
	if err := f.Truncate(length); err != nil {
		return fail(err)
	}
	if _, err := f.Seek(length, io.SeekStart); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return &fileSink{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10), length: length}, nil
}

func (s *fileSink) name() string { return "Sink: file" }

func (s *fileSink) write(r WindowResult) error {
	var err error
	s.line, err = appendJSONL(s.line[:0], r)
	if err != nil {
		return err
	}
	n, err := s.w.Write(s.line)
	s.length += int64(n)
	if err != nil {
		return fmt.Errorf("jobrunner: file sink %s: %w", s.path, err)
	}
	return nil
}

func (s *fileSink) commit() (int64, error) {
	if err := s.w.Flush(); err != nil {
		return 0, fmt.Errorf("jobrunner: file sink %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return 0, fmt.Errorf("jobrunner: file sink %s: %w", s.path, err)
	}
	return s.length, nil
}

func (s *fileSink) close() error {
	ferr := s.w.Flush()
	cerr := s.f.Close()
	if ferr != nil {
		return fmt.Errorf("jobrunner: file sink %s: %w", s.path, ferr)
	}
	if cerr != nil {
		return fmt.Errorf("jobrunner: file sink %s: %w", s.path, cerr)
	}
	return nil
}

// writerSink writes JSON lines to a stream (stdout). A stream cannot be
// rewound, so after a restore it is at-least-once: results between the
// checkpoint and the failure are written again.
type writerSink struct {
	w      *bufio.Writer
	length int64
	line   []byte
}

func newWriterSink(w io.Writer) *writerSink {
	return &writerSink{w: bufio.NewWriter(w)}
}

func (s *writerSink) name() string { return "Sink: stdout" }

func (s *writerSink) write(r WindowResult) error {
	var err error
	s.line, err = appendJSONL(s.line[:0], r)
	if err != nil {
		return err
	}
	n, err := s.w.Write(s.line)
	s.length += int64(n)
	if err != nil {
		return fmt.Errorf("jobrunner: stdout sink: %w", err)
	}
	return nil
}

func (s *writerSink) commit() (int64, error) {
	if err := s.w.Flush(); err != nil {
		return 0, fmt.Errorf("jobrunner: stdout sink: %w", err)
	}
	return s.length, nil
}

func (s *writerSink) close() error {
	_, err := s.commit()
	return err
}
