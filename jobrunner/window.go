package jobrunner

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
)

// WindowResult is one fired window pane for one key.
type WindowResult struct {
	Start int64  `json:"windowStart"` // epoch ms, inclusive
	End   int64  `json:"windowEnd"`   // epoch ms, exclusive
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// watermarkNone is the watermark before any record has been seen.
const watermarkNone = math.MinInt64

// watermarkMax is the final watermark of a bounded input; it fires every
// window.
const watermarkMax = math.MaxInt64

// boundedOutOfOrderness tracks the highest event time seen and derives the
// watermark as maxTs - delay - 1, like Flink's BoundedOutOfOrdernessWatermarks.
type boundedOutOfOrderness struct {
	delayMs int64
	maxTs   int64
}

func newBoundedOutOfOrderness(delayMs int64) *boundedOutOfOrderness {
	return &boundedOutOfOrderness{delayMs: delayMs, maxTs: watermarkNone}
}

func (w *boundedOutOfOrderness) observe(ts int64) { w.maxTs = max(w.maxTs, ts) }

func (w *boundedOutOfOrderness) current() int64 {
	if w.maxTs == watermarkNone || w.maxTs < math.MinInt64+w.delayMs+1 {
		return watermarkNone
	}
	return w.maxTs - w.delayMs - 1
}

// tumblingCount assigns records to event-time tumbling windows and counts
// them per key. A window [start, start+size) fires once the watermark reaches
// start+size-1; records for a window that already fired are late and dropped.
type tumblingCount struct {
	sizeMs  int64
	windows map[int64]map[string]int64 // window start → key → count
	starts  []int64                    // open window starts, ascending
}

func newTumblingCount(sizeMs int64) *tumblingCount {
	return &tumblingCount{sizeMs: sizeMs, windows: map[int64]map[string]int64{}}
}

// windowStart returns the start of the window containing ts (floor division,
// correct for negative timestamps).
func (w *tumblingCount) windowStart(ts int64) int64 {
	r := ts % w.sizeMs
	if r < 0 {
		r += w.sizeMs
	}
	return ts - r
}

// maxTimestamp is the last millisecond that belongs to the window at start.
func (w *tumblingCount) maxTimestamp(start int64) int64 { return start + w.sizeMs - 1 }

// add counts one record. It returns false, and counts nothing, if the record
// is late with respect to watermark.
func (w *tumblingCount) add(key string, ts, watermark int64) bool {
	start := w.windowStart(ts)
	if w.maxTimestamp(start) <= watermark {
		return false
	}
	counts, ok := w.windows[start]
	if !ok {
		counts = map[string]int64{}
		w.windows[start] = counts
		// Windows almost always open in order; insertion keeps starts sorted.
		i, _ := slices.BinarySearch(w.starts, start)
		w.starts = slices.Insert(w.starts, i, start)
	}
	counts[key]++
	return true
}

// advance fires, in window order and key order within a window, every window
// whose end the watermark has reached.
func (w *tumblingCount) advance(watermark int64, emit func(WindowResult) error) error {
	for len(w.starts) > 0 && w.maxTimestamp(w.starts[0]) <= watermark {
		start := w.starts[0]
		counts := w.windows[start]
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := emit(WindowResult{Start: start, End: start + w.sizeMs, Key: k, Count: counts[k]}); err != nil {
				return err
			}
		}
		delete(w.windows, start)
		w.starts = w.starts[1:]
	}
	return nil
}

// openWindows returns the number of open windows and keyed counters.
func (w *tumblingCount) openWindows() (windows, entries int) {
	for _, c := range w.windows {
		entries += len(c)
	}
	return len(w.windows), entries
}

// windowState is the window operator's checkpointed state: its open windows
// in order, with per-key counts in key order, plus the watermark state.
type windowState struct {
	SizeMs    int64         `json:"sizeMs"`
	Watermark int64         `json:"watermark"`
	MaxTs     int64         `json:"maxTimestamp"`
	Windows   []windowCount `json:"windows"`
}

type windowCount struct {
	Start  int64      `json:"start"`
	Counts []keyCount `json:"counts"`
}

type keyCount struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

func (w *tumblingCount) snapshot(watermark, maxTs int64) ([]byte, error) {
	st := windowState{SizeMs: w.sizeMs, Watermark: watermark, MaxTs: maxTs, Windows: make([]windowCount, 0, len(w.starts))}
	for _, start := range w.starts {
		counts := w.windows[start]
		wc := windowCount{Start: start, Counts: make([]keyCount, 0, len(counts))}
		for k, c := range counts {
			wc.Counts = append(wc.Counts, keyCount{k, c})
		}
		slices.SortFunc(wc.Counts, func(a, b keyCount) int { return strings.Compare(a.Key, b.Key) })
		st.Windows = append(st.Windows, wc)
	}
	return json.Marshal(st)
}

// restore replaces the operator's windows and returns the watermark state.
func (w *tumblingCount) restore(b []byte) (watermark, maxTs int64, err error) {
	var st windowState
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, 0, fmt.Errorf("%w: window state: %v", ErrCorruptCheckpoint, err)
	}
	if st.SizeMs != w.sizeMs {
		return 0, 0, fmt.Errorf("%w: checkpoint has window size %dms, the spec %dms", ErrIncompatibleCheckpoint, st.SizeMs, w.sizeMs)
	}
	w.windows = make(map[int64]map[string]int64, len(st.Windows))
	w.starts = w.starts[:0]
	for _, wc := range st.Windows {
		if _, dup := w.windows[wc.Start]; dup || w.windowStart(wc.Start) != wc.Start {
			return 0, 0, fmt.Errorf("%w: window state: bad window start %d", ErrCorruptCheckpoint, wc.Start)
		}
		counts := make(map[string]int64, len(wc.Counts))
		for _, kc := range wc.Counts {
			counts[kc.Key] = kc.Count
		}
		w.windows[wc.Start] = counts
		w.starts = append(w.starts, wc.Start)
	}
	slices.Sort(w.starts)
	return st.Watermark, st.MaxTs, nil
}
