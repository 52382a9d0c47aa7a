package procstat

import (
	"math"
	"testing"
	"time"
)

func TestParseCgroupLimit(t *testing.T) {
	for in, want := range map[string]uint64{"max\n": 0, "1073741824\n": 1 << 30, "9223372036854771712": 0} {
		if got, err := parseCgroupLimit(in); err != nil || got != want {
			t.Errorf("parseCgroupLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseCgroupLimit("lots"); err == nil {
		t.Error("no error for a bad limit")
	}
}

func TestSampler(t *testing.T) {
	s := NewSampler(1 << 30)
	first := s.Last()
	// Burn some CPU and allocate so that the second sample differs.
	deadline := time.Now().Add(50 * time.Millisecond)
	var sink [][]byte
	for time.Now().Before(deadline) {
		sink = append(sink, make([]byte, 1024))
		if len(sink) > 1000 {
			sink = sink[:0]
		}
	}
	second := s.Sample(time.Now())
	if second.HeapInUse == 0 || second.Goroutines == 0 || second.NumCPU == 0 {
		t.Errorf("empty sample %+v", second)
	}
	if second.MemoryLimit != 1<<30 || math.Abs(second.HeapLoad()-float64(second.HeapInUse)/(1<<30)) > 1e-12 {
		t.Errorf("limit %d, load %v", second.MemoryLimit, second.HeapLoad())
	}
	if second.CPUTime < first.CPUTime {
		t.Errorf("CPU time went back: %v < %v", second.CPUTime, first.CPUTime)
	}
	if math.IsNaN(second.CPULoad) || second.CPULoad < 0 || second.CPULoad > 1 {
		t.Errorf("CPU load %v, want 0..1", second.CPULoad)
	}
	if second.RSS == 0 {
		t.Logf("no RSS on this platform")
	}
	if !math.IsNaN((Sample{}).HeapLoad()) {
		t.Error("heap load without a limit is not NaN")
	}
}
