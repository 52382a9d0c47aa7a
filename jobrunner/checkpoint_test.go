package jobrunner

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner/connectors"
)

func testLog(t *testing.T) *logrus.Entry {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

const testJobID = "0123456789abcdef0123456789abcdef"

func testSnapshot(id int64) *snapshot {
	return &snapshot{
		meta: checkpointMetadata{CheckpointID: id, Type: typeCheckpoint, JobID: testJobID, JobName: "t", TriggerTimestamp: 1},
		states: map[string][]byte{
			opSource: fmt.Appendf(nil, `{"offset":%d}`, id*100),
			opWindow: []byte(`{"windows":[]}`),
			opSink:   []byte(`{"length":0}`),
		},
	}
}

// A checkpoint storage backend under test.
type ckBackend struct {
	name string
	// skip skips the backend's tests when it is not available (nil: always is).
	skip func(t *testing.T)
	// root returns a fresh, empty location for one test, or skips the test.
	root func(t *testing.T) string
	// open opens a checkpoint directory location as this backend.
	open func(t *testing.T, location string) checkpointStorage
}

// ckBackends are the checkpoint storages of the conformance suite:
//
//   - local: a local directory, always;
//   - hdfs: a unique directory on the namenode in TIDEWATCH_NAMENODE
//     (host:port), removed afterwards; skipped when it is not set;
//   - hdfs-lease-on-local: hdfsStorage's lease lock and fencing over a local
//     directory, so that they run without a cluster.
func ckBackends() []ckBackend {
	openStorage := func(t *testing.T, loc string) checkpointStorage {
		t.Helper()
		st, err := openCheckpointStorage(loc, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	return []ckBackend{
		{name: "local", root: func(t *testing.T) string { return t.TempDir() }, open: openStorage},
		{name: "hdfs", skip: skipWithoutNamenode, root: hdfsTestRoot, open: openStorage},
		{
			name: "hdfs-lease-on-local",
			root: func(t *testing.T) string { return t.TempDir() },
			open: func(t *testing.T, loc string) checkpointStorage {
				fsys, dir, err := connectors.OpenFS(loc)
				if err != nil {
					t.Fatal(err)
				}
				return &hdfsStorage{FS: fsys, dir: dir, log: testLog(t), timing: defaultLeaseTiming, sleep: sleepCtx}
			},
		},
	}
}

func skipWithoutNamenode(t *testing.T) {
	if os.Getenv("TIDEWATCH_NAMENODE") == "" {
		t.Skip("TIDEWATCH_NAMENODE is not set: skipping the HDFS checkpoint storage conformance run " +
			"(set it to host:port of a namenode; HADOOP_USER_NAME selects the HDFS user)")
	}
}

// hdfsTestRoot is a unique directory on the namenode in TIDEWATCH_NAMENODE,
// removed when the test ends.
func hdfsTestRoot(t *testing.T) string {
	t.Helper()
	nn := os.Getenv("TIDEWATCH_NAMENODE")
	root := fmt.Sprintf("hdfs://%s/tmp/tidewatch-checkpoint-test-%d-%s", nn, time.Now().UnixNano(), newLockOwner("", 0).Token)
	fsys, dir, err := connectors.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fsys.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", root, err)
		}
		fsys.Close()
	})
	return root
}

// ckEnv is one conformance test's checkpoint directory.
type ckEnv struct {
	t       *testing.T
	b       ckBackend
	root    string // location holding the checkpoint directory and savepoint targets
	ckDir   string // location of the checkpoint directory
	storage checkpointStorage
	store   *checkpointStore
}

func newCkEnv(t *testing.T, b ckBackend, retained int) *ckEnv {
	root := b.root(t)
	e := &ckEnv{t: t, b: b, root: root, ckDir: root + "/ck"}
	e.storage = b.open(t, e.ckDir)
	e.store = &checkpointStore{storage: e.storage, retained: retained, log: testLog(t)}
	return e
}

// reopen is a new job master on the same checkpoint directory.
func (e *ckEnv) reopen(retained int) *checkpointStore {
	return &checkpointStore{storage: e.b.open(e.t, e.ckDir), retained: retained, log: testLog(e.t)}
}

// chk is the path of chk-<id> on the storage.
func (e *ckEnv) chk(id int64) string {
	return e.storage.Join(e.storage.Dir(), fmt.Sprintf("%s%d", checkpointPref, id))
}

func (e *ckEnv) write(loc string, s *snapshot) {
	e.t.Helper()
	if err := e.store.write(loc, s); err != nil {
		e.t.Fatal(err)
	}
}

func (e *ckEnv) writeIDs(ids ...int64) {
	e.t.Helper()
	for _, id := range ids {
		e.write(e.store.checkpointPath(id), testSnapshot(id))
	}
}

func (e *ckEnv) exists(p string) bool {
	e.t.Helper()
	_, err := e.storage.Stat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		e.t.Fatal(err)
	}
	return err == nil
}

// mutate rewrites the file p on the storage with f applied to its content.
func (e *ckEnv) mutate(p string, f func([]byte) []byte) {
	e.t.Helper()
	b, err := readFile(e.storage, p, -1)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := fsWriteFile(e.storage, p, f(b)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *ckEnv) flip(p string, i int) {
	e.mutate(p, func(b []byte) []byte { b[i] ^= 0x40; return b })
}

func (e *ckEnv) truncate(p string, n int) {
	e.mutate(p, func(b []byte) []byte { return b[:n] })
}

func (e *ckEnv) latestID() int64 {
	e.t.Helper()
	s, err := e.store.latest()
	if err != nil {
		e.t.Fatal(err)
	}
	if s == nil {
		return 0
	}
	return s.meta.CheckpointID
}

// TestCheckpointStorageConformance runs the checkpoint store against every
// storage backend.
func TestCheckpointStorageConformance(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, b ckBackend)
	}{
		{"RoundTrip", testCkRoundTrip},
		{"CorruptionDetected", testCkCorruptionDetected},
		{"IncompleteIgnored", testCkIncompleteIgnored},
		{"CorruptNewestFallsBack", testCkCorruptNewestFallsBack},
		{"Prune", testCkPrune},
		{"MaxIDAcrossRestarts", testCkMaxIDAcrossRestarts},
		{"SavepointToTarget", testCkSavepointToTarget},
		{"Lock", testCkLock},
		{"LockLostFencesWrites", testCkLockLost},
	}
	for _, b := range ckBackends() {
		t.Run(b.name, func(t *testing.T) {
			if b.skip != nil {
				b.skip(t)
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, b) })
			}
		})
	}
}

func testCkRoundTrip(t *testing.T, b ckBackend) {
	e := newCkEnv(t, b, 10)
	loc := e.store.checkpointPath(7)
	if !strings.HasPrefix(loc, e.ckDir) && !strings.HasPrefix(loc, e.storage.URL(e.storage.Dir())) {
		t.Errorf("checkpoint location %s is not under %s", loc, e.ckDir)
	}
	in := testSnapshot(7)
	e.write(loc, in)
	if in.path != loc {
		t.Errorf("written to %s, want %s", in.path, loc)
	}
	for name, read := range map[string]func(string) (*snapshot, error){"store": e.store.read, "location": readCheckpoint} {
		out, err := read(loc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if out.meta.CheckpointID != 7 || out.meta.JobName != "t" || len(out.meta.StateFiles) != 3 {
			t.Errorf("%s: metadata = %+v", name, out.meta)
		}
		if !maps.EqualFunc(in.states, out.states, slices.Equal) {
			t.Errorf("%s: states = %q, want %q", name, out.states, in.states)
		}
		if out.size != in.size || out.size == 0 || out.path != loc {
			t.Errorf("%s: size read %d, written %d; path %s", name, out.size, in.size, out.path)
		}
	}
	if err := e.store.write(loc, testSnapshot(7)); err == nil || !strings.Contains(err.Error(), "already holds a checkpoint") {
		t.Errorf("overwriting a complete checkpoint: %v", err)
	}
	if e.exists(e.storage.Join(e.chk(7), metadataFile+".tmp")) {
		t.Error("temporary metadata file left behind")
	}
}

func testCkCorruptionDetected(t *testing.T, b ckBackend) {
	e := newCkEnv(t, b, 10)
	file := func(id int64, name string) string { return e.storage.Join(e.chk(id), name) }
	tests := []struct {
		name    string
		corrupt func(id int64)
		want    error
	}{
		{"flipped state byte", func(id int64) { e.flip(file(id, "window.state"), headerSize+2) }, ErrCorruptCheckpoint},
		{"flipped metadata byte", func(id int64) { e.flip(file(id, metadataFile), headerSize+5) }, ErrCorruptCheckpoint},
		{"truncated state", func(id int64) { e.truncate(file(id, "source.state"), 10) }, ErrCorruptCheckpoint},
		{"state truncated to its header", func(id int64) { e.truncate(file(id, "source.state"), headerSize) }, ErrCorruptCheckpoint},
		{"state longer than recorded", func(id int64) {
			e.mutate(file(id, "sink.state"), func(b []byte) []byte { return append(b, '\n') })
		}, ErrCorruptCheckpoint},
		{"truncated metadata", func(id int64) { e.truncate(file(id, metadataFile), headerSize+3) }, ErrCorruptCheckpoint},
		{"empty metadata", func(id int64) { e.truncate(file(id, metadataFile), 0) }, ErrCorruptCheckpoint},
		{"bad magic", func(id int64) { e.flip(file(id, metadataFile), 0) }, ErrCorruptCheckpoint},
		{"future version", func(id int64) {
			e.mutate(file(id, "sink.state"), func(b []byte) []byte {
				binary.BigEndian.PutUint16(b[4:], checkpointVersion+1)
				return b
			})
		}, ErrCorruptCheckpoint},
		{"missing state file", func(id int64) {
			if err := e.storage.Remove(file(id, "sink.state")); err != nil {
				t.Fatal(err)
			}
		}, ErrCorruptCheckpoint},
		{"state file from another checkpoint", func(id int64) {
			other := testSnapshot(id)
			other.states[opSink] = []byte(`{"length":12}`)
			otherDir := e.storage.Join(e.storage.Dir(), fmt.Sprintf("other-%d", id))
			if err := writeCheckpoint(e.storage, otherDir, other); err != nil {
				t.Fatal(err)
			}
			b, err := readFile(e.storage, e.storage.Join(otherDir, "sink.state"), -1)
			if err != nil {
				t.Fatal(err)
			}
			e.mutate(file(id, "sink.state"), func([]byte) []byte { return b })
		}, ErrCorruptCheckpoint},
		{"no metadata", func(id int64) {
			if err := e.storage.Remove(file(id, metadataFile)); err != nil {
				t.Fatal(err)
			}
		}, ErrNoCheckpoint},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := int64(i + 1)
			loc := e.store.checkpointPath(id)
			e.write(loc, testSnapshot(id))
			tc.corrupt(id)
			_, err := e.store.read(loc)
			if !errors.Is(err, tc.want) {
				t.Fatalf("read err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), loc) {
				t.Errorf("error %q does not name %s", err, loc)
			}
		})
	}
}

func testCkIncompleteIgnored(t *testing.T, b ckBackend) {
	e := newCkEnv(t, b, 10)
	e.writeIDs(1, 2, 3)
	// chk-4: a crash after the state files, before _metadata was renamed.
	if err := e.storage.MkdirAll(e.chk(4)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"source.state", metadataFile + ".tmp"} {
		if err := fsWriteFile(e.storage, e.storage.Join(e.chk(4), name), []byte("TWCK partial")); err != nil {
			t.Fatal(err)
		}
	}
	if id := e.latestID(); id != 3 {
		t.Errorf("latest = chk-%d, want chk-3", id)
	}
	if id, err := e.store.maxID(); err != nil || id != 4 {
		t.Errorf("maxID = %d, %v; want 4 (incomplete ids are never reused)", id, err)
	}
	if _, err := e.store.read(e.store.checkpointPath(4)); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("explicit restore from the incomplete chk-4: %v, want ErrNoCheckpoint", err)
	}
}

func testCkCorruptNewestFallsBack(t *testing.T, b ckBackend) {
	e := newCkEnv(t, b, 10)
	if id := e.latestID(); id != 0 {
		t.Fatalf("latest of an empty store = chk-%d", id)
	}
	e.writeIDs(1, 2, 3)
	e.flip(e.storage.Join(e.chk(3), "window.state"), headerSize)
	if id := e.latestID(); id != 2 {
		t.Errorf("latest with a corrupt chk-3 = chk-%d, want chk-2", id)
	}
	e.truncate(e.storage.Join(e.chk(2), "source.state"), headerSize+1)
	if id := e.latestID(); id != 1 {
		t.Errorf("latest with a truncated chk-2 = chk-%d, want chk-1", id)
	}
	// A newer savepoint in the store wins.
	sp := e.store.savepointPath("", testJobID, 9)
	e.write(sp, testSnapshot(9))
	if s, err := e.store.latest(); err != nil || s == nil || s.path != sp {
		t.Errorf("latest = %v, %v; want savepoint %s", s, err, sp)
	}
}

func testCkPrune(t *testing.T, b ckBackend) {
	e := newCkEnv(t, b, 2)
	e.writeIDs(1, 2, 4, 5)
	for _, id := range []int64{3, 6} { // 3: left by a crash; 6: possibly in progress
		if err := e.storage.MkdirAll(e.chk(id)); err != nil {
			t.Fatal(err)
		}
	}
	sp := e.store.savepointPath("", testJobID, 1)
	e.write(sp, testSnapshot(1))
	target := e.store.savepointPath(e.root+"/targets", testJobID, 2)
	e.write(target, testSnapshot(2))
	deleted, err := e.store.prune()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, []int64{1, 2, 3}) {
		t.Errorf("deleted %v, want [1 2 3]", deleted)
	}
	for id, want := range map[int64]bool{1: false, 2: false, 3: false, 4: true, 5: true, 6: true} {
		if got := e.exists(e.chk(id)); got != want {
			t.Errorf("chk-%d exists = %v, want %v", id, got, want)
		}
	}
	for _, loc := range []string{sp, target} {
		if _, err := readCheckpoint(loc); err != nil {
			t.Errorf("savepoint %s was pruned: %v", loc, err)
		}
	}
	// Pruning again deletes nothing more.
	if deleted, err := e.store.prune(); err != nil || len(deleted) != 0 {
		t.Errorf("second prune deleted %v, %v", deleted, err)
	}
}

func testCkMaxIDAcrossRestarts(t *testing.T, b ckBackend) {
	e := newCkEnv(t, b, 1)
	e.writeIDs(1, 2)
	if err := e.storage.MkdirAll(e.chk(5)); err != nil {
		t.Fatal(err)
	}
	second := e.reopen(1)
	if id, err := second.maxID(); err != nil || id != 5 {
		t.Errorf("maxID after a restart = %d, %v; want 5", id, err)
	}
	if err := second.write(second.savepointPath("", testJobID, 9), testSnapshot(9)); err != nil {
		t.Fatal(err)
	}
	// Pruning never lowers the highest id: savepoints are kept.
	if _, err := second.prune(); err != nil {
		t.Fatal(err)
	}
	third := e.reopen(1)
	if id, err := third.maxID(); err != nil || id != 9 {
		t.Errorf("maxID after a second restart = %d, %v; want 9", id, err)
	}
	if s, err := third.latest(); err != nil || s == nil || s.meta.CheckpointID != 9 {
		t.Errorf("latest after restarts = %v, %v; want the savepoint 9", s, err)
	}
}

func testCkSavepointToTarget(t *testing.T, b ckBackend) {
	e := newCkEnv(t, b, 1)
	name := func(id int64) string { return fmt.Sprintf("%s%s-%d", savepointPref, testJobID[:6], id) }
	type target struct {
		dir  string
		want func(id int64) string // location of savepoint id
	}
	targets := []target{{e.root + "/targets", func(id int64) string { return e.root + "/targets/" + name(id) }}}
	if u, err := url.Parse(e.root); err == nil && u.Scheme == "hdfs" {
		// A path without a scheme is on the store's HDFS.
		targets = append(targets, target{u.Path + "/bare/", func(id int64) string { return e.root + "/bare/" + name(id) }})
	}
	for i, target := range targets {
		id := int64(11 + i)
		loc := e.store.savepointPath(target.dir, testJobID, id)
		if loc != target.want(id) {
			t.Errorf("savepoint under %s at %s, want %s", target.dir, loc, target.want(id))
		}
		s := testSnapshot(id)
		s.meta.Type = typeSavepoint
		e.write(loc, s)
		if s.path != loc {
			t.Errorf("savepoint written to %s, want %s", s.path, loc)
		}
		// An explicit restore reads it back, through the store and by location.
		for name, read := range map[string]func(string) (*snapshot, error){"store": e.store.read, "location": readCheckpoint} {
			got, err := read(loc)
			if err != nil || got.meta.Type != typeSavepoint || got.meta.CheckpointID != id {
				t.Errorf("%s: read %s = %+v, %v", name, loc, got, err)
			}
		}
	}
	// Savepoints outside the store are not the store's: latest and prune
	// leave them alone.
	refs, err := e.store.list()
	if err != nil || len(refs) != 0 {
		t.Errorf("store lists %v, %v; want nothing", refs, err)
	}
	if u, err := url.Parse(e.root); err == nil && u.Scheme == "hdfs" {
		if err := e.store.write(e.store.savepointPath("relative/dir", testJobID, 20), testSnapshot(20)); err == nil || !strings.Contains(err.Error(), "relative/dir") {
			t.Errorf("savepoint to a relative path on HDFS: %v, want an error naming it", err)
		}
	}
	if err := e.store.write("s3://bucket/sp", testSnapshot(21)); err == nil || !strings.Contains(err.Error(), "s3://bucket/sp") {
		t.Errorf("savepoint to s3://: %v, want an error naming it", err)
	}
}

// holderRenews makes a contender's wait for a lease see its holder renew it.
func holderRenews(t *testing.T, holder checkpointStorage) func(context.Context, time.Duration) error {
	return func(context.Context, time.Duration) error {
		h := holder.(*hdfsStorage)
		h.mu.Lock()
		l := h.lease
		h.mu.Unlock()
		if err := l.renew(); err != nil {
			t.Errorf("holder renew: %v", err)
		}
		return nil
	}
}

func testCkLock(t *testing.T, b ckBackend) {
	e := newCkEnv(t, b, 1)
	ctx := context.Background()
	unlock, err := e.storage.Lock(ctx, newLockOwner(testJobID, 1))
	if err != nil {
		t.Fatal(err)
	}
	if !e.exists(e.storage.Dir()) {
		t.Fatal("Lock did not create the checkpoint directory")
	}
	other := b.open(t, e.ckDir)
	if h, ok := other.(*hdfsStorage); ok {
		h.sleep = holderRenews(t, e.storage)
	}
	if _, err := other.Lock(ctx, newLockOwner(testJobID, 2)); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Lock: %v, want ErrAlreadyRunning", err)
	}
	unlock()
	unlock2, err := other.Lock(ctx, newLockOwner(testJobID, 2))
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
}

func testCkLockLost(t *testing.T, b ckBackend) {
	e := newCkEnv(t, b, 1)
	h, ok := e.storage.(*hdfsStorage)
	if !ok {
		t.Skip("a local flock cannot be lost")
	}
	h.timing = leaseTiming{ttl: 2 * time.Second, renew: 20 * time.Millisecond}
	e.writeIDs(1)
	unlock, err := h.Lock(context.Background(), newLockOwner(testJobID, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	e.writeIDs(2)
	// Another job master takes the lock over behind this one's back.
	thief := newLockOwner(testJobID, 7)
	raw, _ := json.Marshal(thief)
	lockPath := h.Join(h.Dir(), lockFile)
	if err := fsWriteFile(h.FS, lockPath, raw); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.fenced() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := e.store.write(e.store.checkpointPath(3), testSnapshot(3)); !errors.Is(err, ErrCheckpointLockLost) {
		t.Errorf("write after the lock was lost: %v, want ErrCheckpointLockLost", err)
	}
	if _, err := e.store.prune(); !errors.Is(err, ErrCheckpointLockLost) {
		t.Errorf("prune after the lock was lost: %v, want ErrCheckpointLockLost", err)
	}
	unlock()
	// Unlocking leaves the new holder's lock alone.
	got, err := readFile(h.FS, lockPath, -1)
	if err != nil || string(got) != string(raw) {
		t.Errorf("lock after unlock = %q, %v; want the new holder's", got, err)
	}
	if id := e.latestID(); id != 2 {
		t.Errorf("latest = chk-%d, want chk-2", id)
	}
}

// failingStorage fails to open one file with a storage error.
type failingStorage struct {
	checkpointStorage
	name string
}

func (f failingStorage) Open(name string) (connectors.ReadFile, error) {
	if name == f.name {
		return nil, errors.New("namenode unreachable")
	}
	return f.checkpointStorage.Open(name)
}

// A checkpoint that cannot be read for a storage error is not corrupt:
// latest fails instead of restoring an older checkpoint.
func TestLatestReturnsStorageErrors(t *testing.T) {
	e := newCkEnv(t, ckBackends()[0], 10)
	e.writeIDs(1, 2)
	for _, name := range []string{metadataFile, "window.state"} {
		st := failingStorage{e.storage, e.storage.Join(e.chk(2), name)}
		store := &checkpointStore{storage: st, retained: 10, log: testLog(t)}
		s, err := store.latest()
		if err == nil || errors.Is(err, ErrCorruptCheckpoint) || !strings.Contains(err.Error(), "namenode unreachable") || !strings.Contains(err.Error(), e.chk(2)) {
			t.Errorf("%s unreadable: latest = %v, %v; want the storage error naming chk-2", name, s, err)
		}
	}
}

// Plain paths keep working as before, for callers that pass local paths.
func TestReadCheckpointLocalPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "chk-3")
	st, err := openCheckpointStorage(filepath.Dir(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := writeCheckpoint(st, dir, testSnapshot(3)); err != nil {
		t.Fatal(err)
	}
	for _, loc := range []string{dir, "file://" + filepath.ToSlash(dir)} {
		if s, err := readCheckpoint(loc); err != nil || s.meta.CheckpointID != 3 {
			t.Errorf("readCheckpoint(%s) = %v, %v", loc, s, err)
		}
	}
	for _, bad := range []string{"s3://bucket/ck", "hdfs:/nn:8020/ck", "hdfs://", "file://host/ck"} {
		if st, err := openCheckpointStorage(bad, nil); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("open checkpoint storage %s: %v, want an error naming it", bad, err)
			if err == nil {
				st.Close()
			}
		}
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
