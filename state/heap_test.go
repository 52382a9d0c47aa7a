package state

import "testing"

func TestTable(t *testing.T) {
	r := RangeForSubtask(128, 4, 1) // [32-63]
	tb := NewTable[int64, int](r)
	tb.Put(40, 1, "a", 10)
	tb.Put(40, 2, "a", 20)
	tb.Put(63, 1, "b", 30)
	tb.Put(40, 1, "a", 11) // overwrite
	if tb.Len() != 3 {
		t.Fatalf("Len = %d", tb.Len())
	}
	if v, ok := tb.Get(40, 1, "a"); !ok || v != 11 {
		t.Fatalf("Get = %d, %v", v, ok)
	}
	if _, ok := tb.Get(40, 3, "a"); ok {
		t.Fatal("namespace 3 found")
	}
	seen := 0
	tb.Each(40, func(e Entry[int64], v int) bool { seen++; return true })
	if seen != 2 {
		t.Fatalf("key group 40 has %d entries", seen)
	}
	tb.Delete(40, 1, "a")
	tb.Delete(40, 1, "a")
	if tb.Len() != 2 {
		t.Fatalf("Len after delete = %d", tb.Len())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a key group outside the range must panic")
		}
	}()
	tb.Put(64, 1, "x", 1)
}
