package state

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// Bounds of max parallelism (the number of key groups).
const (
	MinMaxParallelism     = 1
	MaxMaxParallelism     = 32768
	DefaultMaxParallelism = 128
)

// KeyGroup returns the key group of key: a hash stable across processes and
// versions (xxhash64), modulo maxParallelism.
func KeyGroup(key string, maxParallelism int) int {
	return KeyGroupOfHash(KeyHash(key), maxParallelism)
}

// KeyHash is the hash of key that its key group derives from. Key-by
// computes it once and records carry it, so that keyed state can index keys
// without hashing them again.
func KeyHash(key string) uint64 { return xxhash.Sum64String(key) }

// KeyGroupOfHash is the key group of a key whose KeyHash is h.
func KeyGroupOfHash(h uint64, maxParallelism int) int {
	m := uint64(maxParallelism)
	if m&(m-1) == 0 { // a power of two, as by default: a mask, not a division
		return int(h & (m - 1))
	}
	return int(h % m)
}

// KeyGroupRange is the inclusive range [Start, End] of key groups a subtask owns.
type KeyGroupRange struct {
	Start, End int
}

// Len is the number of key groups in the range.
func (r KeyGroupRange) Len() int { return r.End - r.Start + 1 }

// Contains reports whether kg is in the range.
func (r KeyGroupRange) Contains(kg int) bool { return kg >= r.Start && kg <= r.End }

func (r KeyGroupRange) String() string { return fmt.Sprintf("[%d-%d]", r.Start, r.End) }

// RangeForSubtask returns the key groups subtask index of parallelism owns.
func RangeForSubtask(maxParallelism, parallelism, index int) KeyGroupRange {
	return KeyGroupRange{
		Start: (index*maxParallelism + parallelism - 1) / parallelism,
		End:   ((index+1)*maxParallelism - 1) / parallelism,
	}
}

// SubtaskForKeyGroup returns the index of the subtask that owns kg.
func SubtaskForKeyGroup(maxParallelism, parallelism, kg int) int {
	return kg * parallelism / maxParallelism
}
