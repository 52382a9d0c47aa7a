package jobrunner

import (
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner/connectors"
)

// checkpointStorage is the file system that holds a job's checkpoint
// directory, as the checkpoint store uses it: a local directory
// (localStorage) or a directory on HDFS (hdfsStorage). The file operations
// are connectors.FS's, with its durability promises (Sync, Rename and
// MkdirAll are durable when they return); paths are paths of that file
// system, and URL turns one into the location users see and pass back
// (MasterOptions.Restore, savepoint targets).
type checkpointStorage interface {
	connectors.FS
	// Dir is the checkpoint directory, an absolute path of the file system.
	Dir() string
	// Lock makes this job master the only one that writes under Dir, until
	// unlock is called; it creates Dir if need be. It fails with
	// ErrAlreadyRunning if another job master holds the directory.
	Lock(ctx context.Context, owner lockOwner) (unlock func(), err error)
}

var (
	_ checkpointStorage = (*localStorage)(nil)
	_ checkpointStorage = (*hdfsStorage)(nil)
)

// openCheckpointStorage opens the checkpoint directory at location: a local
// path (made absolute), file:///path, or an HDFS URL (hdfs://namenode:port/path,
// hdfs://nameservice/path, hdfs:///path; see connectors.OpenFS for how
// HADOOP_CONF_DIR and HADOOP_USER_NAME are used). log receives the lock's
// warnings (nil: none).
func openCheckpointStorage(location string, log *logrus.Entry) (checkpointStorage, error) {
	if log == nil {
		log = discardLog()
	}
	if (strings.HasPrefix(location, "hdfs:") || strings.HasPrefix(location, "file:")) && !hasScheme(location) {
		// What filepath.Join or filepath.Clean make of a URL.
		return nil, fmt.Errorf("jobrunner: checkpoint directory %s: not a URL (a path function collapsed its \"//\"?); want hdfs://namenode:port/path or file:///path", location)
	}
	if hasScheme(location) && !strings.HasPrefix(location, "hdfs://") && !strings.HasPrefix(location, "file://") {
		return nil, fmt.Errorf("jobrunner: checkpoint directory %s: unsupported file system (want a path, file:///path or hdfs://namenode:port/path)", location)
	}
	fsys, dir, err := connectors.OpenFS(location)
	if err != nil {
		return nil, fmt.Errorf("jobrunner: checkpoint directory %s: %w", location, err)
	}
	if strings.HasPrefix(location, "hdfs://") {
		return &hdfsStorage{FS: fsys, dir: path.Clean(dir), log: log, timing: defaultLeaseTiming, sleep: sleepCtx}, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		fsys.Close()
		return nil, fmt.Errorf("jobrunner: checkpoint directory %s: %w", location, err)
	}
	return &localStorage{FS: fsys, dir: abs}, nil
}

func discardLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// localStorage is a checkpoint directory on the local file system. Every
// file is fsynced, and so is every directory whose entries change.
type localStorage struct {
	connectors.FS
	dir string
}

func (l *localStorage) Dir() string { return l.dir }

// Lock takes an flock on <dir>/.lock (lockDir): the kernel releases it when
// the process dies, so a crashed job master never leaves it behind.
func (l *localStorage) Lock(_ context.Context, _ lockOwner) (func(), error) {
	if err := l.MkdirAll(l.dir); err != nil {
		return nil, fmt.Errorf("jobrunner: create checkpoint directory: %w", err)
	}
	return lockDir(l.dir)
}

// hdfsStorage is a checkpoint directory on HDFS. A file is durable once Close
// returns (every datanode of its pipeline acknowledged every packet; this is
// what HDFS offers a client without hsync, and what Flink's HDFS checkpoint
// streams rely on as well), and the namenode logs every rename, create and
// delete before it answers.
//
// Its lock is a lease on <dir>/.lock (see leaseLock). Once the lease is lost,
// every write through the storage fails with ErrCheckpointLockLost.
type hdfsStorage struct {
	connectors.FS
	dir    string
	log    *logrus.Entry
	timing leaseTiming
	sleep  func(context.Context, time.Duration) error // waits for a lease; tests replace it

	mu    sync.Mutex
	lease *leaseLock
	lost  error
}

func (h *hdfsStorage) Dir() string { return h.dir }

// Lock takes the lease on <dir>/.lock; see leaseLock.
func (h *hdfsStorage) Lock(ctx context.Context, owner lockOwner) (func(), error) {
	if err := h.FS.MkdirAll(h.dir); err != nil {
		return nil, fmt.Errorf("jobrunner: create checkpoint directory %s: %w", h.URL(h.dir), err)
	}
	l, err := acquireLease(ctx, h.FS, path.Join(h.dir, lockFile), owner, h.timing, h.sleep, h.log, h.setLost)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.lease, h.lost = l, nil
	h.mu.Unlock()
	return l.release, nil
}

func (h *hdfsStorage) setLost(err error) {
	h.mu.Lock()
	h.lost = err
	h.mu.Unlock()
}

// fenced returns the error that stops writes once the lock is lost.
func (h *hdfsStorage) fenced() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

func (h *hdfsStorage) Create(name string) (connectors.WriteFile, error) {
	if err := h.fenced(); err != nil {
		return nil, err
	}
	return h.FS.Create(name)
}

func (h *hdfsStorage) CreateExclusive(name string) (connectors.WriteFile, error) {
	if err := h.fenced(); err != nil {
		return nil, err
	}
	return h.FS.CreateExclusive(name)
}

func (h *hdfsStorage) Rename(oldname, newname string) error {
	if err := h.fenced(); err != nil {
		return err
	}
	return h.FS.Rename(oldname, newname)
}

func (h *hdfsStorage) Remove(name string) error {
	if err := h.fenced(); err != nil {
		return err
	}
	return h.FS.Remove(name)
}

func (h *hdfsStorage) RemoveAll(name string) error {
	if err := h.fenced(); err != nil {
		return err
	}
	return h.FS.RemoveAll(name)
}

func (h *hdfsStorage) MkdirAll(name string) error {
	if err := h.fenced(); err != nil {
		return err
	}
	return h.FS.MkdirAll(name)
}
