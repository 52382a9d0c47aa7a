package jobrunner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sirupsen/logrus"
)

func testLog(t *testing.T) *logrus.Entry {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func testSnapshot(id int64) *snapshot {
	return &snapshot{
		meta: checkpointMetadata{CheckpointID: id, Type: typeCheckpoint, JobID: "0123456789abcdef0123456789abcdef", JobName: "t", TriggerTimestamp: 1},
		states: map[string][]byte{
			opSource: fmt.Appendf(nil, `{"offset":%d}`, id*100),
			opWindow: []byte(`{"windows":[]}`),
			opSink:   []byte(`{"length":0}`),
		},
	}
}

func TestCheckpointRoundtrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "chk-7")
	in := testSnapshot(7)
	if err := writeCheckpoint(dir, in); err != nil {
		t.Fatal(err)
	}
	out, err := readCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if out.meta.CheckpointID != 7 || out.meta.JobName != "t" || len(out.meta.StateFiles) != 3 {
		t.Errorf("metadata = %+v", out.meta)
	}
	if !maps.EqualFunc(in.states, out.states, slices.Equal) {
		t.Errorf("states = %q, want %q", out.states, in.states)
	}
	if out.size != in.size || out.size == 0 {
		t.Errorf("size read %d, written %d", out.size, in.size)
	}
	if err := writeCheckpoint(dir, testSnapshot(7)); err == nil {
		t.Error("overwriting a complete checkpoint succeeded")
	}
}

func TestCheckpointCorruptionDetected(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		want    error
	}{
		{"flipped state byte", func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, "window.state"), headerSize+2) }, ErrCorruptCheckpoint},
		{"flipped metadata byte", func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, metadataFile), headerSize+5) }, ErrCorruptCheckpoint},
		{"truncated state", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, "source.state"), 10) }, ErrCorruptCheckpoint},
		{"truncated metadata", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, metadataFile), headerSize+3) }, ErrCorruptCheckpoint},
		{"bad magic", func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, metadataFile), 0) }, ErrCorruptCheckpoint},
		{"future version", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "sink.state")
			b := readAll(t, p)
			binary.BigEndian.PutUint16(b[4:], checkpointVersion+1)
			writeAll(t, p, b)
		}, ErrCorruptCheckpoint},
		{"missing state file", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "sink.state")) }, ErrCorruptCheckpoint},
		{"state file from another checkpoint", func(t *testing.T, dir string) {
			other := filepath.Join(filepath.Dir(dir), "other")
			s := testSnapshot(7)
			s.states[opSink] = []byte(`{"length":12}`)
			if err := writeCheckpoint(other, s); err != nil {
				t.Fatal(err)
			}
			writeAll(t, filepath.Join(dir, "sink.state"), readAll(t, filepath.Join(other, "sink.state")))
		}, ErrCorruptCheckpoint},
		{"no metadata", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, metadataFile)) }, ErrNoCheckpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "chk-7")
			if err := writeCheckpoint(dir, testSnapshot(7)); err != nil {
				t.Fatal(err)
			}
			tc.corrupt(t, dir)
			if _, err := readCheckpoint(dir); !errors.Is(err, tc.want) {
				t.Errorf("readCheckpoint err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCheckpointStoreLatestFallsBackOverCorrupt(t *testing.T) {
	root := t.TempDir()
	store := &checkpointStore{dir: root, retained: 10, log: testLog(t)}
	for id := int64(1); id <= 3; id++ {
		if err := writeCheckpoint(store.checkpointPath(id), testSnapshot(id)); err != nil {
			t.Fatal(err)
		}
	}
	// An incomplete newer checkpoint (crash before _metadata) is ignored.
	if err := os.MkdirAll(store.checkpointPath(4), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := store.latest()
	if err != nil || s == nil || s.meta.CheckpointID != 3 {
		t.Fatalf("latest = %v, %v; want chk-3", s, err)
	}
	flipByte(t, filepath.Join(store.checkpointPath(3), "window.state"), headerSize)
	s, err = store.latest()
	if err != nil || s == nil || s.meta.CheckpointID != 2 {
		t.Fatalf("latest with corrupt chk-3 = %v, %v; want chk-2", s, err)
	}
	if id, _ := store.maxID(); id != 4 {
		t.Errorf("maxID = %d, want 4 (incomplete ids are never reused)", id)
	}
	// A newer savepoint in the store wins.
	sp := store.savepointPath("", "0123456789abcdef0123456789abcdef", 9)
	if err := writeCheckpoint(sp, testSnapshot(9)); err != nil {
		t.Fatal(err)
	}
	if s, _ = store.latest(); s == nil || s.path != sp {
		t.Errorf("latest = %v, want savepoint %s", s, sp)
	}
	empty := &checkpointStore{dir: filepath.Join(root, "nothing"), retained: 1, log: testLog(t)}
	if s, err := empty.latest(); s != nil || err != nil {
		t.Errorf("latest of empty store = %v, %v", s, err)
	}
}

func TestCheckpointStorePrune(t *testing.T) {
	root := t.TempDir()
	store := &checkpointStore{dir: root, retained: 2, log: testLog(t)}
	for _, id := range []int64{1, 2, 4, 5} {
		if err := writeCheckpoint(store.checkpointPath(id), testSnapshot(id)); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(store.checkpointPath(3), 0o755) // incomplete, older than the newest complete
	os.MkdirAll(store.checkpointPath(6), 0o755) // incomplete, possibly in progress
	sp := store.savepointPath("", "0123456789abcdef0123456789abcdef", 0)
	if err := writeCheckpoint(sp, testSnapshot(1)); err != nil {
		t.Fatal(err)
	}
	deleted, err := store.prune()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, []int64{1, 2, 3}) {
		t.Errorf("deleted %v, want [1 2 3]", deleted)
	}
	for id, want := range map[int64]bool{1: false, 2: false, 3: false, 4: true, 5: true, 6: true} {
		if _, err := os.Stat(store.checkpointPath(id)); (err == nil) != want {
			t.Errorf("chk-%d exists = %v, want %v", id, err == nil, want)
		}
	}
	if _, err := os.Stat(filepath.Join(sp, metadataFile)); err != nil {
		t.Errorf("savepoint was pruned: %v", err)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(encodeEnvelope(kindState, []byte(`{"a":1}`)))
	f.Add([]byte("TWCK"))
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, err := decodeEnvelope(b, kindState)
		if err == nil && string(encodeEnvelope(kindState, payload)) != string(b) {
			t.Fatalf("accepted %x which does not re-encode identically", b)
		}
	})
}

func readAll(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeAll(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, p string, i int) {
	t.Helper()
	b := readAll(t, p)
	b[i] ^= 0x40
	writeAll(t, p, b)
}

func truncate(t *testing.T, p string, n int64) {
	t.Helper()
	if err := os.Truncate(p, n); err != nil {
		t.Fatal(err)
	}
}
