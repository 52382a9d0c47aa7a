package jobrunner

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Record is one element flowing through the pipeline. TS is event time in
// epoch milliseconds.
type Record struct {
	Key   string
	Value float64
	TS    int64
}

// datagen is the deterministic generator source. Record i is a pure function
// of (seed, i, startMs, rate, keys, disorder), so replaying from an offset
// reproduces exactly the records of the first run.
type datagen struct {
	seed       uint64
	keys       int64
	rate       int64
	count      int64 // 0 = unbounded
	disorderMs int64
	startMs    int64

	offset   int64    // index of the next record to emit
	keyNames []string // precomputed "k<i>" names for small key spaces
}

// maxPrecomputedKeys bounds the memory spent caching key strings.
const maxPrecomputedKeys = 1 << 16

func newDatagen(g DatagenSpec, startMs int64) *datagen {
	d := &datagen{
		seed:       uint64(g.Seed),
		keys:       g.Keys,
		rate:       g.Rate,
		count:      g.Count,
		disorderMs: g.Disorder.Milliseconds(),
		startMs:    startMs,
	}
	if d.keys <= maxPrecomputedKeys {
		d.keyNames = make([]string, d.keys)
		for i := range d.keyNames {
			d.keyNames[i] = "k" + strconv.Itoa(i)
		}
	}
	return d
}

// splitmix64 finalizer: a fast, well-mixed bijection on uint64.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// baseTS is the undisordered event time of record i: record i is generated
// at i/rate seconds after startMs (1 ms apart when rate is 0).
func (d *datagen) baseTS(i int64) int64 {
	if d.rate <= 0 {
		return d.startMs + i
	}
	// Split to avoid overflowing i*1000 for large offsets.
	return d.startMs + (i/d.rate)*1000 + (i%d.rate)*1000/d.rate
}

// record returns record i.
func (d *datagen) record(i int64) Record {
	h := mix64(d.seed*0x9e3779b97f4a7c15 ^ mix64(uint64(i)))
	k := int64(h % uint64(d.keys))
	var key string
	if d.keyNames != nil {
		key = d.keyNames[k]
	} else {
		key = "k" + strconv.FormatInt(k, 10)
	}
	h2 := mix64(h ^ 0xa5a5a5a5a5a5a5a5)
	value := math.Round(float64(h2>>11)/(1<<53)*100000) / 1000 // [0, 100), 3 decimals
	ts := d.baseTS(i)
	if d.disorderMs > 0 {
		ts -= int64(mix64(h2+1) % uint64(d.disorderMs+1))
	}
	return Record{Key: key, Value: value, TS: ts}
}

// exhausted reports whether a bounded source has emitted all its records.
func (d *datagen) exhausted() bool { return d.count > 0 && d.offset >= d.count }

// remaining returns how many records are left, or math.MaxInt64 if unbounded.
func (d *datagen) remaining() int64 {
	if d.count == 0 {
		return math.MaxInt64
	}
	return max(d.count-d.offset, 0)
}

// next returns the next record and advances the offset.
func (d *datagen) next() Record {
	r := d.record(d.offset)
	d.offset++
	return r
}

// datagenState is the source's checkpointed state. The generator parameters
// are kept to detect a restore into a differently configured source.
type datagenState struct {
	Offset     int64 `json:"offset"`
	StartMs    int64 `json:"startTimeMs"`
	Seed       int64 `json:"seed"`
	Keys       int64 `json:"keys"`
	Rate       int64 `json:"rate"`
	DisorderMs int64 `json:"disorderMs"`
}

func (d *datagen) snapshot() ([]byte, error) {
	return json.Marshal(datagenState{
		Offset: d.offset, StartMs: d.startMs, Seed: int64(d.seed),
		Keys: d.keys, Rate: d.rate, DisorderMs: d.disorderMs,
	})
}

// restore repositions the source. It returns a non-empty warning when the
// checkpoint was taken with different generator parameters: the job can
// continue, but replayed records will differ from the first run's.
func (d *datagen) restore(b []byte) (warning string, err error) {
	var s datagenState
	if err := json.Unmarshal(b, &s); err != nil {
		return "", fmt.Errorf("%w: source state: %v", ErrCorruptCheckpoint, err)
	}
	if s.Offset < 0 {
		return "", fmt.Errorf("%w: source state: negative offset %d", ErrCorruptCheckpoint, s.Offset)
	}
	if s.Seed != int64(d.seed) || s.Keys != d.keys || s.Rate != d.rate || s.DisorderMs != d.disorderMs {
		warning = fmt.Sprintf("datagen parameters changed since the checkpoint (seed %d→%d, keys %d→%d, rate %d→%d, disorder %dms→%dms); replayed records will differ",
			s.Seed, int64(d.seed), s.Keys, d.keys, s.Rate, d.rate, s.DisorderMs, d.disorderMs)
	}
	d.offset = s.Offset
	d.startMs = s.StartMs
	return warning, nil
}

// pacer spreads emission of a rate-limited source evenly over wall time. It
// is rebased whenever emission starts (at start and after a restore), so a
// restored job does not try to catch up on the time it was down.
type pacer struct {
	rate       int64
	baseWall   time.Time
	baseOffset int64
}

// due returns the offset the source may emit up to (exclusive) at now.
func (p *pacer) due(now time.Time) int64 {
	el := now.Sub(p.baseWall)
	if el < 0 {
		return p.baseOffset
	}
	return p.baseOffset + int64(el/time.Second)*p.rate + int64(el%time.Second)*p.rate/int64(time.Second)
}

// nextAt returns the earliest wall time at which due reaches offset+1, i.e.
// at which record offset may be emitted.
func (p *pacer) nextAt(offset int64) time.Time {
	n := offset + 1 - p.baseOffset
	sec := n / p.rate
	ns := ((n%p.rate)*int64(time.Second) + p.rate - 1) / p.rate // round up
	return p.baseWall.Add(time.Duration(sec)*time.Second + time.Duration(ns))
}
