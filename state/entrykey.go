package state

import (
	"encoding/binary"
	"fmt"
)

// Entry keys are the part of a Pebble key after the state id and key group
// (see AppendKey), and what snapshots carry:
//
//	value, list, reducing, aggregating:  uvarint len(ns) | ns | key
//	map:                                 uvarint len(ns) | ns | uvarint len(key) | key | user key
//
// A map entry's key is length-prefixed so that its user keys (one Pebble key
// each) follow it unambiguously; both forms sort one (namespace, key)'s
// entries together.

// appendStatePrefix appends the state id and key group of a Pebble key.
func appendStatePrefix(dst []byte, id StateID, kg int) []byte {
	return append(dst, byte(id>>8), byte(id), byte(kg>>8), byte(kg))
}

// appendEntryKey appends the entry key of (ns, key).
func appendEntryKey(dst, ns []byte, key string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ns)))
	dst = append(dst, ns...)
	return append(dst, key...)
}

// appendMapPrefix appends the part of a map entry's key before the user key.
func appendMapPrefix(dst, ns []byte, key string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ns)))
	dst = append(dst, ns...)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(dst, key...)
}

// checkEntryKey checks that k is an entry key of a value-like state.
func checkEntryKey(k []byte) error {
	n, w := binary.Uvarint(k)
	if w <= 0 || n > uint64(len(k)-w) {
		return fmt.Errorf("entry key %.32x: bad namespace length", k)
	}
	return nil
}

// splitMapKey splits a map entry's key after its key: prefix is the (ns,
// key) part, userKey the encoded user key.
func splitMapKey(k []byte) (prefix, userKey []byte, err error) {
	n, w := binary.Uvarint(k)
	if w <= 0 || n > uint64(len(k)-w) {
		return nil, nil, fmt.Errorf("map entry key %.32x: bad namespace length", k)
	}
	off := w + int(n)
	n, w = binary.Uvarint(k[off:])
	if w <= 0 || n > uint64(len(k)-off-w) {
		return nil, nil, fmt.Errorf("map entry key %.32x: bad key length", k)
	}
	off += w + int(n)
	return k[:off], k[off:], nil
}
