package connectors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// IngestLogName is the file, in IngestConfig.Dir, accepted records are
// appended to.
const IngestLogName = "ingest.log"

// arrivalKey is the key of the arrival time (epoch ms) each ingest log line
// carries; it is the record time when there is no TimeField.
const arrivalKey = "@arrival"

// IngestConfig configures the HTTP ingest endpoint and its source.
type IngestConfig struct {
	// Dir holds the ingest log; use the job's checkpoint directory so that a
	// restarted job finds it. Required.
	Dir string
	// Fields are the fields of the records, in schema order. Required.
	Fields []Field
	// TimeField names the event-time field (int epoch ms or RFC 3339
	// string); empty uses the time the record was accepted.
	TimeField string
	// MaxBodyBytes is the largest request body accepted (default 8 MiB).
	MaxBodyBytes int64
	// Parallelism of the source: 0 or 1, since one log is read by one
	// subtask.
	Parallelism int
}

// Validate names the first field that cannot work.
func (c *IngestConfig) Validate() error {
	switch {
	case c.Dir == "":
		return configError("Dir", "required")
	case c.MaxBodyBytes < 0:
		return configError("MaxBodyBytes", "must be ≥ 0, got %d", c.MaxBodyBytes)
	case c.Parallelism < 0 || c.Parallelism > 1:
		return configError("Parallelism", "the ingest source reads one log and runs with parallelism 1, got %d", c.Parallelism)
	}
	for i, f := range c.Fields {
		if f.Name == arrivalKey {
			return configError(fmt.Sprintf("Fields[%d].Name", i), "%q is reserved", arrivalKey)
		}
	}
	return validateFields("", c.Fields, c.TimeField)
}

// Ingest is the HTTP ingest endpoint. It accepts POSTed records (a JSON
// array of objects, or JSON lines), and appends them to its log and fsyncs
// before answering 200, so every acknowledged record survives a crash and
// is read exactly once by the source across checkpoints and restores.
type Ingest struct {
	cfg    IngestConfig
	schema *flow.Schema
	log    *logrus.Entry
	now    func() time.Time

	mu     sync.Mutex // serialises appends
	f      *os.File
	closed bool
	size   atomic.Int64 // durable length of the log
	wakeMu sync.Mutex
	wakeCh chan struct{} // closed and replaced when the log grows
}

var _ http.Handler = (*Ingest)(nil)

// NewIngest opens (creating if need be) the log in cfg.Dir. A torn last
// line, from a crash during an append that was never acknowledged, is cut.
func NewIngest(cfg IngestConfig, log *logrus.Entry) (*Ingest, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	schema, err := fieldsSchema(cfg.Fields)
	if err != nil {
		return nil, err
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("connectors: ingest: %w", err)
	}
	path := filepath.Join(cfg.Dir, IngestLogName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("connectors: ingest: %w", err)
	}
	size, err := cutTornLine(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("connectors: ingest: repair %s: %w", path, err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("connectors: ingest: %w", err)
	}
	in := &Ingest{cfg: cfg, schema: schema, log: log.WithField("component", "ingest"), now: time.Now, f: f, wakeCh: make(chan struct{})}
	in.size.Store(size)
	return in, nil
}

// cutTornLine truncates f after its last newline and returns the length.
func cutTornLine(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end == size {
		return size, nil
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	return end, f.Sync()
}

// Schema is the schema of the records the source produces.
func (in *Ingest) Schema() *flow.Schema { return in.schema }

// Close closes the log; later requests are answered 503.
func (in *Ingest) Close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil
	}
	in.closed = true
	return in.f.Close()
}

func (in *Ingest) wake() <-chan struct{} {
	in.wakeMu.Lock()
	defer in.wakeMu.Unlock()
	return in.wakeCh
}

func (in *Ingest) notify() {
	in.wakeMu.Lock()
	close(in.wakeCh)
	in.wakeCh = make(chan struct{})
	in.wakeMu.Unlock()
}

type ingestReply struct {
	Accepted int    `json:"accepted"`
	Error    string `json:"error,omitempty"`
}

func reply(w http.ResponseWriter, code int, r ingestReply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(r)
}

// ServeHTTP accepts a batch of records all or nothing: 405 for methods other
// than POST, 413 for bodies over MaxBodyBytes, 400 naming the line (or array
// element) and field of the first bad record, 503 when closed or the log
// cannot be written, and 200 with the number accepted once they are durable.
func (in *Ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, ingestReply{Error: "use POST"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			reply(w, http.StatusRequestEntityTooLarge, ingestReply{Error: fmt.Sprintf("body over %d bytes", in.cfg.MaxBodyBytes)})
			return
		}
		reply(w, http.StatusBadRequest, ingestReply{Error: "reading the body: " + err.Error()})
		return
	}
	lines, n, err := in.normalize(body, in.now().UnixMilli())
	if err != nil {
		reply(w, http.StatusBadRequest, ingestReply{Error: err.Error()})
		return
	}
	if n == 0 {
		reply(w, http.StatusOK, ingestReply{})
		return
	}
	if err := in.append(lines); err != nil {
		in.log.WithError(err).Error("appending to the ingest log")
		reply(w, http.StatusServiceUnavailable, ingestReply{Error: "the records could not be stored; retry"})
		return
	}
	reply(w, http.StatusOK, ingestReply{Accepted: n})
}

// normalize decodes a body of JSON lines or a JSON array and returns the log
// lines: each record re-encoded with its arrival time.
func (in *Ingest) normalize(body []byte, arrival int64) ([]byte, int, error) {
	dec, err := newDecoder(in.cfg.Fields, in.cfg.TimeField)
	if err != nil {
		return nil, 0, err
	}
	row := make([]flow.Value, len(in.cfg.Fields))
	var out []byte
	n := 0
	add := func(lineNo int, raw []byte) error {
		if _, err := dec.decodeJSON(raw, row); err != nil {
			return lineError("", lineNo, err)
		}
		obj := appendJSON(nil, dec.schema.Names, row)
		out = append(out, `{"`+arrivalKey+`":`...)
		out = strconv.AppendInt(out, arrival, 10)
		out = append(out, ',')
		out = append(out, obj[1:]...)
		out = append(out, '\n')
		n++
		return nil
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var elems []json.RawMessage
		if err := json.Unmarshal(trimmed, &elems); err != nil {
			return nil, 0, fmt.Errorf("%w: not a JSON array: %v", ErrBadRecord, err)
		}
		for i, e := range elems {
			if err := add(i+1, e); err != nil {
				return nil, 0, err
			}
		}
		return out, n, nil
	}
	for i, line := range bytes.Split(body, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := add(i+1, line); err != nil {
			return nil, 0, err
		}
	}
	return out, n, nil
}

// append writes lines and fsyncs; on failure it cuts the log back so that no
// unacknowledged record stays in it.
func (in *Ingest) append(lines []byte) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return errors.New("connectors: ingest: closed")
	}
	size := in.size.Load()
	_, err := in.f.Write(lines)
	if err == nil {
		err = in.f.Sync()
	}
	if err != nil {
		if terr := in.f.Truncate(size); terr == nil {
			in.f.Seek(size, io.SeekStart)
		}
		return err
	}
	in.size.Store(size + int64(len(lines)))
	in.notify()
	return nil
}

// Factory returns the source reading the log: one subtask, resuming at the
// byte offset of its checkpoint, reading only what was acknowledged.
func (in *Ingest) Factory() flow.SourceFactory {
	return func(index, par int, state []byte) (flow.Source, error) {
		if par != 1 || index != 0 {
			return nil, fmt.Errorf("%w: Parallelism: the ingest source reads one log and runs with parallelism 1, got %d", ErrInvalidConfig, par)
		}
		dec, err := newDecoder(in.cfg.Fields, in.cfg.TimeField)
		if err != nil {
			return nil, err
		}
		dec.arrivalKey = arrivalKey
		path := filepath.Join(in.cfg.Dir, IngestLogName)
		r := &lineReader{
			fs: localFS{}, dec: dec, tail: true, skipped: new(atomic.Int64), log: in.log,
			discover:      func() ([]string, error) { return []string{path}, nil },
			discoverEvery: time.Duration(1<<63 - 1),
			limit:         in.size.Load,
			wake:          in.wake,
			restored:      map[string]splitState{},
		}
		if state != nil {
			if err := r.restore(state); err != nil {
				return nil, err
			}
			if st, ok := r.restored[path]; ok && st.Offset > in.size.Load() {
				return nil, fmt.Errorf("%w: ingest source: offset %d is past the end of the log (%d bytes): was %s replaced?",
					ErrBadState, st.Offset, in.size.Load(), path)
			}
		}
		if err := r.refresh(); err != nil {
			return nil, err
		}
		return r, nil
	}
}
