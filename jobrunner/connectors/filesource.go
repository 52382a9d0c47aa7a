package connectors

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// What to do with a line that does not decode.
const (
	OnErrorFail = "fail"
	OnErrorSkip = "skip"
)

// FileConfig configures the file source.
type FileConfig struct {
	// Path is a local file, directory (its files), glob, or the same on
	// HDFS as hdfs://host:port/path. Required.
	Path string
	// Format is jsonl (default) or csv.
	Format string
	// Fields are the fields of the records, in schema order. Required.
	Fields []Field
	// TimeField names the event-time field: an int field (epoch ms) or a
	// string field (RFC 3339). Empty leaves record times 0 (for jobs on
	// processing time).
	TimeField string
	// CSVHeader says the first line of each CSV file names its columns;
	// otherwise the columns are Fields in order.
	CSVHeader bool
	// Tail keeps reading data appended to the files, and new files matching
	// Path; the source is then unbounded.
	Tail bool
	// OnError is fail (default: the job fails naming file:line and field)
	// or skip (the line is logged, counted and dropped).
	OnError string
	// DiscoverInterval is how often Tail looks for new files (default 1s).
	DiscoverInterval time.Duration
}

// Validate names the first field that cannot work.
func (c *FileConfig) Validate() error {
	switch {
	case c.Path == "":
		return configError("Path", "required")
	case c.Format != "" && c.Format != FormatJSONL && c.Format != FormatCSV:
		return configError("Format", "unknown format %q (want jsonl or csv)", c.Format)
	case c.CSVHeader && c.Format != FormatCSV:
		return configError("CSVHeader", "only applies to format csv")
	case c.OnError != "" && c.OnError != OnErrorFail && c.OnError != OnErrorSkip:
		return configError("OnError", "unknown policy %q (want fail or skip)", c.OnError)
	case c.DiscoverInterval < 0:
		return configError("DiscoverInterval", "must be ≥ 0, got %v", c.DiscoverInterval)
	}
	return validateFields("", c.Fields, c.TimeField)
}

// Schema is the schema of the records the source produces: Fields in order.
func (c *FileConfig) Schema() (*flow.Schema, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return fieldsSchema(c.Fields)
}

// FileSource builds the subtasks of a file source and counts the lines they
// skip.
type FileSource struct {
	cfg     FileConfig
	schema  *flow.Schema
	log     *logrus.Entry
	skipped atomic.Int64
}

// NewFileSource validates cfg; log (nil for none) receives skipped lines.
func NewFileSource(cfg FileConfig, log *logrus.Entry) (*FileSource, error) {
	s, err := cfg.Schema()
	if err != nil {
		return nil, err
	}
	if cfg.Format == "" {
		cfg.Format = FormatJSONL
	}
	if cfg.OnError == "" {
		cfg.OnError = OnErrorFail
	}
	if cfg.DiscoverInterval == 0 {
		cfg.DiscoverInterval = time.Second
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	return &FileSource{cfg: cfg, schema: s, log: log.WithField("component", "file-source")}, nil
}

// Schema is the schema of the records.
func (s *FileSource) Schema() *flow.Schema { return s.schema }

// Skipped is the number of bad lines skipped so far by all subtasks.
func (s *FileSource) Skipped() int64 { return s.skipped.Load() }

// Factory returns the factory of the source's subtasks. Bounded, file i of
// the sorted matches goes to subtask i mod p; tailing, a file goes to subtask
// hash(path) mod p, which stays put as files appear.
func (s *FileSource) Factory() flow.SourceFactory {
	return func(index, par int, state []byte) (flow.Source, error) {
		if par < 1 || index < 0 || index >= par {
			return nil, fmt.Errorf("connectors: file source: subtask %d of %d", index, par)
		}
		fsys, root, err := OpenFS(s.cfg.Path)
		if err != nil {
			return nil, err
		}
		dec, err := newDecoder(s.cfg.Fields, s.cfg.TimeField)
		if err != nil {
			fsys.Close()
			return nil, err
		}
		r := &lineReader{
			fs: fsys, dec: dec, csv: s.cfg.Format == FormatCSV, csvHeader: s.cfg.CSVHeader,
			tail: s.cfg.Tail, skip: s.cfg.OnError == OnErrorSkip, skipped: &s.skipped,
			log: s.log.WithField("subtask", index), restored: map[string]splitState{},
			reopenOnGrow: fsys != FS(localFS{}),
		}
		r.discover = func() ([]string, error) {
			files, err := Glob(fsys, root)
			if errors.Is(err, fs.ErrNotExist) && s.cfg.Tail {
				return nil, nil // not there yet
			}
			if err != nil {
				return nil, fmt.Errorf("connectors: file source %s: %w", s.cfg.Path, err)
			}
			var mine []string
			for i, f := range files {
				owner := i % par
				if s.cfg.Tail {
					h := fnv.New32a()
					h.Write([]byte(f))
					owner = int(h.Sum32() % uint32(par))
				}
				if owner == index {
					mine = append(mine, f)
				}
			}
			return mine, nil
		}
		r.discoverEvery = s.cfg.DiscoverInterval
		if state != nil {
			if err := r.restore(state); err != nil {
				fsys.Close()
				return nil, err
			}
		}
		if err := r.refresh(); err != nil {
			r.Close()
			return nil, err
		}
		return r, nil
	}
}

// maxLineBytes bounds one line of input.
const maxLineBytes = 16 << 20

// split is one file being read.
type split struct {
	path string
	off  int64 // offset after the last line consumed
	line int   // lines consumed
	done bool

	f       ReadFile
	br      *bufio.Reader
	pos     int64 // offset the underlying reader has reached
	partial []byte
	colIdx  []int
}

type splitState struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	Line   int    `json:"line"`
	Done   bool   `json:"done,omitempty"`
}

type lineState struct {
	Files []splitState `json:"files"`
}

// lineReader reads lines of one subtask's files: the file source, and the
// ingest source on its log.
type lineReader struct {
	fs        FS
	dec       *decoder
	csv       bool
	csvHeader bool
	tail      bool
	skip      bool
	skipped   *atomic.Int64
	log       *logrus.Entry

	discover      func() ([]string, error)
	discoverEvery time.Duration
	lastDiscover  time.Time
	// limit, when set, is how far the files may be read (the durable length
	// of the ingest log); wake signals that it grew.
	limit        func() int64
	wake         func() <-chan struct{}
	reopenOnGrow bool

	splits   []*split
	known    map[string]bool
	restored map[string]splitState
	cur      int
	rows     []flow.Value
}

func (r *lineReader) restore(b []byte) error {
	var st lineState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%w: file source: %v", ErrBadState, err)
	}
	for _, f := range st.Files {
		if f.Offset < 0 || f.Line < 0 {
			return fmt.Errorf("%w: file source: negative position of %s", ErrBadState, f.Path)
		}
		r.restored[f.Path] = f
	}
	return nil
}

// refresh adds newly discovered files.
func (r *lineReader) refresh() error {
	r.lastDiscover = time.Now()
	files, err := r.discover()
	if err != nil {
		return err
	}
	if r.known == nil {
		r.known = map[string]bool{}
	}
	for _, f := range files {
		if r.known[f] {
			continue
		}
		r.known[f] = true
		sp := &split{path: f}
		if st, ok := r.restored[f]; ok {
			sp.off, sp.line, sp.done = st.Offset, st.Line, st.Done
		}
		r.splits = append(r.splits, sp)
	}
	return nil
}

func (r *lineReader) Snapshot() ([]byte, error) {
	st := lineState{Files: make([]splitState, 0, len(r.splits))}
	for _, sp := range r.splits {
		st.Files = append(st.Files, splitState{Path: sp.path, Offset: sp.off, Line: sp.line, Done: sp.done})
	}
	return json.Marshal(st)
}

func (r *lineReader) Close() error {
	for _, sp := range r.splits {
		sp.close()
	}
	return r.fs.Close()
}

func (sp *split) close() {
	if sp.f != nil {
		sp.f.Close()
		sp.f, sp.br = nil, nil
	}
	sp.partial = sp.partial[:0]
}

// open opens the file at the consumed offset; for CSV with a header it reads
// the header first when resuming past it.
func (r *lineReader) open(sp *split) error {
	f, err := r.fs.Open(sp.path)
	if err != nil {
		return fmt.Errorf("connectors: open %s: %w", sp.path, err)
	}
	sp.f = f
	if r.csvHeader && sp.off > 0 && sp.colIdx == nil {
		hr := bufio.NewReader(f)
		h, err := hr.ReadSlice('\n')
		if err != nil {
			sp.close()
			return fmt.Errorf("connectors: %s: read the CSV header: %w", sp.path, err)
		}
		if err := r.dec.setCSVHeader(bytes.TrimRight(h, "\r\n")); err != nil {
			sp.close()
			return lineError(sp.path, 1, err)
		}
		sp.colIdx = r.dec.colIdx
	}
	if _, err := f.Seek(sp.off, io.SeekStart); err != nil {
		sp.close()
		return fmt.Errorf("connectors: seek %s to %d: %w", sp.path, sp.off, err)
	}
	sp.pos = sp.off
	sp.br = bufio.NewReaderSize(&cappedReader{r: r, sp: sp}, 64<<10)
	sp.partial = sp.partial[:0]
	return nil
}

// cappedReader reads a split's file, no further than the reader's limit.
type cappedReader struct {
	r  *lineReader
	sp *split
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.r.limit != nil {
		room := c.r.limit() - c.sp.pos
		if room <= 0 {
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), room)]
	}
	n, err := c.sp.f.Read(p)
	c.sp.pos += int64(n)
	return n, err
}

// nextLine returns the next line, without its end, and the bytes it spans;
// io.EOF when no complete line is available (in a bounded file, a last line
// without a newline is complete at the end of the file).
func (r *lineReader) nextLine(sp *split) ([]byte, int, error) {
	for {
		chunk, err := sp.br.ReadSlice('\n')
		switch {
		case err == nil:
			line := chunk
			if len(sp.partial) > 0 {
				sp.partial = append(sp.partial, chunk...)
				line = sp.partial
			}
			n := len(line)
			sp.partial = sp.partial[:0] // line stays valid until the next append
			return bytes.TrimRight(line, "\r\n"), n, nil
		case errors.Is(err, bufio.ErrBufferFull) || errors.Is(err, io.EOF):
			sp.partial = append(sp.partial, chunk...)
			if len(sp.partial) > maxLineBytes {
				return nil, 0, lineError(sp.path, sp.line+1, fmt.Errorf("line longer than %d bytes", maxLineBytes))
			}
			if errors.Is(err, io.EOF) {
				if !r.tail && len(sp.partial) > 0 {
					line := sp.partial
					sp.partial = sp.partial[:0]
					return bytes.TrimRight(line, "\r\n"), len(line), nil
				}
				return nil, 0, io.EOF
			}
		default:
			return nil, 0, fmt.Errorf("connectors: read %s: %w", sp.path, err)
		}
	}
}

// idleWait bounds how long Read waits when no input is available.
const idleWait = 50 * time.Millisecond

func (r *lineReader) Read(ctx context.Context, buf []flow.Record, max int) ([]flow.Record, error) {
	if r.tail && time.Since(r.lastDiscover) >= r.discoverEvery {
		if err := r.refresh(); err != nil {
			return buf, err
		}
	}
	nf := len(r.dec.schema.Names)
	r.rows = r.rows[:0]
	start := len(buf)
	active := 0
	for tries := 0; tries < len(r.splits) && len(buf)-start < max; tries++ {
		sp := r.splits[r.cur]
		if sp.done {
			r.cur = (r.cur + 1) % len(r.splits)
			continue
		}
		active++
		var err error
		buf, err = r.readSplit(sp, buf, start, max, nf)
		if err != nil {
			return r.attach(buf, start, nf), err
		}
		if len(buf)-start < max { // this file has nothing more for now
			r.cur = (r.cur + 1) % len(r.splits)
		}
	}
	buf = r.attach(buf, start, nf)
	if !r.tail && active == 0 {
		return buf, io.EOF
	}
	if len(buf) == start && r.tail {
		r.idle(ctx)
	}
	return buf, nil
}

// attach points the records read by this call at their rows (rows may have
// moved while growing).
func (r *lineReader) attach(buf []flow.Record, start, nf int) []flow.Record {
	for i := start; i < len(buf); i++ {
		j := (i - start) * nf
		buf[i].Row = r.rows[j : j+nf : j+nf]
	}
	return buf
}

// idle waits a little for input: until the ingest log grows, or a fixed
// poll interval.
func (r *lineReader) idle(ctx context.Context) {
	t := time.NewTimer(idleWait)
	defer t.Stop()
	var wake <-chan struct{}
	if r.wake != nil {
		wake = r.wake()
	}
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// readSplit appends records of one file until max, the end of the file's
// complete lines, or an error.
func (r *lineReader) readSplit(sp *split, buf []flow.Record, start, max, nf int) ([]flow.Record, error) {
	if sp.f == nil {
		if err := r.open(sp); err != nil {
			if r.tail && errors.Is(err, fs.ErrNotExist) {
				return buf, nil
			}
			return buf, err
		}
	}
	for len(buf)-start < max {
		line, n, err := r.nextLine(sp)
		if errors.Is(err, io.EOF) {
			if !r.tail {
				sp.done = true
				sp.close()
			} else if r.reopenOnGrow {
				if fi, serr := r.fs.Stat(sp.path); serr == nil && fi.Size() > sp.pos {
					sp.close() // reopen at sp.off to see the new length
				}
			}
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		lineNo := sp.line + 1
		if len(bytes.TrimSpace(line)) == 0 {
			sp.off += int64(n)
			sp.line = lineNo
			continue
		}
		if r.csvHeader && sp.line == 0 {
			err := r.dec.setCSVHeader(line)
			sp.off += int64(n)
			sp.line = lineNo
			if err != nil {
				return buf, lineError(sp.path, lineNo, err)
			}
			sp.colIdx = r.dec.colIdx
			continue
		}
		r.rows = append(r.rows, make([]flow.Value, nf)...)
		row := r.rows[len(r.rows)-nf:]
		var t int64
		if r.csv {
			r.dec.colIdx = sp.colIdx
			t, err = r.dec.decodeCSV(line, row)
		} else {
			t, err = r.dec.decodeJSON(line, row)
		}
		sp.off += int64(n)
		sp.line = lineNo
		if err != nil {
			r.rows = r.rows[:len(r.rows)-nf]
			le := lineError(sp.path, lineNo, err)
			if !r.skip {
				return buf, le
			}
			r.skipped.Add(1)
			r.log.WithError(le).Warn("skipping a bad line")
			continue
		}
		buf = append(buf, flow.Record{Time: t})
	}
	return buf, nil
}

// String is for debugging.
func (sp *split) String() string { return sp.path + "@" + strconv.FormatInt(sp.off, 10) }
