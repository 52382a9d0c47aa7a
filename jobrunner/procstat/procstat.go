// Package procstat samples what a monitor needs to know about the job master
// process: Go heap against the memory limit, resident memory, CPU, goroutines
// and garbage collection. It plays the part of the JVM metrics of a Flink
// JobManager or TaskManager.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sample is one reading. Byte counts are bytes; a value that could not be
// read is 0 (counts) or NaN (CPULoad, GCTimeMsPerSecond).
type Sample struct {
	Time time.Time
	// HeapInUse is the memory of live and not yet swept heap objects;
	// HeapCommitted the heap memory obtained from the OS and not returned.
	HeapInUse, HeapCommitted uint64
	// MemoryLimit is the container's memory limit (0 if none is known).
	MemoryLimit uint64
	// RSS is the resident set size of the process.
	RSS uint64
	// CPUTime is user plus system CPU time since the process started;
	// CPULoad the share of all cores used since the previous sample, 0..1.
	CPUTime time.Duration
	CPULoad float64
	// Goroutines is the number of goroutines; Threads of OS threads.
	Goroutines, Threads int
	// GCCycles counts completed GC cycles; GCPauseTotal is the total
	// stop-the-world pause time; GCTimeMsPerSecond the pause time per second
	// of wall time since the previous sample.
	GCCycles          uint64
	GCPauseTotal      time.Duration
	GCTimeMsPerSecond float64
	// NumCPU is the number of usable cores.
	NumCPU int
}

// NonHeap is the resident memory that is not Go heap: stacks, runtime
// structures, and memory outside the Go heap such as Pebble's cache.
func (s Sample) NonHeap() uint64 {
	if s.RSS > s.HeapInUse {
		return s.RSS - s.HeapInUse
	}
	return 0
}

// HeapLoad is HeapInUse / MemoryLimit, NaN without a limit.
func (s Sample) HeapLoad() float64 {
	if s.MemoryLimit == 0 {
		return math.NaN()
	}
	return float64(s.HeapInUse) / float64(s.MemoryLimit)
}

// Sampler takes samples and keeps the last one. Safe for concurrent use.
type Sampler struct {
	limit uint64

	mu   sync.Mutex
	last Sample
}

// NewSampler returns a sampler reporting limit as the memory limit, and
// takes a first sample.
func NewSampler(limit uint64) *Sampler {
	s := &Sampler{limit: limit}
	s.Sample(time.Now())
	return s
}

var runtimeMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/gc/cycles/total:gc-cycles",
	"/sched/goroutines:goroutines",
}

// Sample reads the process state now and makes it the last sample.
func (s *Sampler) Sample(now time.Time) Sample {
	ms := make([]metrics.Sample, len(runtimeMetrics))
	for i, name := range runtimeMetrics {
		ms[i].Name = name
	}
	metrics.Read(ms)
	u64 := func(i int) uint64 {
		if ms[i].Value.Kind() == metrics.KindUint64 {
			return ms[i].Value.Uint64()
		}
		return 0
	}
	cur := Sample{
		Time:        now,
		HeapInUse:   u64(0),
		MemoryLimit: s.limit,
		GCCycles:    u64(3),
		Goroutines:  int(u64(4)),
		NumCPU:      runtime.NumCPU(),
		CPULoad:     math.NaN(),
	}
	cur.HeapCommitted = cur.HeapInUse + u64(1) + u64(2)
	if cur.Goroutines == 0 {
		cur.Goroutines = runtime.NumGoroutine()
	}
	cur.GCPauseTotal = gcPauseTotal()
	cur.RSS, cur.Threads = readStatus()
	if cpu, err := cpuTime(); err == nil {
		cur.CPUTime = cpu
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	cur.GCTimeMsPerSecond = math.NaN()
	if prev := s.last; !prev.Time.IsZero() {
		if wall := now.Sub(prev.Time); wall > 0 {
			if prev.CPUTime > 0 && cur.CPUTime >= prev.CPUTime {
				cur.CPULoad = min(1, float64(cur.CPUTime-prev.CPUTime)/float64(wall)/float64(cur.NumCPU))
			}
			cur.GCTimeMsPerSecond = float64((cur.GCPauseTotal - prev.GCPauseTotal).Milliseconds()) / wall.Seconds()
		}
	}
	s.last = cur
	return cur
}

// Last returns the last sample.
func (s *Sampler) Last() Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// gcPauseTotal is the exact total GC pause time. ReadMemStats stops the
// world for a few microseconds; it is called once per sample.
func gcPauseTotal() time.Duration {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return time.Duration(m.PauseTotalNs)
}

func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// readStatus reads VmRSS and Threads from /proc/self/status (Linux); zeros
// elsewhere.
func readStatus() (rss uint64, threads int) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
				rss = n * 1024 // kB
			}
		case "Threads":
			threads, _ = strconv.Atoi(f[0])
		}
	}
	return rss, threads
}

// CgroupMemoryLimit returns the memory limit of the process's cgroup (v2
// memory.max, or v1 memory.limit_in_bytes), and false when there is none or
// it cannot be read. YARN's NodeManager puts containers in such cgroups when
// it enforces memory with cgroups.
func CgroupMemoryLimit() (uint64, bool) {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		n, err := parseCgroupLimit(string(b))
		if err == nil && n > 0 {
			return n, true
		}
	}
	return 0, false
}

// parseCgroupLimit parses a cgroup memory limit file. "max" and the v1
// "unlimited" value (a page-rounded MaxInt64) mean no limit: 0.
func parseCgroupLimit(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("procstat: cgroup memory limit %q: %w", s, err)
	}
	if n >= math.MaxInt64/2 {
		return 0, nil
	}
	return n, nil
}
