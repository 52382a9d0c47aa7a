package jobrunner

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
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

// writeCheckpoint writes s into dir, which must not hold a complete
// checkpoint already. Files are fsynced before _metadata is renamed into
// place, and the directory after.
func writeCheckpoint(dir string, s *snapshot) error {
	if _, err := os.Stat(filepath.Join(dir, metadataFile)); err == nil {
		return fmt.Errorf("jobrunner: checkpoint directory %s already holds a checkpoint", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("jobrunner: write checkpoint: %w", err)
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
		if err := writeFileSync(filepath.Join(dir, name), data); err != nil {
			return fmt.Errorf("jobrunner: write checkpoint: %w", err)
		}
		size += int64(len(data))
		s.meta.StateFiles = append(s.meta.StateFiles, stateFile{
			Operator: op, File: name, Size: int64(len(data)), CRC32C: crc32.Checksum(payload, castagnoli),
		})
	}
	payload, err := json.Marshal(s.meta)
	if err != nil {
		return fmt.Errorf("jobrunner: write checkpoint: %w", err)
	}
	data := encodeEnvelope(kindMetadata, payload)
	if err := writeFileAtomic(filepath.Join(dir, metadataFile), data); err != nil {
		return fmt.Errorf("jobrunner: write checkpoint: %w", err)
	}
	s.path = dir
	s.size = size + int64(len(data))
	return syncDir(filepath.Dir(dir))
}

// readCheckpoint reads and verifies the checkpoint in dir.
func readCheckpoint(dir string) (*snapshot, error) {
	raw, err := os.ReadFile(filepath.Join(dir, metadataFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s", ErrNoCheckpoint, dir, metadataFile)
	}
	if err != nil {
		return nil, fmt.Errorf("jobrunner: read checkpoint %s: %w", dir, err)
	}
	payload, err := decodeEnvelope(raw, kindMetadata)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, metadataFile), err)
	}
	s := &snapshot{states: map[string][]byte{}, path: dir, size: int64(len(raw))}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s.meta); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptCheckpoint, filepath.Join(dir, metadataFile), err)
	}
	if s.meta.CheckpointID < 1 {
		return nil, fmt.Errorf("%w: %s: checkpoint id %d", ErrCorruptCheckpoint, dir, s.meta.CheckpointID)
	}
	for _, sf := range s.meta.StateFiles {
		if sf.File != filepath.Base(sf.File) || sf.File == metadataFile || !strings.HasSuffix(sf.File, ".state") {
			return nil, fmt.Errorf("%w: %s: bad state file name %q", ErrCorruptCheckpoint, dir, sf.File)
		}
		p := filepath.Join(dir, sf.File)
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorruptCheckpoint, p, err)
		}
		if int64(len(raw)) != sf.Size {
			return nil, fmt.Errorf("%w: %s: %d bytes, metadata says %d", ErrCorruptCheckpoint, p, len(raw), sf.Size)
		}
		st, err := decodeEnvelope(raw, kindState)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if crc32.Checksum(st, castagnoli) != sf.CRC32C {
			return nil, fmt.Errorf("%w: %s: does not belong to this checkpoint", ErrCorruptCheckpoint, p)
		}
		s.states[sf.Operator] = st
		s.size += int64(len(raw))
	}
	return s, nil
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

// writeFileAtomic writes path via a fsynced temporary file and a rename, so
// readers see either the old content or the complete new one.
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
	path      string
	savepoint bool
	complete  bool
}

// checkpointStore manages a job's checkpoint directory:
//
//	<dir>/chk-<id>/                          periodic checkpoints, newest retained kept
//	<dir>/savepoints/savepoint-<jid6>-<id>/   savepoints, never deleted automatically
//
// Checkpoint ids are shared by checkpoints and savepoints and grow
// monotonically across restarts.
type checkpointStore struct {
	dir      string
	retained int
	log      *logrus.Entry
}

func (c *checkpointStore) checkpointPath(id int64) string {
	return filepath.Join(c.dir, checkpointPref+strconv.FormatInt(id, 10))
}

func (c *checkpointStore) defaultSavepointDir() string { return filepath.Join(c.dir, savepointDir) }

// savepointPath names a savepoint under target (the default when empty).
func (c *checkpointStore) savepointPath(target, jobID string, id int64) string {
	if target == "" {
		target = c.defaultSavepointDir()
	} else if abs, err := filepath.Abs(target); err == nil {
		target = abs
	}
	return filepath.Join(target, fmt.Sprintf("%s%s-%d", savepointPref, jobID[:6], id))
}

// list returns every checkpoint and savepoint directory of the store, newest
// (highest id) first.
func (c *checkpointStore) list() ([]checkpointRef, error) {
	var refs []checkpointRef
	scan := func(dir, prefix string, savepoint bool) error {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
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
			p := filepath.Join(dir, e.Name())
			_, statErr := os.Stat(filepath.Join(p, metadataFile))
			refs = append(refs, checkpointRef{id: id, path: p, savepoint: savepoint, complete: statErr == nil})
		}
		return nil
	}
	if err := scan(c.dir, checkpointPref, false); err != nil {
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
// intact. Corrupt ones are logged and skipped; nil, nil means none exists.
func (c *checkpointStore) latest() (*snapshot, error) {
	refs, err := c.list()
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		if !r.complete {
			continue
		}
		s, err := readCheckpoint(r.path)
		if err != nil {
			c.log.WithError(err).WithField("path", r.path).Warn("skipping unreadable checkpoint, trying an older one")
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
		if err := os.Remove(filepath.Join(r.path, metadataFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(r.path); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, r.id)
	}
	return deleted, errors.Join(errs...)
}
