// Package local deploys each job as a `tidewatch am` child process on this
// machine, with its own working directory and log file.
//
// Job processes run in their own session, so they outlive the daemon: a daemon
// that restarts finds them again from their handles (pid and deployment
// directory) and adopts them instead of starting second copies.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner"
	"github.com/tidewatch/tidewatch/supportlayer/deploy"
)

// Name is the deployer kind recorded in handles.
const Name = "local"

var _ deploy.Deployer = (*Deployer)(nil)

// Deployer starts job masters as local processes.
type Deployer struct {
	cfg    Config
	log    *logrus.Entry
	onExit func(jobID string)

	mu       sync.Mutex
	children map[int]*child // processes this daemon started and reaps
}

type child struct {
	jobID  string
	done   chan struct{}
	state  *os.ProcessState
	waitEr error
}

// New returns a deployer. onExit, if not nil, is called (from another goroutine)
// when a process this deployer started exits, so the watcher can react at once.
func New(cfg Config, log *logrus.Entry, onExit func(jobID string)) (*Deployer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Deployer{cfg: cfg, log: log.WithField("component", "local-deployer"), onExit: onExit, children: map[int]*child{}}, nil
}

// Name implements deploy.Deployer.
func (d *Deployer) Name() string { return Name }

// JobDir is the working directory of a job's processes.
func (d *Deployer) JobDir(jobID string) string { return filepath.Join(d.cfg.JobsDir, jobID) }

// Deploy implements deploy.Deployer.
func (d *Deployer) Deploy(ctx context.Context, req deploy.Request) (deploy.Handle, error) {
	jobDir := d.JobDir(req.JobID)
	depDir := filepath.Join(jobDir, "deployments", strconv.Itoa(req.Attempt))
	if err := os.MkdirAll(depDir, 0o750); err != nil {
		return deploy.Handle{}, fmt.Errorf("local: create deployment dir: %w", err)
	}
	specPath := filepath.Join(jobDir, "job.yaml")
	if err := writeFileAtomic(specPath, req.Spec, 0o640); err != nil {
		return deploy.Handle{}, fmt.Errorf("local: write spec: %w", err)
	}
	logPath := filepath.Join(depDir, "am.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return deploy.Handle{}, fmt.Errorf("local: open log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor

	cmd := exec.Command(d.cfg.Binary, "am",
		"--spec", specPath,
		"--job-id", req.JobID,
		"--attempt", strconv.Itoa(req.Attempt),
		"--work-dir", depDir,
		"--checkpoint-dir", req.CheckpointDir,
		"--listen", net.JoinHostPort(d.cfg.ListenHost, "0"),
		"--restore", req.Restore,
		"--log-format", d.cfg.LogFormat,
	)
	cmd.Dir = jobDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return deploy.Handle{}, fmt.Errorf("local: start %s: %w", d.cfg.Binary, err)
	}
	c := &child{jobID: req.JobID, done: make(chan struct{})}
	d.mu.Lock()
	d.children[cmd.Process.Pid] = c
	d.mu.Unlock()
	go d.reap(cmd, c)

	d.log.WithFields(logrus.Fields{"job": req.JobID, "attempt": req.Attempt, "pid": cmd.Process.Pid}).Info("started job master")
	return deploy.Handle{Deployer: Name, PID: cmd.Process.Pid, WorkDir: depDir, LogPath: logPath}, nil
}

func (d *Deployer) reap(cmd *exec.Cmd, c *child) {
	err := cmd.Wait()
	d.mu.Lock()
	c.state, c.waitEr = cmd.ProcessState, err
	d.mu.Unlock()
	close(c.done)
	if d.onExit != nil {
		d.onExit(c.jobID)
	}
}

// Observe implements deploy.Deployer.
func (d *Deployer) Observe(ctx context.Context, h deploy.Handle) (deploy.Status, error) {
	var st deploy.Status
	if h.WorkDir == "" {
		return st, deploy.ErrUnknownHandle
	}
	pid := h.PID
	addr, addrErr := jobrunner.ReadMasterInfo(h.WorkDir)
	if pid == 0 && addrErr == nil {
		// The daemon stopped between starting the process and storing its pid.
		pid = addr.PID
	}

	d.mu.Lock()
	c, mine := d.children[pid]
	var exited bool
	var ps *os.ProcessState
	if mine {
		select {
		case <-c.done:
			exited, ps = true, c.state
		default:
		}
	}
	d.mu.Unlock()

	switch {
	case pid == 0:
		st.Alive = false
	case mine:
		st.Alive = !exited
	default:
		st.Alive = processMatches(pid, h.WorkDir)
	}
	if st.Alive && addrErr == nil && addr.PID == pid {
		st.Endpoint = addr.URL
	}
	if st.Alive {
		return st, nil
	}

	res, err := jobrunner.ReadResult(h.WorkDir)
	switch {
	case err == nil:
		st.FinalState, st.Savepoint = string(res.State), res.Savepoint
		st.Diagnostics = res.Error
	case errors.Is(err, os.ErrNotExist):
		st.Diagnostics = "job master exited without a result"
	default:
		st.Diagnostics = "job master result unreadable: " + err.Error()
	}
	if ps != nil {
		st.Diagnostics = joinDiag(st.Diagnostics, describeExit(ps))
	} else if pid == 0 {
		st.Diagnostics = joinDiag(st.Diagnostics, "no process was recorded")
	} else if st.FinalState == "" {
		st.Diagnostics = joinDiag(st.Diagnostics, fmt.Sprintf("process %d is gone", pid))
	}
	return st, nil
}

// Kill implements deploy.Deployer. It kills only the process the handle names,
// checked against its deployment directory so a reused pid is never signalled.
func (d *Deployer) Kill(ctx context.Context, h deploy.Handle) error {
	return d.signal(h, syscall.SIGKILL)
}

func (d *Deployer) signal(h deploy.Handle, sig syscall.Signal) error {
	pid := h.PID
	if pid == 0 {
		if addr, err := jobrunner.ReadMasterInfo(h.WorkDir); err == nil {
			pid = addr.PID
		}
	}
	if pid == 0 {
		return nil
	}
	d.mu.Lock()
	c, mine := d.children[pid]
	d.mu.Unlock()
	if mine {
		select {
		case <-c.done:
			return nil
		default:
		}
	} else if !processMatches(pid, h.WorkDir) {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("local: signal %d: %w", pid, err)
	}
	return nil
}

// Logs implements deploy.Deployer.
func (d *Deployer) Logs(ctx context.Context, h deploy.Handle, tail int64) (io.ReadCloser, error) {
	if h.LogPath == "" {
		return nil, deploy.ErrUnknownHandle
	}
	f, err := os.Open(h.LogPath)
	if err != nil {
		return nil, fmt.Errorf("local: open log: %w", err)
	}
	if tail > 0 {
		if fi, err := f.Stat(); err == nil && fi.Size() > tail {
			if _, err := f.Seek(fi.Size()-tail, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("local: seek log: %w", err)
			}
		}
	}
	return f, nil
}

// Close forgets the children; their processes keep running and are adopted by
// the next daemon.
func (d *Deployer) Close() error { return nil }

// processMatches reports whether pid is alive and is the job master started for
// workDir: its command line names the deployment directory.
func processMatches(pid int, workDir string) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		// No procfs: trust the signal probe.
		return errors.Is(err, os.ErrNotExist) && !procfsPresent()
	}
	if stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat")); err == nil && isZombie(stat) {
		return false
	}
	return bytes.Contains(cmdline, append([]byte(workDir), 0))
}

func procfsPresent() bool {
	_, err := os.Stat("/proc/self/cmdline")
	return err == nil
}

// isZombie reads the state field of /proc/<pid>/stat, which follows the
// parenthesised command name.
func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

func describeExit(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return "exit code " + strconv.Itoa(ps.ExitCode())
}

func joinDiag(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
