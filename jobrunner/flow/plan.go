package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tidewatch/tidewatch/state"
)

// Source is one subtask's split of a source.
type Source interface {
	// Read appends up to max records to buf and returns it. It returns
	// within about 100ms even when no input is available (then with no new
	// records), and io.EOF once a bounded input is exhausted. The rows of the
	// records it returns stay valid until the next Read.
	Read(ctx context.Context, buf []Record, max int) ([]Record, error)
	// Snapshot returns the position to resume from: the records already
	// returned are not read again after a restore.
	Snapshot() ([]byte, error)
	Close() error
}

// SourceFactory opens subtask index of parallelism, resuming from state when
// state is not nil.
type SourceFactory func(index, parallelism int, state []byte) (Source, error)

// Sink writes the records of one subtask. Records become visible (committed)
// only when the checkpoint that covers them completes.
type Sink interface {
	Emitter
	// Snapshot is called at a checkpoint barrier: everything written so far
	// is made durable but pending, and the state returned lets a restore
	// commit exactly that and discard anything later.
	Snapshot(checkpointID int64) ([]byte, error)
	// Commit makes everything up to the checkpoint visible.
	Commit(checkpointID int64) error
	// Close ends the sink; what was written after the last snapshot is
	// discarded unless Commit of a later checkpoint came first.
	Close() error
}

// SinkFactory opens subtask index of parallelism, restoring from state when
// state is not nil (committing what the state lists as pending and discarding
// what was written after it).
type SinkFactory func(index, parallelism int, state []byte) (Sink, error)

// KeyedOperator is the stateful operator of the keyed stage (a window).
type KeyedOperator interface {
	Process(r *Record) error
	Watermark(wm int64) error
	SnapshotKeyGroup(kg int, w io.Writer) error
	RestoreKeyGroup(kg int, r io.Reader) error
}

// KeyedFactory builds the keyed operator of one subtask, owning key groups kgs.
type KeyedFactory func(kgs state.KeyGroupRange, out, late Emitter) (KeyedOperator, error)

// Chain builds the stateless operators a source subtask runs before its
// output (filter, map, flat-map, key-by), ending in out. Nil means none.
type Chain func(out Emitter) (Emitter, error)

// Watermarks configures how sources derive watermarks.
type Watermarks struct {
	// ProcessingTime stamps records with the wall clock and advances the
	// watermark with it; otherwise records keep their event time.
	ProcessingTime bool
	// MaxOutOfOrderness bounds how late a record may be relative to the
	// highest time seen by its source subtask.
	MaxOutOfOrderness time.Duration
	// IdleTimeout marks a source subtask idle after this long without
	// records, so it does not hold back the watermark; 0 never.
	IdleTimeout time.Duration
}

// StateSizer is a keyed operator that reports how many state entries it
// holds; the engine publishes the count in SubtaskStats after every batch.
type StateSizer interface {
	StateEntries() int64
}

// Plan is a job as the engine runs it: source subtasks, each with a chain of
// stateless operators, optionally shuffled by key group to keyed subtasks,
// ending in sinks.
type Plan struct {
	MaxParallelism    int
	SourceParallelism int
	Source            SourceFactory
	Chain             Chain
	// KeyedParallelism is the parallelism of the keyed stage; 0 means the
	// job has none and the sinks run in the source subtasks.
	KeyedParallelism int
	Keyed            KeyedFactory
	// Local, if not nil, tells for each keyed subtask whether this engine
	// processes its records: the partitioners drop (and count, in
	// RecordsElsewhere) the records of the other subtasks' key groups. A job
	// spread over several processes runs the same plan in each, and each
	// keeps its own subtasks' records; the other keyed subtasks see only
	// watermarks and barriers, so their state stays empty.
	Local []bool
	Sink  SinkFactory
	// LateSink receives records later than the keyed operator allows; nil
	// drops (and counts) them.
	LateSink   SinkFactory
	Watermarks Watermarks
	// BatchSize is the most records a source reads, and a partition buffers,
	// before handing them on (default 512). ChannelCapacity is how many
	// batches a keyed subtask's input holds before senders block (default 8).
	BatchSize       int
	ChannelCapacity int
	// Clock is the wall clock; nil means time.Now.
	Clock func() time.Time
	// LatencyInterval is how often each source subtask sends a latency
	// marker to every keyed subtask, as Flink's latency tracking does; 0
	// sends none. A marker travels behind the records sent before it, so
	// its delay measures the queueing between the stages (it does not wait
	// in windows). OnLatency receives each marker's delay on the keyed
	// subtask's goroutine, and must be safe for concurrent use.
	LatencyInterval time.Duration
	OnLatency       func(keyed int, d time.Duration)
}

func (p *Plan) defaults() {
	if p.BatchSize <= 0 {
		p.BatchSize = 512
	}
	if p.ChannelCapacity <= 0 {
		p.ChannelCapacity = 8
	}
	if p.Clock == nil {
		p.Clock = time.Now
	}
}

// Validate names the first field of the plan that cannot work.
func (p *Plan) Validate() error {
	switch {
	case p.MaxParallelism < state.MinMaxParallelism || p.MaxParallelism > state.MaxMaxParallelism:
		return fmt.Errorf("flow: maxParallelism must be 1..%d, got %d", state.MaxMaxParallelism, p.MaxParallelism)
	case p.SourceParallelism < 1:
		return fmt.Errorf("flow: source parallelism must be at least 1, got %d", p.SourceParallelism)
	case p.Local != nil && len(p.Local) != p.KeyedParallelism:
		return fmt.Errorf("flow: Local has %d entries for %d keyed subtasks", len(p.Local), p.KeyedParallelism)
	case p.KeyedParallelism < 0 || p.KeyedParallelism > p.MaxParallelism:
		return fmt.Errorf("flow: keyed parallelism must be 0..maxParallelism (%d), got %d", p.MaxParallelism, p.KeyedParallelism)
	case p.Source == nil:
		return errors.New("flow: plan has no source")
	case p.Sink == nil:
		return errors.New("flow: plan has no sink")
	case p.KeyedParallelism > 0 && p.Keyed == nil:
		return errors.New("flow: keyed parallelism set without a keyed operator")
	}
	return nil
}

// SourceTime is a source subtask's event-time position at a checkpoint.
type SourceTime struct {
	MaxTs     int64 `json:"maxTs"`
	Watermark int64 `json:"watermark"`
	Idle      bool  `json:"idle"`
}

// Snapshot is one consistent checkpoint of a running plan.
type Snapshot struct {
	ID             int64
	MaxParallelism int
	// Sources holds each source subtask's position, by subtask index.
	Sources [][]byte
	// SourceTimes holds each source subtask's event-time position: a restored
	// job treats records as late exactly as the uninterrupted job would.
	SourceTimes []SourceTime
	// KeyGroups holds the keyed operator's state by key group.
	KeyGroups map[int][]byte
	// Sinks and LateSinks hold each sink subtask's state, by subtask index.
	Sinks     [][]byte
	LateSinks [][]byte
}
