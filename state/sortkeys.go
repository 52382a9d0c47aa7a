package state

import (
	"bytes"
	"slices"
)

// keySorter sorts entries by key, with keys (and values) copied into one
// arena: sorting then touches memory that is in cache, rather than a string
// per entry somewhere on the heap. It radix-sorts the 8 bytes of each key
// after the prefix all keys share (its head), which orders most keys, and
// compares whole keys only where heads are equal.
//
// Sorting is what makes a batch of a key group's entries fast to insert
// into Pebble's memtable (about 3.5 times faster than in map order), and
// what makes snapshots canonical.
type keySorter struct {
	arena      []byte
	ents       []sortEntry
	order, tmp []sortKey
}

type sortEntry struct {
	off        int32 // arena[off:off+klen] is the key, then vlen bytes of value
	klen, vlen int32
	ref        int32 // the caller's index of the entry
	ts         int64
}

func (s *keySorter) reset() {
	s.arena, s.ents = s.arena[:0], s.ents[:0]
}

// start appends an entry's key to the arena and returns its offset; the
// caller appends the value, if any, and calls end.
func (s *keySorter) start(key string) int {
	off := len(s.arena)
	s.arena = append(s.arena, key...)
	return off
}

// startBytes is start for a key in a byte slice.
func (s *keySorter) startBytes(key []byte) int {
	off := len(s.arena)
	s.arena = append(s.arena, key...)
	return off
}

// end records the entry at off whose key is klen bytes long and whose
// value is the rest of the arena.
func (s *keySorter) end(off, klen int, ts int64, ref int) {
	s.ents = append(s.ents, sortEntry{off: int32(off), klen: int32(klen), vlen: int32(len(s.arena) - off - klen), ts: ts, ref: int32(ref)})
}

func (s *keySorter) key(e *sortEntry) []byte {
	return s.arena[e.off : e.off+e.klen]
}

func (s *keySorter) val(e *sortEntry) []byte {
	return s.arena[e.off+e.klen : e.off+e.klen+e.vlen]
}

// sort sorts the entries by key: a radix sort of the heads, then a
// comparison sort of each run of equal heads. Range over sorted afterwards.
func (s *keySorter) sort() {
	n := len(s.ents)
	s.order = s.order[:0]
	if n == 0 {
		return
	}
	first := s.key(&s.ents[0])
	lcp := len(first)
	for i := 1; i < n && lcp > 0; i++ {
		k := s.key(&s.ents[i])
		m := min(lcp, len(k))
		j := 0
		for j < m && k[j] == first[j] {
			j++
		}
		lcp = j
	}
	for i := range s.ents {
		var h uint64
		k := s.key(&s.ents[i])[lcp:]
		for j := range 8 {
			h <<= 8
			if j < len(k) {
				h |= uint64(k[j])
			}
		}
		s.order = append(s.order, sortKey{head: h, idx: int32(i)})
	}
	s.tmp = slices.Grow(s.tmp[:0], n)[:n]
	s.order, s.tmp = radixSort(s.order, s.tmp)
	for i := 0; i < n; {
		j := i + 1
		for j < n && s.order[j].head == s.order[i].head {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(s.order[i:j], func(a, b sortKey) int {
				return bytes.Compare(s.key(&s.ents[a.idx]), s.key(&s.ents[b.idx]))
			})
		}
		i = j
	}
}

// sorted yields the entries in the order sort established.
func (s *keySorter) sorted(yield func(e *sortEntry) bool) {
	for _, o := range s.order {
		if !yield(&s.ents[o.idx]) {
			return
		}
	}
}

// sortKey is what sort moves around: an entry's head and index.
type sortKey struct {
	head uint64
	idx  int32
}

// radixSort sorts a by head, least significant byte first, skipping the
// bytes in which all heads agree. tmp has a's length. It returns the
// sorted slice and the other one, for reuse.
func radixSort(a, tmp []sortKey) (sorted, spare []sortKey) {
	var counts [8][256]int32
	for _, k := range a {
		h := k.head
		for b := range 8 {
			counts[b][byte(h>>(8*b))]++
		}
	}
	src, dst := a, tmp
	for b := range 8 {
		c := &counts[b]
		if int(c[byte(src[0].head>>(8*b))]) == len(src) {
			continue
		}
		var sum int32
		for i := range c {
			c[i], sum = sum, sum+c[i]
		}
		for _, k := range src {
			d := byte(k.head >> (8 * b))
			dst[c[d]] = k
			c[d]++
		}
		src, dst = dst, src
	}
	return src, dst
}
