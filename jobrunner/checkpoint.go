package jobrunner

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner/connectors"
)

// Checkpoint errors.
var (
	// ErrCorruptCheckpoint: a checkpoint file fails its magic, version,
	// length or checksum test, or its content does not decode.
	ErrCorruptCheckpoint = errors.New("jobrunner: corrupt checkpoint")
	// ErrIncompatibleCheckpoint: a sound checkpoint that cannot be restored
	// into this job (different window size, different output file, ...).
	ErrIncompatibleCheckpoint = errors.New("jobrunner: incompatible checkpoint")
	// ErrNoCheckpoint: a restore path holds no complete checkpoint.
	ErrNoCheckpoint = errors.New("jobrunner: no checkpoint")
)

// On-disk format of every checkpoint file (the _metadata file and each
// operator state file):
//
//	offset size field
//	0      4    magic "TWCK"
//	4      2    format version (big-endian), currently 1
//	6      2    kind: 1 = metadata, 2 = operator state
//	8      8    payload length in bytes (big-endian)
//	16     4    CRC-32C (Castagnoli) of the payload (big-endian)
//	20     n    payload (JSON)
//
// A checkpoint directory is complete only once _metadata exists; it is
// written last, as a temporary file that is fsynced and renamed. _metadata
// lists every state file with its size and CRC, so a missing, truncated or
// swapped state file is detected as well.
const (
	checkpointMagic   = "TWCK"
	checkpointVersion = 1
	headerSize        = 20

	kindMetadata uint16 = 1
	kindState    uint16 = 2

	metadataFile   = "_metadata"
	checkpointPref = "chk-"
	savepointDir   = "savepoints"
	savepointPref  = "savepoint-"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checkpoint types as Flink names them (checkpoint_type).
const (
	typeCheckpoint    = "CHECKPOINT"
	typeSavepoint     = "SAVEPOINT"
	typeSyncSavepoint = "SYNC_SAVEPOINT"
)

func encodeEnvelope(kind uint16, payload []byte) []byte {
	b := make([]byte, headerSize, headerSize+len(payload))
	copy(b, checkpointMagic)
	binary.BigEndian.PutUint16(b[4:], checkpointVersion)
	binary.BigEndian.PutUint16(b[6:], kind)
	binary.BigEndian.PutUint64(b[8:], uint64(len(payload)))
	binary.BigEndian.PutUint32(b[16:], crc32.Checksum(payload, castagnoli))
	return append(b, payload...)
}

func decodeEnvelope(b []byte, kind uint16) ([]byte, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("%w: file too short (%d bytes)", ErrCorruptCheckpoint, len(b))
	}
	if string(b[:4]) != checkpointMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorruptCheckpoint, b[:4])
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != checkpointVersion {
		return nil, fmt.Errorf("%w: unsupported format version %d (this binary reads %d)", ErrCorruptCheckpoint, v, checkpointVersion)
	}
	if k := binary.BigEndian.Uint16(b[6:]); k != kind {
		return nil, fmt.Errorf("%w: file kind %d, want %d", ErrCorruptCheckpoint, k, kind)
	}
	n := binary.BigEndian.Uint64(b[8:])
	payload := b[headerSize:]
	if n != uint64(len(payload)) {
		return nil, fmt.Errorf("%w: payload length %d, header says %d", ErrCorruptCheckpoint, len(payload), n)
	}
	if sum := crc32.Checksum(payload, castagnoli); sum != binary.BigEndian.Uint32(b[16:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptCheckpoint)
	}
	return payload, nil
}

// checkpointMetadata is the payload of _metadata.
type checkpointMetadata struct {
	CheckpointID     int64       `json:"checkpointId"`
	Type             string      `json:"type"` // CHECKPOINT, SAVEPOINT, SYNC_SAVEPOINT
	JobID            string      `json:"jobId"`
	JobName          string      `json:"jobName"`
	TriggerTimestamp int64       `json:"triggerTimestamp"`
	StateFiles       []stateFile `json:"stateFiles"`
}

type stateFile struct {
	Operator string `json:"operator"`
	File     string `json:"file"`
	Size     int64  `json:"size"`
	CRC32C   uint32 `json:"crc32c"`
}

// snapshot is a checkpoint in memory: metadata plus each operator's state,
// keyed by operator id.
type snapshot struct {
	meta   checkpointMetadata
	states map[string][]byte
	path   string // directory it was read from or written to
	size   int64  // bytes on disk
}

// writeCheckpoint writes s into dir on fsys; dir must not hold a complete
// checkpoint already. State files are written and made durable first;
// _metadata is written last, as a temporary file that is renamed into place,
// so a reader sees either no checkpoint or all of it. Locally every file is
// fsynced, and the rename fsyncs the directory (which makes the state files'
// names durable too, as they are in the same directory); on HDFS a file is
// complete once every datanode of its pipeline has acknowledged it, and the
// namenode logs the rename before it answers.
func writeCheckpoint(fsys connectors.FS, dir string, s *snapshot) error {
	meta := fsys.Join(dir, metadataFile)
	if _, err := fsys.Stat(meta); err == nil {
		return fmt.Errorf("jobrunner: checkpoint directory %s already holds a checkpoint", fsys.URL(dir))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("jobrunner: write checkpoint %s: %w", fsys.URL(dir), err)
	}
	if err := fsys.MkdirAll(dir); err != nil {
		return fmt.Errorf("jobrunner: write checkpoint: create %s: %w", fsys.URL(dir), err)
	}
	ops := make([]string, 0, len(s.states))
	for op := range s.states {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	s.meta.StateFiles = s.meta.StateFiles[:0]
	var size int64
	for _, op := range ops {
		payload := s.states[op]
		name := op + ".state"
		data := encodeEnvelope(kindState, payload)
		if err := fsWriteFile(fsys, fsys.Join(dir, name), data); err != nil {
			return fmt.Errorf("jobrunner: write checkpoint: %w", err)
		}
		size += int64(len(data))
		s.meta.StateFiles = append(s.meta.StateFiles, stateFile{
			Operator: op, File: name, Size: int64(len(data)), CRC32C: crc32.Checksum(payload, castagnoli),
		})
	}
	payload, err := json.Marshal(s.meta)
	if err != nil {
		return fmt.Errorf("jobrunner: write checkpoint %s: %w", fsys.URL(dir), err)
	}
	data := encodeEnvelope(kindMetadata, payload)
	if err := fsWriteFileAtomic(fsys, meta, data); err != nil {
		return fmt.Errorf("jobrunner: write checkpoint: %w", err)
	}
	s.path = fsys.URL(dir)
	s.size = size + int64(len(data))
	return nil
}

// readCheckpoint reads and verifies the checkpoint at a location: a local
// path, file:///path or hdfs://namenode/path.
func readCheckpoint(location string) (*snapshot, error) {
	fsys, dir, err := connectors.OpenFS(location)
	if err != nil {
		return nil, fmt.Errorf("jobrunner: read checkpoint %s: %w", location, err)
	}
	defer fsys.Close()
	return readCheckpointFS(fsys, dir)
}

// readCheckpointFS reads and verifies the checkpoint in dir on fsys.
func readCheckpointFS(fsys connectors.FS, dir string) (*snapshot, error) {
	metaPath := fsys.Join(dir, metadataFile)
	raw, err := readFile(fsys, metaPath, -1)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s", ErrNoCheckpoint, fsys.URL(dir), metadataFile)
	}
	if err != nil {
		return nil, fmt.Errorf("jobrunner: read checkpoint %s: %w", fsys.URL(dir), err)
	}
	payload, err := decodeEnvelope(raw, kindMetadata)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fsys.URL(metaPath), err)
	}
	s := &snapshot{states: map[string][]byte{}, path: fsys.URL(dir), size: int64(len(raw))}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s.meta); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptCheckpoint, fsys.URL(metaPath), err)
	}
	if s.meta.CheckpointID < 1 {
		return nil, fmt.Errorf("%w: %s: checkpoint id %d", ErrCorruptCheckpoint, fsys.URL(dir), s.meta.CheckpointID)
	}
	for _, sf := range s.meta.StateFiles {
		if strings.ContainsAny(sf.File, `/\`) || sf.File == metadataFile || !strings.HasSuffix(sf.File, ".state") || sf.Size < 0 {
			return nil, fmt.Errorf("%w: %s: bad state file %q", ErrCorruptCheckpoint, fsys.URL(dir), sf.File)
		}
		p := fsys.Join(dir, sf.File)
		// Read one byte more than expected: enough to tell a longer file.
		raw, err := readFile(fsys, p, sf.Size+1)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorruptCheckpoint, fsys.URL(p), err)
		}
		if err != nil {
			return nil, fmt.Errorf("jobrunner: read checkpoint %s: %w", fsys.URL(dir), err)
		}
		if int64(len(raw)) != sf.Size {
			return nil, fmt.Errorf("%w: %s: %d bytes, metadata says %d", ErrCorruptCheckpoint, fsys.URL(p), len(raw), sf.Size)
		}
		st, err := decodeEnvelope(raw, kindState)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fsys.URL(p), err)
		}
		if crc32.Checksum(st, castagnoli) != sf.CRC32C {
			return nil, fmt.Errorf("%w: %s: does not belong to this checkpoint", ErrCorruptCheckpoint, fsys.URL(p))
		}
		s.states[sf.Operator] = st
		s.size += int64(len(raw))
	}
	return s, nil
}

// readFile reads at most limit bytes of name (all of it when limit < 0).
func readFile(fsys connectors.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if limit >= 0 {
		r = io.LimitReader(f, limit)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", fsys.URL(name), err)
	}
	return b, nil
}

// fsWriteFile creates or replaces name with data and makes the content
// durable (fsync locally; on HDFS, Close returns once the datanodes have it).
func fsWriteFile(fsys connectors.FS, name string, data []byte) error {
	f, err := fsys.Create(name)
	if err != nil {
		return fmt.Errorf("create %s: %w", fsys.URL(name), err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", fsys.URL(name), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", fsys.URL(name), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", fsys.URL(name), err)
	}
	return nil
}

// fsWriteFileAtomic writes name via a durable temporary file and a rename, so
// readers see either the old content or the complete new one.
func fsWriteFileAtomic(fsys connectors.FS, name string, data []byte) error {
	tmp := name + ".tmp"
	if err := fsWriteFile(fsys, tmp, data); err != nil {
		_ = fsys.Remove(tmp)
		return err
	}
	if err := fsys.Rename(tmp, name); err != nil {
		_ = fsys.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", fsys.URL(tmp), fsys.URL(name), err)
	}
	return nil
}

// writeFileAtomic writes a local file via a fsynced temporary file and a
// rename, so readers see either the old content or the complete new one (for
// the job master's own files in its work directory).
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, data); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// checkpointRef names one checkpoint or savepoint directory in the store.
type checkpointRef struct {
	id        int64
	path      string // a path of the store's file system
	savepoint bool
	complete  bool
}

// checkpointStore manages a job's checkpoint directory on its storage (a
// local directory or HDFS, see checkpointStorage):
//
//	<dir>/chk-<id>/                          periodic checkpoints, newest retained kept
//	<dir>/savepoints/savepoint-<jid6>-<id>/   savepoints, never deleted automatically
//
// Checkpoint ids are shared by checkpoints and savepoints and grow
// monotonically across restarts. Checkpoints and savepoints are named by
// location (see resolve): a local path, or an hdfs:// URL on HDFS.
type checkpointStore struct {
	storage  checkpointStorage
	retained int
	log      *logrus.Entry
}

func (c *checkpointStore) dir() string { return c.storage.Dir() }

func (c *checkpointStore) checkpointPath(id int64) string {
	return c.storage.URL(c.storage.Join(c.dir(), checkpointPref+strconv.FormatInt(id, 10)))
}

func (c *checkpointStore) defaultSavepointDir() string {
	return c.storage.Join(c.dir(), savepointDir)
}

// savepointPath names a savepoint under target (the store's savepoints
// directory when empty). A target without a scheme is on the store's own
// file system; see resolve.
func (c *checkpointStore) savepointPath(target, jobID string, id int64) string {
	name := fmt.Sprintf("%s%s-%d", savepointPref, jobID[:6], id)
	switch {
	case target == "":
		return c.storage.URL(c.storage.Join(c.defaultSavepointDir(), name))
	case hasScheme(target):
		return strings.TrimRight(target, "/") + "/" + name
	}
	if _, local := c.storage.(*localStorage); local {
		if abs, err := filepath.Abs(target); err == nil {
			target = abs
		}
		return filepath.Join(target, name)
	}
	if !path.IsAbs(target) {
		return path.Join(target, name) // resolve rejects it when it is written
	}
	return c.storage.URL(path.Join(target, name))
}

// hasScheme reports whether loc is a URL (scheme://...) rather than a path.
func hasScheme(loc string) bool {
	scheme, _, ok := strings.Cut(loc, "://")
	return ok && scheme != "" && !strings.ContainsAny(scheme, `/\.`)
}

// resolve finds the file system and path of a location: a path without a
// scheme is on the store's own file system (relative paths are relative to
// the working directory locally and rejected on HDFS); file:///path is local
// and hdfs://authority/path is on HDFS. A location on another file system
// than the store's is opened for the call; release closes it.
func (c *checkpointStore) resolve(loc string) (fsys connectors.FS, p string, release func(), err error) {
	_, local := c.storage.(*localStorage)
	if !hasScheme(loc) {
		if local {
			if p, err = filepath.Abs(loc); err != nil {
				return nil, "", nil, fmt.Errorf("jobrunner: %s: %w", loc, err)
			}
			return c.storage, p, func() {}, nil
		}
		if !path.IsAbs(loc) {
			return nil, "", nil, fmt.Errorf("jobrunner: %s: a relative path cannot name a location on HDFS checkpoint storage (%s); give an absolute path or a URL",
				loc, c.storage.URL(c.dir()))
		}
		return c.storage, path.Clean(loc), func() {}, nil
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, "", nil, fmt.Errorf("jobrunner: bad location %q: %v", loc, err)
	}
	switch u.Scheme {
	case "file":
		if local && (u.Host == "" || u.Host == "localhost") && u.Path != "" {
			return c.storage, filepath.FromSlash(u.Path), func() {}, nil
		}
	case "hdfs":
		if own, err := url.Parse(c.storage.URL("/")); !local && err == nil && u.Host != "" && u.Host == own.Host {
			p := u.Path
			if p == "" {
				p = "/"
			}
			return c.storage, path.Clean(p), func() {}, nil
		}
	default:
		return nil, "", nil, fmt.Errorf("jobrunner: %s: unsupported file system %q (want a path, file:///path or hdfs://namenode/path)", loc, u.Scheme)
	}
	fsys, p, err = connectors.OpenFS(loc)
	if err != nil {
		return nil, "", nil, fmt.Errorf("jobrunner: %w", err)
	}
	return fsys, p, func() {
		if err := fsys.Close(); err != nil {
			c.log.WithError(err).WithField("path", loc).Warn("closing file system")
		}
	}, nil
}

// write writes s as a checkpoint or savepoint at location.
func (c *checkpointStore) write(location string, s *snapshot) error {
	fsys, p, release, err := c.resolve(location)
	if err != nil {
		return err
	}
	defer release()
	return writeCheckpoint(fsys, p, s)
}

// read reads and verifies the checkpoint or savepoint at location (an
// explicit restore).
func (c *checkpointStore) read(location string) (*snapshot, error) {
	fsys, p, release, err := c.resolve(location)
	if err != nil {
		return nil, err
	}
	defer release()
	return readCheckpointFS(fsys, p)
}

// list returns every checkpoint and savepoint directory of the store, newest
// (highest id) first.
func (c *checkpointStore) list() ([]checkpointRef, error) {
	var refs []checkpointRef
	st := c.storage
	scan := func(dir, prefix string, savepoint bool) error {
		entries, err := st.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read directory %s: %w", st.URL(dir), err)
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
				continue
			}
			idStr := e.Name()[len(prefix):]
			if savepoint { // savepoint-<jid6>-<id>
				_, idStr, _ = strings.Cut(idStr, "-")
			}
			id, err := strconv.ParseInt(idStr, 10, 64)
			if err != nil || id < 1 {
				continue
			}
			p := st.Join(dir, e.Name())
			// An error other than "missing" must not make a complete
			// checkpoint look incomplete: prune would delete it.
			_, statErr := st.Stat(st.Join(p, metadataFile))
			if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
				return fmt.Errorf("stat %s: %w", st.URL(st.Join(p, metadataFile)), statErr)
			}
			refs = append(refs, checkpointRef{id: id, path: p, savepoint: savepoint, complete: statErr == nil})
		}
		return nil
	}
	if err := scan(c.dir(), checkpointPref, false); err != nil {
		return nil, fmt.Errorf("jobrunner: list checkpoints: %w", err)
	}
	if err := scan(c.defaultSavepointDir(), savepointPref, true); err != nil {
		return nil, fmt.Errorf("jobrunner: list savepoints: %w", err)
	}
	slices.SortFunc(refs, func(a, b checkpointRef) int { return -cmpInt64(a.id, b.id) })
	return refs, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// maxID returns the highest checkpoint id in the store, complete or not.
func (c *checkpointStore) maxID() (int64, error) {
	refs, err := c.list()
	if err != nil || len(refs) == 0 {
		return 0, err
	}
	return refs[0].id, nil
}

// latest returns the newest complete checkpoint or savepoint that reads back
// intact. Corrupt ones are logged and skipped; nil, nil means none exists. An
// error reading the storage (an unreachable namenode, say) is returned
// rather than taken for corruption: restoring an older checkpoint than
// necessary would replay output the sinks have already committed.
func (c *checkpointStore) latest() (*snapshot, error) {
	refs, err := c.list()
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		if !r.complete {
			continue
		}
		s, err := readCheckpointFS(c.storage, r.path)
		if err != nil && !errors.Is(err, ErrCorruptCheckpoint) && !errors.Is(err, ErrNoCheckpoint) {
			return nil, err
		}
		if err != nil {
			c.log.WithError(err).WithField("path", c.storage.URL(r.path)).Warn("skipping unreadable checkpoint, trying an older one")
			continue
		}
		return s, nil
	}
	return nil, nil
}

// prune deletes periodic checkpoints beyond the newest retained complete
// ones, and incomplete checkpoint directories older than the newest complete
// one (left behind by a crash mid-checkpoint). It returns the ids it
// deleted.
func (c *checkpointStore) prune() ([]int64, error) {
	refs, err := c.list()
	if err != nil {
		return nil, err
	}
	var deleted []int64
	var errs []error
	complete := 0
	newestComplete := int64(0)
	for _, r := range refs {
		if r.savepoint {
			continue
		}
		del := false
		if r.complete {
			complete++
			if newestComplete == 0 {
				newestComplete = r.id
			}
			del = complete > c.retained
		} else {
			del = newestComplete != 0 && r.id < newestComplete
		}
		if !del {
			continue
		}
		// _metadata first: a crash mid-delete must leave an incomplete
		// checkpoint, not a complete-looking one with missing state.
		meta := c.storage.Join(r.path, metadataFile)
		if err := c.storage.Remove(meta); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("jobrunner: prune: remove %s: %w", c.storage.URL(meta), err))
			continue
		}
		if err := c.storage.RemoveAll(r.path); err != nil {
			errs = append(errs, fmt.Errorf("jobrunner: prune: remove %s: %w", c.storage.URL(r.path), err))
			continue
		}
		deleted = append(deleted, r.id)
	}
	return deleted, errors.Join(errs...)
}
