// Package state owns keyed state: key groups, the keyed-state primitives
// and their heap and Pebble backends, canonical key group snapshots, and
// live migration of key groups between the backends.
//
// # Key groups
//
// Every entry is addressed by key group + namespace + key. A key's key group
// is a stable hash of the key modulo the job's max parallelism; a subtask owns
// a contiguous range of key groups (the same assignment as Flink's, so
// rescaling moves whole key groups). The namespace is opaque bytes, e.g. an
// encoded window; most states use none (nil).
//
// # Primitives
//
// A Store holds the keyed states of one subtask. States are registered with
// it by name, each with a Serializer for its values and optional
// StateOptions (a TTL):
//
//   - ValueState[V]: one value per (key group, namespace, key).
//   - MapState[UK, UV]: a map of user keys to values per (key group,
//     namespace, key); each user key is an entry of its own.
//   - ListState[V]: a list per (key group, namespace, key).
//   - ReducingState[V]: a value that Add folds new values into with a reduce
//     function.
//   - AggregatingState[IN, ACC, OUT]: an accumulator that Add folds inputs
//     into with an AggregateFunction, and Get turns into a result.
//
// With a TTL, an entry (a map's user key, a whole list) expires TTL after
// its last write: reads no longer see it, and snapshots and migrations drop
// it. Time comes from StoreOptions.Clock, so tests control it.
//
// Serializers (Int64Serializer, Float64Serializer, StringSerializer,
// BytesSerializer, or the caller's own) append-encode and decode values;
// decoding bad bytes is an error wrapping ErrDecode, never a panic. A map
// state's user keys are Go map keys on the heap and their encodings on
// Pebble, so its key serializer must encode keys equal in Go, and only
// those, to equal bytes (floats are a poor choice: 0 == -0).
//
// (Table is an older, simpler thing: one typed map per key group, with no
// Pebble backend, snapshot or migration, which the window operators use.)
//
// A Store and its states belong to one task goroutine. The heap backend
// keeps values as they are given: a value (slice, map, pointer) must not be
// changed after it is written to a state, nor one read from it.
//
// # Backends
//
// Each key group of a Store lives on one backend, chosen per key group:
//
//   - Heap: per state, a Go map per key group from the entry's key to its
//     typed value. Reads and writes neither serialize nor copy.
//   - Pebble: serialized values in the worker's PebbleDB (shared by all its
//     Stores), keyed state id | key group | namespace | key as AppendKey
//     lays out, so a state's key group is one contiguous key range. Each
//     state has its own StateID, from the StateIDAllocator of the DB. A write
//     buffer in front of Pebble (per key group, a hash map of the latest
//     stored value of each key written or read) makes a read-modify-write
//     cost a hash lookup instead of a Pebble read and write. When it
//     outgrows StoreOptions.WriteBufferSize, some key groups of it at a time
//     are written to Pebble in one batch, keys sorted; scans of a key group
//     (snapshots, migrations, map iteration) merge its buffered changes into
//     what they read, so they need not flush it. Only a miss reads Pebble.
//
// # Migration
//
// MigrateKeyGroup moves one key group, every state of it, to the other
// backend, atomically as the task goroutine sees it: it runs between
// records, and no record sees a half-moved key group. Heap to Pebble writes
// the key group's entries, sorted, in one batch and drops its maps; Pebble
// to heap reads its ranges, decodes them into maps and deletes the ranges.
// A Migration (or Store.Migrate with a callback) moves a list of key groups
// a slice per step, whole key groups up to MigrationOptions.StepEntries
// entries, so that the task processes records between steps;
// MigrationStats report the entries moved, the time taken, the longest step
// and every key group's backend. A key group is never split across steps:
// the longest stall is at least the time to move the largest key group.
//
// # Snapshots
//
// SnapshotKeyGroup writes a key group in a canonical, versioned format:
// states by name, entries by key, values as their serializers encode them,
// and a CRC-32C. The same state gives the same bytes on either backend, so a
// snapshot taken on the heap restores into Pebble and back. Version 1
// (integers are uvarints unless noted):
//
//	magic "TWKG" | version (1) | key group | number of states
//	per state, in ascending byte order of name:
//	    len(name) | name | kind (1 byte) | flags (1 byte; bit 0: entries carry timestamps)
//	    per live entry, in ascending byte order of entry key:
//	        len(key) (≥ 1) | key | [timestamp: zig-zag varint, Unix ms of the last write] | len(value) | value
//	    0 (end of the state's entries)
//	CRC-32C (Castagnoli) of every byte before it (4 bytes, big-endian)
//
// Kinds are 1 value, 2 list, 3 map, 4 reducing, 5 aggregating. An entry key
// is uvarint len(ns) | ns | key, and for map states uvarint len(ns) | ns |
// uvarint len(key) | key | encoded user key: the Pebble key without the
// state id and key group. A value is the state's serializer's encoding; a
// list is its elements, each preceded by its length (uvarint). Expired
// entries are not written.
// RestoreKeyGroup replaces a key group with a snapshot, in whichever backend
// the key group is on, atomically. It treats its input as untrusted:
// truncated or altered input is a CorruptSnapshotError (ErrCorruptSnapshot),
// a well-formed snapshot that does not fit the store (another key group, an
// unknown state) is ErrSnapshotMismatch, and no length field makes it
// allocate more than the input holds.
package state
