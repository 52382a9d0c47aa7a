package connectors

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// Value distributions of the datagen source.
const (
	DistUniform     = "uniform"
	DistNormal      = "normal"
	DistExponential = "exponential"
)

// ValueDist is the distribution of the generated values.
type ValueDist struct {
	// Dist is uniform (default), normal or exponential.
	Dist string
	// Min and Max bound uniform values to [Min, Max) (default [0, 100)).
	Min, Max float64
	// Mean is the mean of normal and exponential values (exponential
	// default 1); Stddev the standard deviation of normal ones (default 1).
	Mean, Stddev float64
}

// DatagenConfig configures the deterministic generator source.
type DatagenConfig struct {
	// Rate is the overall records per second, split evenly over subtasks
	// and paced in wall time; 0 generates as fast as possible.
	Rate float64
	// Keys is the number of distinct keys, "k0".."k<Keys-1>" (default 100).
	Keys int
	// KeySkew is 0 for uniformly drawn keys, else the exponent s > 1 of a
	// Zipf distribution making k0 the hottest key.
	KeySkew float64
	Values  ValueDist
	// Disorder is the most a record's event time lags behind its place in
	// the sequence, in ms (0 = in order).
	Disorder int64
	// Count is the total number of records over all subtasks; 0 = unbounded.
	Count int64
	Seed  int64
	// StartTime is the event time of record 0 in epoch ms; 0 means the wall
	// clock when the factory is built (kept in the checkpoint state, so a
	// restore replays the same times).
	StartTime int64

	now func() time.Time // tests
}

// Record n has event time StartTime + n*1000/Rate (1 ms apart at Rate 0),
// minus up to Disorder ms.

// maxPrecomputedKeys bounds the memory spent on key strings; larger key
// spaces format keys as they go (which allocates).
const maxPrecomputedKeys = 1 << 20

// Validate names the first field that cannot work.
func (c *DatagenConfig) Validate() error {
	switch {
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return configError("Rate", "must be a finite number ≥ 0, got %v", c.Rate)
	case c.Keys < 0:
		return configError("Keys", "must be ≥ 1, got %d", c.Keys)
	case c.KeySkew != 0 && !(c.KeySkew > 1) || math.IsInf(c.KeySkew, 0):
		return configError("KeySkew", "must be 0 (uniform) or a Zipf exponent > 1, got %v", c.KeySkew)
	case c.Disorder < 0:
		return configError("Disorder", "must be ≥ 0 ms, got %d", c.Disorder)
	case c.Count < 0:
		return configError("Count", "must be ≥ 0 (0 = unbounded), got %d", c.Count)
	case c.StartTime < 0:
		return configError("StartTime", "must be ≥ 0 epoch ms, got %d", c.StartTime)
	}
	v := c.Values
	for name, f := range map[string]float64{"Values.Min": v.Min, "Values.Max": v.Max, "Values.Mean": v.Mean, "Values.Stddev": v.Stddev} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return configError(name, "must be finite, got %v", f)
		}
	}
	switch v.Dist {
	case "", DistUniform:
		if (v.Min != 0 || v.Max != 0) && !(v.Max > v.Min) {
			return configError("Values.Max", "must be greater than Values.Min (%v), got %v", v.Min, v.Max)
		}
	case DistNormal:
		if v.Stddev < 0 {
			return configError("Values.Stddev", "must be ≥ 0, got %v", v.Stddev)
		}
	case DistExponential:
		if v.Mean < 0 {
			return configError("Values.Mean", "must be > 0, got %v", v.Mean)
		}
	default:
		return configError("Values.Dist", "unknown distribution %q (want uniform, normal or exponential)", v.Dist)
	}
	return nil
}

// withDefaults returns the config with defaults filled in.
func (c DatagenConfig) withDefaults() DatagenConfig {
	if c.Keys == 0 {
		c.Keys = 100
	}
	switch c.Values.Dist {
	case "", DistUniform:
		c.Values.Dist = DistUniform
		if c.Values.Min == 0 && c.Values.Max == 0 {
			c.Values.Max = 100
		}
	case DistNormal:
		if c.Values.Stddev == 0 {
			c.Values.Stddev = 1
		}
	case DistExponential:
		if c.Values.Mean == 0 {
			c.Values.Mean = 1
		}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.StartTime == 0 {
		c.StartTime = c.now().UnixMilli()
	}
	return c
}

// DatagenSchema is the schema of datagen records: key (string), value
// (float), ts (int, the record's event time).
func DatagenSchema() *flow.Schema {
	s, _ := flow.NewSchema([]string{"key", "value", "ts"}, []flow.Kind{flow.KindString, flow.KindFloat, flow.KindInt})
	return s
}

// NewDatagenSource validates cfg and returns the factory of its subtasks.
// Subtask i of p generates the records n ≡ i (mod p); record n is a pure
// function of the config and n.
func NewDatagenSource(cfg DatagenConfig) (flow.SourceFactory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := min(cfg.Keys, maxPrecomputedKeys)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	return func(index, par int, state []byte) (flow.Source, error) {
		if par < 1 || index < 0 || index >= par {
			return nil, fmt.Errorf("connectors: datagen: subtask %d of %d", index, par)
		}
		g := &datagenSource{cfg: cfg, keys: keys, index: int64(index), par: int64(par), next: int64(index)}
		if state != nil {
			if err := g.restore(state); err != nil {
				return nil, err
			}
		}
		g.initGen()
		return g, nil
	}, nil
}

type datagenSource struct {
	cfg        DatagenConfig
	keys       []string
	index, par int64
	next       int64 // the next global record number, ≡ index (mod par)
	rows       []flow.Value

	src  splitmix
	zipf *rand.Zipf

	// Pacing: the subtask's k-th record (k = (n-index)/par) is due at
	// baseWall + (k-baseK)*par/Rate; rebased at open so that a restored job
	// does not catch up on the time it was down.
	baseWall time.Time
	baseK    int64
}

// datagenState is the checkpointed position.
type datagenState struct {
	Next        int64 `json:"next"`
	StartTime   int64 `json:"startTime"`
	Parallelism int64 `json:"parallelism"`
}

func (g *datagenSource) restore(b []byte) error {
	var s datagenState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: datagen: %v", ErrBadState, err)
	}
	if s.Parallelism != g.par || s.Next < 0 || s.Next%g.par != g.index {
		return fmt.Errorf("%w: datagen: state of position %d at parallelism %d cannot resume subtask %d of %d",
			ErrBadState, s.Next, s.Parallelism, g.index, g.par)
	}
	g.next, g.cfg.StartTime = s.Next, s.StartTime
	return nil
}

func (g *datagenSource) initGen() {
	if g.cfg.KeySkew > 0 {
		g.zipf = rand.NewZipf(rand.New(&g.src), g.cfg.KeySkew, 1, uint64(g.cfg.Keys-1))
	}
	g.baseWall = g.cfg.now()
	g.baseK = (g.next - g.index) / g.par
}

func (g *datagenSource) Snapshot() ([]byte, error) {
	return json.Marshal(datagenState{Next: g.next, StartTime: g.cfg.StartTime, Parallelism: g.par})
}

func (g *datagenSource) Close() error { return nil }

// maxWait bounds how long Read waits for the next record to fall due.
const maxWait = 50 * time.Millisecond

func (g *datagenSource) Read(ctx context.Context, buf []flow.Record, max int) ([]flow.Record, error) {
	if g.cfg.Count > 0 && g.next >= g.cfg.Count {
		return buf, io.EOF
	}
	limit := int64(max)
	if g.cfg.Rate > 0 {
		due := g.due(g.cfg.now()) - (g.next-g.index)/g.par
		if due <= 0 {
			wait := g.nextAt().Sub(g.cfg.now())
			if wait > 0 {
				t := time.NewTimer(min(wait, maxWait))
				select {
				case <-ctx.Done():
					t.Stop()
					return buf, ctx.Err()
				case <-t.C:
				}
			}
			if due = g.due(g.cfg.now()) - (g.next-g.index)/g.par; due <= 0 {
				return buf, nil
			}
		}
		limit = min(limit, due)
	}
	if cap(g.rows) < 3*max {
		g.rows = make([]flow.Value, 3*max)
	}
	rows := g.rows[:3*max]
	for i := int64(0); i < limit; i++ {
		if g.cfg.Count > 0 && g.next >= g.cfg.Count {
			break
		}
		row := rows[3*i : 3*i+3 : 3*i+3]
		t := g.record(g.next, row)
		buf = append(buf, flow.Record{Time: t, Row: row})
		g.next += g.par
	}
	if g.cfg.Count > 0 && g.next >= g.cfg.Count {
		return buf, io.EOF
	}
	return buf, nil
}

// due returns how many of this subtask's records (counted from k = 0) may
// have been emitted by now. The first record after a (re)start is due at once.
func (g *datagenSource) due(now time.Time) int64 {
	el := now.Sub(g.baseWall)
	if el < 0 {
		el = 0
	}
	perSub := g.cfg.Rate / float64(g.par)
	return g.baseK + 1 + int64(el.Seconds()*perSub)
}

// nextAt is when the next record falls due.
func (g *datagenSource) nextAt() time.Time {
	k := (g.next - g.index) / g.par
	perSub := g.cfg.Rate / float64(g.par)
	sec := float64(k-g.baseK) / perSub
	return g.baseWall.Add(time.Duration(math.Ceil(sec * float64(time.Second))))
}

// mix64 is the splitmix64 finalizer: a fast, well-mixed bijection.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// splitmix is a resettable rand source, so a record's random draws depend
// only on its number.
type splitmix struct{ s uint64 }

func (s *splitmix) Uint64() uint64 {
	s.s += 0x9e3779b97f4a7c15
	return mix64(s.s)
}

// unit maps 64 random bits to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// record fills row with record n and returns its event time.
func (g *datagenSource) record(n int64, row []flow.Value) int64 {
	c := &g.cfg
	g.src.s = mix64(uint64(c.Seed)*0x9e3779b97f4a7c15 ^ mix64(uint64(n)))
	var k uint64
	if g.zipf != nil {
		k = g.zipf.Uint64()
	} else {
		k = g.src.Uint64() % uint64(c.Keys)
	}
	var key string
	if k < uint64(len(g.keys)) {
		key = g.keys[k]
	} else {
		key = "k" + strconv.FormatUint(k, 10)
	}
	var v float64
	switch c.Values.Dist {
	case DistNormal:
		// Box-Muller; 1-u avoids log(0).
		u1, u2 := 1-unit(g.src.Uint64()), unit(g.src.Uint64())
		v = c.Values.Mean + c.Values.Stddev*math.Sqrt(-2*math.Log(u1))*math.Cos(2*math.Pi*u2)
	case DistExponential:
		v = -c.Values.Mean * math.Log(1-unit(g.src.Uint64()))
	default:
		v = c.Values.Min + unit(g.src.Uint64())*(c.Values.Max-c.Values.Min)
	}
	var ts int64
	if c.Rate > 0 {
		ts = c.StartTime + int64(float64(n)*1000/c.Rate)
	} else {
		ts = c.StartTime + n
	}
	if c.Disorder > 0 {
		ts -= int64(g.src.Uint64() % uint64(c.Disorder+1))
	}
	row[0], row[1], row[2] = flow.String(key), flow.Float(v), flow.Int(ts)
	return ts
}
