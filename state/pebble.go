package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/cockroachdb/pebble/v2"
)

// PebbleDB is the Pebble store of one worker process: the keyed state of
// every subtask in it that lives on the Pebble backend. Its directory is
// scratch space: state is rebuilt from checkpoints when a job starts, so the
// write-ahead log is off (as Flink turns off RocksDB's) and Close deletes
// the directory.
//
// Keys follow DESIGN.md's layout:
//
//	state id (2 bytes, big-endian) | key group (2 bytes, big-endian) | uvarint len(ns) | ns | key
//
// so one key group of one state is one contiguous range, and so is one
// namespace within it (the length prefix keeps namespaces prefix-free).
type PebbleDB struct {
	db  *pebble.DB
	dir string
}

// StateID names one state (one key prefix) in a PebbleDB.
type StateID uint16

// OpenPebble opens a store in dir, which is created (and emptied if it
// holds an old store).
func OpenPebble(dir string) (*PebbleDB, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("state: clear pebble dir: %w", err)
	}
	opts := &pebble.Options{
		DisableWAL:   true,
		MemTableSize: 64 << 20,
		// A task must not stop for the LSM's housekeeping: let memtables
		// and L0 grow rather than stall writes (the store is scratch space
		// and bounded by the job's state).
		MemTableStopWritesThreshold: 8,
		L0CompactionThreshold:       8,
		L0StopWritesThreshold:       256,
		Logger:                      quietLogger{},
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("state: open pebble in %s: %w", dir, err)
	}
	return &PebbleDB{db: db, dir: dir}, nil
}

// DB is the underlying Pebble database.
func (p *PebbleDB) DB() *pebble.DB { return p.db }

// Dir is the store's directory.
func (p *PebbleDB) Dir() string { return p.dir }

// Close closes the store and deletes its directory.
func (p *PebbleDB) Close() error {
	err := p.db.Close()
	return errors.Join(err, os.RemoveAll(p.dir))
}

// quietLogger keeps Pebble's informational logging out of the job's log.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// AppendKey appends the key of (st, kg, ns, key) to dst.
func AppendKey(dst []byte, st StateID, kg int, ns []byte, key string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(st))
	dst = binary.BigEndian.AppendUint16(dst, uint16(kg))
	dst = binary.AppendUvarint(dst, uint64(len(ns)))
	dst = append(dst, ns...)
	return append(dst, key...)
}

// KeyGroupBounds returns the range [lo, hi) of every key of state st in key
// group kg.
func KeyGroupBounds(st StateID, kg int) (lo, hi []byte) {
	lo = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, uint16(st)), uint16(kg))
	return lo, prefixEnd(lo)
}

// NamespaceBounds returns the range [lo, hi) of the keys of namespace ns of
// state st in key group kg.
func NamespaceBounds(st StateID, kg int, ns []byte) (lo, hi []byte) {
	lo = AppendKey(nil, st, kg, ns, "")
	return lo, prefixEnd(lo)
}

// SplitKey is the inverse of AppendKey. ns and key alias k.
func SplitKey(k []byte) (st StateID, kg int, ns, key []byte, err error) {
	if len(k) < 5 {
		return 0, 0, nil, nil, fmt.Errorf("state: pebble key %x too short", k)
	}
	st, kg = StateID(binary.BigEndian.Uint16(k)), int(binary.BigEndian.Uint16(k[2:]))
	n, w := binary.Uvarint(k[4:])
	if w <= 0 || uint64(len(k)-4-w) < n {
		return 0, 0, nil, nil, fmt.Errorf("state: pebble key %x has a bad namespace length", k)
	}
	rest := k[4+w:]
	return st, kg, rest[:n], rest[n:], nil
}

// prefixEnd is the least key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}
