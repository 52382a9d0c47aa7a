package state

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// goldenStore is a small store with an entry in every state, the same on
// every run.
func goldenStore(_ testing.TB, h *harness) []byte {
	s := h.s
	must := h.must
	must(s.value.Update(40, nil, "a", 1))
	must(s.value.Update(40, []byte("w"), "a", -2))
	must(s.bytes.Update(40, nil, "b", []byte{0, 1}))
	must(s.m.Put(40, nil, "k", "x", 0.5))
	must(s.m.Put(40, nil, "k", "y", -1))
	must(s.list.AddAll(40, nil, "k", []string{"p", "q"}))
	must(s.sum.Add(40, nil, "k", 7))
	must(s.avg.Add(40, nil, "k", 3))
	must(s.ttlValue.Update(40, nil, "k", "v"))
	must(s.ttlMap.Put(40, nil, "k", 3, 4))
	must(s.ttlList.Add(40, nil, "k", 5))
	var b bytes.Buffer
	must(h.st.SnapshotKeyGroup(40, &b))
	return b.Bytes()
}

// TestSnapshotGolden pins format version 1: a change to the bytes
// snapshots have is a new version. Run with -update to rewrite the file
// after such a change.
func TestSnapshotGolden(t *testing.T) {
	for _, b := range []BackendKind{Heap, Pebble} {
		t.Run(b.String(), func(t *testing.T) {
			h := newHarness(t, b)
			h.midFn = func(*harness) {}
			got := goldenStore(t, h)
			path := filepath.Join("testdata", "keygroup_v1.snapshot.hex")
			if *update && b == Heap {
				if err := os.WriteFile(path, []byte(hexLines(got)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if hexLines(got) != string(want) {
				t.Fatalf("snapshot differs from %s:\n%s", path, hexLines(got))
			}
		})
	}
}

func hexLines(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		n := min(len(b), 32)
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return sb.String()
}

func TestRestoreRejectsCorruptInput(t *testing.T) {
	h := newHarness(t, Heap)
	h.midFn = func(*harness) {}
	good := goldenStore(t, h)
	for _, b := range []BackendKind{Heap, Pebble} {
		t.Run(b.String(), func(t *testing.T) {
			st, s := h.newStore(b)
			h.must(s.value.Update(40, nil, "before", 9))
			before := snapshot(t, st, 40)
			unchanged := func(what string) {
				t.Helper()
				if !bytes.Equal(snapshot(t, st, 40), before) {
					t.Fatalf("%s changed the key group", what)
				}
			}
			// Every truncation.
			for n := range len(good) {
				err := st.RestoreKeyGroup(40, bytes.NewReader(good[:n]))
				var ce *CorruptSnapshotError
				if !errors.As(err, &ce) || !errors.Is(err, ErrCorruptSnapshot) {
					t.Fatalf("restore of the first %d bytes: %v", n, err)
				}
			}
			unchanged("a truncated snapshot")
			// Every byte altered.
			for i := range good {
				bad := bytes.Clone(good)
				bad[i] ^= 0x41
				err := st.RestoreKeyGroup(40, bytes.NewReader(bad))
				if !errors.Is(err, ErrCorruptSnapshot) && !errors.Is(err, ErrSnapshotMismatch) {
					t.Fatalf("restore with byte %d altered: %v", i, err)
				}
			}
			unchanged("an altered snapshot")
			h.must(st.RestoreKeyGroup(40, bytes.NewReader(good)))
		})
	}
}

// snapshotBytes builds a snapshot of key group kg from its parts, with a
// correct checksum.
func snapshotBytes(version, kg uint64, body []byte) []byte {
	b := []byte(snapshotMagic)
	b = binary.AppendUvarint(b, version)
	b = binary.AppendUvarint(b, kg)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// stateHeader is the start of a state's section.
func stateHeader(name string, k kind, flags byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(name)))
	return append(append(b, name...), byte(k), flags)
}

func TestRestoreErrors(t *testing.T) {
	h := newHarness(t, Heap)
	one := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	entry := func(key, val []byte) []byte {
		b := binary.AppendUvarint(nil, uint64(len(key)))
		b = append(b, key...)
		b = binary.AppendUvarint(b, uint64(len(val)))
		return append(b, val...)
	}
	i64 := Int64Serializer{}.Append(nil, 5)
	cases := []struct {
		name   string
		in     []byte
		target error
		reason string
	}{
		{"bad magic", []byte("XXXX\x01\x28\x00\x00\x00\x00\x00"), ErrCorruptSnapshot, "magic"},
		{"future version", snapshotBytes(2, 40, []byte{0}), ErrCorruptSnapshot, "unknown version 2"},
		{"other key group", snapshotBytes(1, 41, []byte{0}), ErrSnapshotMismatch, "key group 41"},
		{"unknown state", snapshotBytes(1, 40, one([]byte{1}, stateHeader("nope", kindValue, 0), []byte{0})), ErrSnapshotMismatch, `"nope"`},
		{"kind mismatch", snapshotBytes(1, 40, one([]byte{1}, stateHeader("value", kindList, 0), []byte{0})), ErrSnapshotMismatch, "list state"},
		{"unknown flags", snapshotBytes(1, 40, one([]byte{1}, stateHeader("value", kindValue, 2), []byte{0})), ErrCorruptSnapshot, "flags"},
		{"states out of order", snapshotBytes(1, 40, one([]byte{2}, stateHeader("value", kindValue, 0), []byte{0}, stateHeader("avg", kindAggregating, 0), []byte{0})), ErrCorruptSnapshot, "out of order"},
		{"duplicate state", snapshotBytes(1, 40, one([]byte{2}, stateHeader("value", kindValue, 0), []byte{0}, stateHeader("value", kindValue, 0), []byte{0})), ErrCorruptSnapshot, "out of order"},
		{"entries out of order", snapshotBytes(1, 40, one([]byte{1}, stateHeader("value", kindValue, 0), entry([]byte("\x00b"), i64), entry([]byte("\x00a"), i64), []byte{0})), ErrCorruptSnapshot, "keys out of order"},
		{"duplicate entry", snapshotBytes(1, 40, one([]byte{1}, stateHeader("value", kindValue, 0), entry([]byte("\x00a"), i64), entry([]byte("\x00a"), i64), []byte{0})), ErrCorruptSnapshot, "keys out of order"},
		{"bad namespace length", snapshotBytes(1, 40, one([]byte{1}, stateHeader("value", kindValue, 0), entry([]byte("\x05a"), i64), []byte{0})), ErrCorruptSnapshot, "namespace length"},
		{"value that does not decode", snapshotBytes(1, 40, one([]byte{1}, stateHeader("value", kindValue, 0), entry([]byte("\x00a"), []byte{1}), []byte{0})), ErrDecode, "int64 needs 8 bytes"},
		{"map entry without key length", snapshotBytes(1, 40, one([]byte{1}, stateHeader("map", kindMap, 0), entry([]byte("\x00"), Float64Serializer{}.Append(nil, 1)), []byte{0})), ErrCorruptSnapshot, "key length"},
		{"key length too large", snapshotBytes(1, 40, one([]byte{1}, stateHeader("value", kindValue, 0), binary.AppendUvarint(nil, maxEntryKeyLen+1))), ErrCorruptSnapshot, "exceeds"},
		{"varint overflow", snapshotBytes(1, 40, bytes.Repeat([]byte{0xff}, 11)), ErrCorruptSnapshot, "overflows"},
		{"empty", nil, ErrCorruptSnapshot, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := h.st.RestoreKeyGroup(40, bytes.NewReader(c.in))
			if !errors.Is(err, c.target) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("error %v, want %v mentioning %q", err, c.target, c.reason)
			}
		})
	}
}

// onlyReader hides every method of its reader but Read.
type onlyReader struct{ r *bytes.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestRestoreFromPlainReader(t *testing.T) {
	h := newHarness(t, Pebble)
	fill(t, h.s, 40, 10)
	snap := snapshot(t, h.st, 40)
	other, _ := h.newStore(Heap)
	h.must(other.RestoreKeyGroup(40, onlyReader{bytes.NewReader(snap)}))
	if !bytes.Equal(snapshot(t, other, 40), snap) {
		t.Fatal("restored from a plain io.Reader, the snapshot differs")
	}
}

// A length field claiming much more than the input holds must not make the
// decoder allocate what it claims.
func TestRestoreDoesNotTrustLengths(t *testing.T) {
	h := newHarness(t, Heap)
	body := append([]byte{1}, stateHeader("value", kindValue, 0)...)
	body = append(body, 2, 0, 'k') // key
	body = binary.AppendUvarint(body, maxEntryValueLen)
	body = append(body, "only a few bytes"...)
	in := []byte(snapshotMagic + "\x01\x28")
	in = append(in, body...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := h.st.RestoreKeyGroup(40, bytes.NewReader(in))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("restore: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Fatalf("restore of %d bytes allocated %d bytes", len(in), n)
	}
}

// Snapshots are equal bytes whichever backend holds the key group, with
// Pebble's entries partly flushed and partly buffered.
func TestSnapshotSameOnBothBackends(t *testing.T) {
	h := newHarness(t, Heap)
	pst, ps := h.newStore(Pebble)
	both := func(f func(s *testStates)) { f(h.s); f(ps) }
	both(func(s *testStates) { fill(t, s, 50, 40) })
	h.must(pst.Flush())
	both(func(s *testStates) {
		h.must(s.value.Clear(50, nil, "key-50-1"))        // deleted in the buffer, present in Pebble
		h.must(s.value.Update(50, nil, "key-50-2", 77))   // overwritten in the buffer
		h.must(s.value.Update(50, nil, "key-50-new", 78)) // only in the buffer
		h.must(s.value.Update(50, nil, "key-50-00", 79))  // sorts before Pebble's keys
		h.must(s.value.Update(50, nil, "zzz", 80))        // sorts after them
		h.must(s.m.Clear(50, ns("w"), "key-50-3"))
		h.must(s.m.Put(50, ns("w"), "key-50-4", "new", 1))
		h.must(s.list.Add(50, nil, "key-50-5", "more"))
		h.must(s.ttlList.Clear(50, nil, "key-50-6"))
	})
	h.clock.Advance(10 * time.Second)
	if hs, pss := snapshot(t, h.st, 50), snapshot(t, pst, 50); !bytes.Equal(hs, pss) {
		t.Fatalf("heap and pebble snapshots differ:\n%s\n%s", hexLines(hs), hexLines(pss))
	}
	h.clock.Advance(time.Minute) // the TTL states' entries expire
	if hs, pss := snapshot(t, h.st, 50), snapshot(t, pst, 50); !bytes.Equal(hs, pss) {
		t.Fatal("heap and pebble snapshots differ after expiry")
	}
}

// FuzzRestoreKeyGroup feeds arbitrary bytes to RestoreKeyGroup on both
// backends: it must fail with a classified error or succeed on both, and a
// successful restore must snapshot to the same bytes on both, bytes that
// restore to themselves.
func FuzzRestoreKeyGroup(f *testing.F) {
	h := newHarness(f, Heap)
	h.midFn = func(*harness) {}
	f.Add(goldenStore(f, h))
	full, fullS := h.newStore(Pebble)
	fill(f, fullS, 40, 4)
	f.Add(snapshot(f, full, 40))
	empty, _ := h.newStore(Heap)
	f.Add(snapshot(f, empty, 40))
	f.Add([]byte(snapshotMagic))

	heapSt, _ := h.newStore(Heap)
	// Every restore of key group 40 adds versions of the same keys to the
	// memtable, which later scans step over: start a fresh Pebble store now
	// and then, or the fuzzer slows to a crawl.
	var pebSt *Store
	var pebDB *PebbleDB
	dir, execs := f.TempDir(), 0
	freshPebble := func(t testing.TB) {
		if pebDB != nil {
			if err := errors.Join(pebSt.Close(), pebDB.Close()); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if pebDB, err = OpenPebble(filepath.Join(dir, fmt.Sprint(execs))); err != nil {
			t.Fatal(err)
		}
		pebSt, err = NewStore(StoreOptions{Range: testRange, Backend: Pebble, DB: pebDB, StateIDs: &StateIDAllocator{}, Clock: h.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		registerTestStates(t, pebSt)
	}
	freshPebble(f)
	f.Cleanup(func() { pebDB.Close() })
	f.Fuzz(func(t *testing.T, in []byte) {
		if execs++; execs%20_000 == 0 {
			freshPebble(t)
		}
		errH := heapSt.RestoreKeyGroup(40, bytes.NewReader(in))
		errP := pebSt.RestoreKeyGroup(40, bytes.NewReader(in))
		if (errH == nil) != (errP == nil) {
			t.Fatalf("heap restore: %v; pebble restore: %v", errH, errP)
		}
		if errH != nil {
			for _, err := range []error{errH, errP} {
				if !errors.Is(err, ErrCorruptSnapshot) && !errors.Is(err, ErrSnapshotMismatch) {
					t.Fatalf("unclassified error: %v", err)
				}
			}
			return
		}
		sh, sp := snapshot(t, heapSt, 40), snapshot(t, pebSt, 40)
		if !bytes.Equal(sh, sp) {
			t.Fatalf("restored, the backends snapshot differently:\n%s\n%s", hexLines(sh), hexLines(sp))
		}
		if err := pebSt.RestoreKeyGroup(40, bytes.NewReader(sh)); err != nil {
			t.Fatalf("restore of a snapshot: %v", err)
		}
		if again := snapshot(t, pebSt, 40); !bytes.Equal(again, sh) {
			t.Fatalf("a snapshot does not restore to itself:\n%s\n%s", hexLines(sh), hexLines(again))
		}
	})
}
