package monitor

import (
	"context"
	"io"
	"time"

	"github.com/tidewatch/tidewatch/monitor/rules"
)

// Replayer runs a rule set over a recorded stream of metric events, as the
// monitor would have run it live: each event is processed at its own time,
// time advances with the events (closing windows, resolving quiet
// firings), and what fires is recorded.
type Replayer struct {
	eval     *Evaluator
	rec      *Recorder
	lateness time.Duration
	last     time.Time
	events   int
}

// NewReplayer returns a replayer of set.
func NewReplayer(set *rules.Set, opts EvalOptions) (*Replayer, error) {
	rec := &Recorder{}
	eval, err := NewEvaluator(set, opts, rec)
	if err != nil {
		return nil, err
	}
	return &Replayer{eval: eval, rec: rec, lateness: opts.AllowedLateness}, nil
}

// Feed processes one event.
func (r *Replayer) Feed(ctx context.Context, ev Event) {
	if ev.Time.After(r.last) {
		if !r.last.IsZero() {
			r.eval.AdvanceTo(ctx, ev.Time.Add(-r.lateness-1))
		}
		r.last = ev.Time
	}
	r.eval.Process(ctx, ev)
	r.events++
}

// ReplayResult is what a replay raised.
type ReplayResult struct {
	// Notices are the firings and resolutions, in order.
	Notices []Notice `json:"notices"`
	// Active are the firings still active at the end of the trace.
	Active []Firing  `json:"active"`
	Events int       `json:"events"`
	Stats  EvalStats `json:"stats"`
	End    time.Time `json:"end"`
}

// Firings returns the firings of the replay, in order.
func (r ReplayResult) Firings() []Firing {
	var out []Firing
	for _, n := range r.Notices {
		if n.Firing != nil {
			out = append(out, *n.Firing)
		}
	}
	return out
}

// Finish processes what is buffered, advances time to the last event's
// and returns the result. until, if later, advances time further: windows
// that close by then end and quiet firings resolve.
func (r *Replayer) Finish(ctx context.Context, until time.Time) ReplayResult {
	r.eval.Flush(ctx)
	end := r.last
	if until.After(end) {
		end = until
	}
	r.eval.AdvanceTo(ctx, end)
	return ReplayResult{Notices: r.rec.Notices(), Active: r.eval.Active(), Events: r.events, Stats: r.eval.Stats(), End: end}
}

// ReplayTrace replays a trace read from rd over set.
func ReplayTrace(ctx context.Context, set *rules.Set, rd io.Reader, format TraceFormat, name string, opts EvalOptions, until time.Time) (ReplayResult, error) {
	rp, err := NewReplayer(set, opts)
	if err != nil {
		return ReplayResult{}, err
	}
	if err := ScanTrace(rd, format, name, func(ev Event) error {
		rp.Feed(ctx, ev)
		return ctx.Err()
	}); err != nil {
		return ReplayResult{}, err
	}
	return rp.Finish(ctx, until), nil
}
