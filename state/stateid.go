package state

import (
	"errors"
	"math"
	"sync"
)

// ErrStateIDsExhausted is returned when every StateID of a PebbleDB is in use.
var ErrStateIDsExhausted = errors.New("state: every state id is in use")

// StateIDAllocator hands out the StateIDs of one PebbleDB, so that the
// states of all Stores sharing the database (every keyed operator of every
// subtask in the worker) get distinct key prefixes. Stores release their ids
// when they close. The zero value is ready to use; it is safe for concurrent
// use.
type StateIDAllocator struct {
	mu   sync.Mutex
	next uint32 // the least id never handed out, less one
	free []StateID
}

// Next returns an unused id. Ids start at 1.
func (a *StateIDAllocator) Next() (StateID, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.free); n > 0 {
		id := a.free[n-1]
		a.free = a.free[:n-1]
		return id, nil
	}
	if a.next >= math.MaxUint16 {
		return 0, ErrStateIDsExhausted
	}
	a.next++
	return StateID(a.next), nil
}

// Release returns id for reuse. The caller must have deleted its keys.
func (a *StateIDAllocator) Release(id StateID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.free = append(a.free, id)
}
