package connectors

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// FileSinkConfig configures the exactly-once file sink.
type FileSinkConfig struct {
	// Path is the output directory, local or hdfs://host:port/dir. Required.
	Path string
	// Format is jsonl (default) or csv.
	Format string
	// RollSize starts a new part file once one holds this many bytes
	// (default 128 MiB); parts also end at every checkpoint.
	RollSize int64
	// Prefix starts the part file names (default "part").
	Prefix string
}

// Validate names the first field that cannot work.
func (c *FileSinkConfig) Validate() error {
	switch {
	case c.Path == "":
		return configError("Path", "required")
	case c.Format != "" && c.Format != FormatJSONL && c.Format != FormatCSV:
		return configError("Format", "unknown format %q (want jsonl or csv)", c.Format)
	case c.RollSize < 0:
		return configError("RollSize", "must be ≥ 0 bytes, got %d", c.RollSize)
	case strings.ContainsAny(c.Prefix, `/\`) || strings.HasPrefix(c.Prefix, "."):
		return configError("Prefix", "must be a plain file name start, got %q", c.Prefix)
	}
	return nil
}

// NewFileSink validates cfg and returns the factory of its subtasks, which
// write the records of schema. Subtask i writes
//
//	<dir>/.<prefix>-<i>-<seq>.inprogress   being written
//	<dir>/.<prefix>-<i>-<seq>.pending      closed at a checkpoint, awaiting its completion
//	<dir>/<prefix>-<i>-<seq>.<jsonl|csv>   committed: visible to readers
//
// so that readers who ignore dot files see each record exactly once.
func NewFileSink(cfg FileSinkConfig, schema *flow.Schema) (flow.SinkFactory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if schema == nil || len(schema.Names) == 0 {
		return nil, fmt.Errorf("%w: file sink: no schema", ErrInvalidConfig)
	}
	if cfg.Format == "" {
		cfg.Format = FormatJSONL
	}
	if cfg.RollSize == 0 {
		cfg.RollSize = 128 << 20
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "part"
	}
	return func(index, par int, state []byte) (flow.Sink, error) {
		if par < 1 || index < 0 || index >= par {
			return nil, fmt.Errorf("connectors: file sink: subtask %d of %d", index, par)
		}
		fsys, dir, err := OpenFS(cfg.Path)
		if err != nil {
			return nil, err
		}
		s := &fileSink{cfg: cfg, fs: fsys, dir: dir, index: index, names: schema.Names}
		if err := s.open(state); err != nil {
			fsys.Close()
			return nil, err
		}
		return s, nil
	}, nil
}

type pendingPart struct {
	Checkpoint int64 `json:"checkpoint"`
	Seq        int64 `json:"seq"`
}

type fileSinkState struct {
	Subtask int           `json:"subtask"`
	NextSeq int64         `json:"nextSeq"`
	Pending []pendingPart `json:"pending"`
}

type fileSink struct {
	cfg   FileSinkConfig
	fs    FS
	dir   string
	index int
	names []string

	seq     int64 // next part number
	cur     WriteFile
	w       *bufio.Writer
	curSeq  int64
	curSize int64
	rolled  []int64       // pending parts not yet covered by a checkpoint
	pending []pendingPart // pending parts covered by a checkpoint, not committed
	line    []byte
	closed  bool
}

var _ flow.Sink = (*fileSink)(nil)

func (s *fileSink) base(seq int64) string {
	return s.cfg.Prefix + "-" + strconv.Itoa(s.index) + "-" + strconv.FormatInt(seq, 10)
}

func (s *fileSink) inprogressName(seq int64) string {
	return s.fs.Join(s.dir, "."+s.base(seq)+".inprogress")
}
func (s *fileSink) pendingName(seq int64) string {
	return s.fs.Join(s.dir, "."+s.base(seq)+".pending")
}
func (s *fileSink) finalName(seq int64) string {
	return s.fs.Join(s.dir, s.base(seq)+"."+s.cfg.Format)
}

// partKind classifies a directory entry of this subtask: "inprogress",
// "pending", "final" or "" (someone else's), with its sequence number.
func (s *fileSink) partKind(name string) (string, int64) {
	stem := s.cfg.Prefix + "-" + strconv.Itoa(s.index) + "-"
	kind := ""
	switch {
	case strings.HasPrefix(name, "."+stem) && strings.HasSuffix(name, ".inprogress"):
		kind, name = "inprogress", strings.TrimSuffix(name[1+len(stem):], ".inprogress")
	case strings.HasPrefix(name, "."+stem) && strings.HasSuffix(name, ".pending"):
		kind, name = "pending", strings.TrimSuffix(name[1+len(stem):], ".pending")
	case strings.HasPrefix(name, stem) && strings.HasSuffix(name, "."+s.cfg.Format):
		kind, name = "final", strings.TrimSuffix(name[len(stem):], "."+s.cfg.Format)
	default:
		return "", 0
	}
	seq, err := strconv.ParseInt(name, 10, 64)
	if err != nil || seq < 0 || strconv.FormatInt(seq, 10) != name {
		return "", 0
	}
	return kind, seq
}

// open prepares the directory: with state, commits the parts it lists as
// pending; then removes every other in-progress or pending part of this
// subtask (written after the snapshot, or by a run that never checkpointed).
func (s *fileSink) open(state []byte) error {
	if err := s.fs.MkdirAll(s.dir); err != nil {
		return fmt.Errorf("connectors: file sink: create %s: %w", s.dir, err)
	}
	keep := map[int64]bool{}
	if state != nil {
		var st fileSinkState
		if len(state) > 0 {
			if err := json.Unmarshal(state, &st); err != nil {
				return fmt.Errorf("%w: file sink: %v", ErrBadState, err)
			}
			if st.Subtask != s.index && (st.NextSeq > 0 || len(st.Pending) > 0) {
				return fmt.Errorf("%w: file sink: state of subtask %d given to subtask %d", ErrBadState, st.Subtask, s.index)
			}
		}
		for _, p := range st.Pending {
			if err := s.commitPart(p.Seq); err != nil {
				return err
			}
			keep[p.Seq] = true
		}
		s.seq = st.NextSeq
	}
	fis, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("connectors: file sink: list %s: %w", s.dir, err)
	}
	for _, fi := range fis {
		kind, seq := s.partKind(fi.Name())
		if kind == "" {
			continue
		}
		s.seq = max(s.seq, seq+1)
		if kind == "final" || keep[seq] {
			continue
		}
		if err := s.fs.Remove(s.fs.Join(s.dir, fi.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("connectors: file sink: discard %s: %w", fi.Name(), err)
		}
	}
	return nil
}

// commitPart makes a pending part visible; a part already committed is fine.
func (s *fileSink) commitPart(seq int64) error {
	err := s.fs.Rename(s.pendingName(seq), s.finalName(seq))
	if err == nil {
		return nil
	}
	if _, serr := s.fs.Stat(s.finalName(seq)); serr == nil {
		return nil // committed before
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrMissingPending, s.pendingName(seq))
	}
	return fmt.Errorf("connectors: file sink: commit %s: %w", s.pendingName(seq), err)
}

func (s *fileSink) Emit(r *flow.Record) error {
	if s.closed {
		return errors.New("connectors: file sink: closed")
	}
	if s.cur == nil {
		if err := s.startPart(); err != nil {
			return err
		}
	}
	if s.cfg.Format == FormatCSV {
		s.line = appendCSV(s.line[:0], r.Row)
	} else {
		s.line = append(appendJSON(s.line[:0], s.names, r.Row), '\n')
	}
	n, err := s.w.Write(s.line)
	s.curSize += int64(n)
	if err != nil {
		return fmt.Errorf("connectors: file sink: write %s: %w", s.inprogressName(s.curSeq), err)
	}
	if s.curSize >= s.cfg.RollSize {
		if err := s.endPart(); err != nil {
			return err
		}
		s.rolled = append(s.rolled, s.curSeq)
	}
	return nil
}

func (s *fileSink) startPart() error {
	name := s.inprogressName(s.seq)
	f, err := s.fs.Create(name)
	if err != nil {
		return fmt.Errorf("connectors: file sink: create %s: %w", name, err)
	}
	s.cur, s.curSeq, s.curSize = f, s.seq, 0
	s.seq++
	if s.w == nil {
		s.w = bufio.NewWriterSize(f, 64<<10)
	} else {
		s.w.Reset(f)
	}
	if s.cfg.Format == FormatCSV {
		h := csvHeader(s.names)
		if _, err := s.w.Write(h); err != nil {
			return fmt.Errorf("connectors: file sink: write %s: %w", name, err)
		}
		s.curSize += int64(len(h))
	}
	return nil
}

// endPart flushes, syncs, closes and renames the current part to pending.
func (s *fileSink) endPart() error {
	f, name := s.cur, s.inprogressName(s.curSeq)
	s.cur = nil
	err := s.w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(name, s.pendingName(s.curSeq))
	}
	if err != nil {
		return fmt.Errorf("connectors: file sink: close %s: %w", name, err)
	}
	return nil
}

// Snapshot ends the current part and returns the state listing every part
// pending so far with its checkpoint.
func (s *fileSink) Snapshot(id int64) ([]byte, error) {
	if s.cur != nil {
		if err := s.endPart(); err != nil {
			return nil, err
		}
		s.rolled = append(s.rolled, s.curSeq)
	}
	for _, seq := range s.rolled {
		s.pending = append(s.pending, pendingPart{Checkpoint: id, Seq: seq})
	}
	s.rolled = s.rolled[:0]
	return json.Marshal(fileSinkState{Subtask: s.index, NextSeq: s.seq, Pending: s.pending})
}

// Commit makes the parts of checkpoints up to id visible.
func (s *fileSink) Commit(id int64) error {
	var rest []pendingPart
	for i, p := range s.pending {
		if p.Checkpoint > id {
			rest = append(rest, p)
			continue
		}
		if err := s.commitPart(p.Seq); err != nil {
			s.pending = append(rest, s.pending[i:]...)
			return err
		}
	}
	s.pending = rest
	return nil
}

// Close discards the part in progress and parts rolled since the last
// snapshot; parts a snapshot lists stay pending for a restore to commit.
func (s *fileSink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
		if err := s.fs.Remove(s.inprogressName(s.curSeq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, seq := range s.rolled {
		if err := s.fs.Remove(s.pendingName(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	s.rolled = nil
	errs = append(errs, s.fs.Close())
	return errors.Join(errs...)
}
