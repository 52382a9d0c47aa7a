package state

// heapBackend keeps a Store's heap key groups. The entries themselves live
// in the states (typed Go maps, one per key group); the backend moves,
// snapshots and restores them a key group at a time.
type heapBackend struct {
	st *Store
}

func (h *heapBackend) scan(ks keyedState, kg int, now int64, fn entryFunc) error {
	return ks.heapScan(kg-h.st.r.Start, now, fn)
}

func (h *heapBackend) newLoader(kg int, _ bool) (groupLoader, error) {
	return &heapGroupLoader{st: h.st, i: kg - h.st.r.Start, loaders: map[keyedState]heapLoader{}}, nil
}

func (h *heapBackend) drop(kg int) error {
	for _, ks := range h.st.states {
		ks.dropHeap(kg - h.st.r.Start)
	}
	return nil
}

// heapGroupLoader builds new maps for one key group, one per state, and
// swaps them in at commit. Heap loaders always replace: a state that got no
// entries is emptied.
type heapGroupLoader struct {
	st      *Store
	i       int
	loaders map[keyedState]heapLoader
	last    keyedState // entries come state by state: skip the map lookup
	lastL   heapLoader
}

func (l *heapGroupLoader) add(ks keyedState, key []byte, ts int64, val []byte) error {
	if ks != l.last {
		hl := l.loaders[ks]
		if hl == nil {
			hl = ks.heapLoader(l.i)
			l.loaders[ks] = hl
		}
		l.last, l.lastL = ks, hl
	}
	return l.lastL.add(key, ts, val)
}

func (l *heapGroupLoader) commit() error {
	for _, ks := range l.st.states {
		if hl := l.loaders[ks]; hl != nil {
			hl.install()
		} else {
			ks.dropHeap(l.i)
		}
	}
	return nil
}

func (l *heapGroupLoader) abort() {}

var _ backend = (*heapBackend)(nil)
