package state

// Entry addresses one value of a keyed state within a key group.
type Entry[N comparable] struct {
	NS  N
	Key string
}

// Table is one keyed state of the heap backend: for each key group of a
// subtask's range, a Go map from (namespace, key) to value. Key groups are
// separate maps so that one can be snapshotted, moved or dropped whole.
//
// A Table belongs to one task goroutine and is not safe for concurrent use.
type Table[N comparable, V any] struct {
	r      KeyGroupRange
	groups []map[Entry[N]]V
	n      int
}

// NewTable returns an empty table for the key groups of r.
func NewTable[N comparable, V any](r KeyGroupRange) *Table[N, V] {
	t := &Table[N, V]{r: r, groups: make([]map[Entry[N]]V, r.Len())}
	for i := range t.groups {
		t.groups[i] = map[Entry[N]]V{}
	}
	return t
}

// Range is the key groups the table holds.
func (t *Table[N, V]) Range() KeyGroupRange { return t.r }

// Len is the number of entries.
func (t *Table[N, V]) Len() int { return t.n }

func (t *Table[N, V]) group(kg int) map[Entry[N]]V {
	if !t.r.Contains(kg) {
		panic("state: key group outside the table's range") // a routing bug, never input
	}
	return t.groups[kg-t.r.Start]
}

// Get returns the value at (kg, ns, key).
func (t *Table[N, V]) Get(kg int, ns N, key string) (V, bool) {
	v, ok := t.group(kg)[Entry[N]{ns, key}]
	return v, ok
}

// Put sets the value at (kg, ns, key).
func (t *Table[N, V]) Put(kg int, ns N, key string, v V) {
	g := t.group(kg)
	e := Entry[N]{ns, key}
	if _, ok := g[e]; !ok {
		t.n++
	}
	g[e] = v
}

// Delete removes the value at (kg, ns, key).
func (t *Table[N, V]) Delete(kg int, ns N, key string) {
	g := t.group(kg)
	e := Entry[N]{ns, key}
	if _, ok := g[e]; ok {
		delete(g, e)
		t.n--
	}
}

// Each calls fn for every entry of key group kg, in no particular order,
// until fn returns false. fn must not change the table.
func (t *Table[N, V]) Each(kg int, fn func(e Entry[N], v V) bool) {
	for e, v := range t.group(kg) {
		if !fn(e, v) {
			return
		}
	}
}
