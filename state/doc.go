// Package state owns keyed state: key groups, the keyed-state tables of the
// heap backend, and (later) the Pebble backend, canonical snapshots, live
// migration between backends and checkpoint storage.
//
// Every entry is addressed by key group + namespace + key. A key's key group
// is a stable hash of the key modulo the job's max parallelism; a subtask owns
// a contiguous range of key groups (the same assignment as Flink's, so
// rescaling moves whole key groups).
package state
