package jobrunner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner/procstat"
)

// ErrAlreadyRunning is returned (wrapped) by RunMaster when another job
// master holds the lock on the checkpoint directory.
var ErrAlreadyRunning = errors.New("jobrunner: job is already running")

// Files a job master writes into its WorkDir.
const (
	JobMasterFile = "jobmaster.json"
	ResultFile    = "result.json"
	lockFile      = ".lock"
)

// Restore modes of MasterOptions.Restore; any other value is a path.
const (
	RestoreLatest = "latest"
	RestoreNone   = "none"
)

// JobStatus is a job state, spelled as Flink's JobStatus.
type JobStatus string

// Job states. The runtime uses INITIALIZING, RUNNING, CANCELLING and the
// three globally terminal states; the others exist for Flink compatibility of
// the REST API (every state is a key of "timestamps").
const (
	StatusInitializing JobStatus = "INITIALIZING"
	StatusCreated      JobStatus = "CREATED"
	StatusRunning      JobStatus = "RUNNING"
	StatusFailing      JobStatus = "FAILING"
	StatusFailed       JobStatus = "FAILED"
	StatusCancelling   JobStatus = "CANCELLING"
	StatusCanceled     JobStatus = "CANCELED"
	StatusFinished     JobStatus = "FINISHED"
	StatusRestarting   JobStatus = "RESTARTING"
	StatusSuspended    JobStatus = "SUSPENDED"
	StatusReconciling  JobStatus = "RECONCILING"
)

var allJobStatuses = []JobStatus{
	StatusInitializing, StatusCreated, StatusRunning, StatusFailing, StatusFailed, StatusCancelling,
	StatusCanceled, StatusFinished, StatusRestarting, StatusSuspended, StatusReconciling,
}

// Terminal reports whether s is globally terminal.
func (s JobStatus) Terminal() bool {
	return s == StatusFailed || s == StatusCanceled || s == StatusFinished
}

// MasterInfo is the content of <WorkDir>/jobmaster.json, written once the
// REST listener is bound.
type MasterInfo struct {
	PID       int    `json:"pid"`
	URL       string `json:"url"`
	JobID     string `json:"jobId"`
	StartTime int64  `json:"startTime"` // epoch ms
}

// Result is the content of <WorkDir>/result.json, written when the job
// reaches a terminal state.
type Result struct {
	State     JobStatus `json:"state"`
	EndTime   int64     `json:"endTime"`   // epoch ms
	Savepoint string    `json:"savepoint"` // final savepoint, or ""
	Error     string    `json:"error"`     // failure message, or ""
}

// MasterOptions configure RunMaster. Zero values of optional fields are
// replaced by the defaults of DefaultMasterOptions.
type MasterOptions struct {
	SpecFile      string // job spec (YAML or JSON); required
	JobID         string // 32 lower-case hex characters; generated if empty
	WorkDir       string // where jobmaster.json and result.json go; default "."
	CheckpointDir string // default <WorkDir>/checkpoints
	Listen        string // REST listen address; default 127.0.0.1:0
	// Restore is "latest" (newest complete checkpoint or savepoint in
	// CheckpointDir, if any), "none", or the path of a checkpoint or
	// savepoint directory.
	Restore string
	// Attempt is the deployment attempt, 1 for the first; the job reports
	// Attempt-1 restarts.
	Attempt int
	// PreferNewerCheckpoint restores the newest complete checkpoint when it
	// is newer than what Restore names (a savepoint, or none): for a process
	// restarted with the same command line, as YARN restarts an
	// ApplicationMaster, whose checkpoints since the start are newer state.
	PreferNewerCheckpoint bool
	// Local, if not nil, is the keyed subtasks this process runs of a job
	// spread over containers (see Layout and InContainer). Such a process
	// takes no savepoints: its share alone would not restore the job.
	Local []bool
	// Workers, if set, describes the job's worker containers for
	// GET /jobs/{id}/workers, and RegisterWorker takes a worker's
	// PUT /jobs/{id}/workers/{k} (the YARN AM sets both).
	Workers        func() any
	RegisterWorker func(k int, containerID, url string) error
	// SetMemoryLimit makes the job master set the Go runtime's soft memory
	// limit (GOMEMLIMIT) to 90% of the job's memory limit, unless GOMEMLIMIT
	// is set in the environment. Only for a process of its own.
	SetMemoryLimit bool
	Log            *logrus.Entry        // default: a new logger writing text to stderr
	Registry       *prometheus.Registry // default: a new registry
	// Started, if set, is called once the REST endpoint is serving and
	// jobmaster.json is written. Finished, if set, is called with the
	// result once the job has ended and result.json is written, while the
	// REST endpoint still serves (a YARN ApplicationMaster unregisters
	// here).
	Started  func(info MasterInfo)
	Finished func(res Result)
}

// DefaultMasterOptions returns the defaults.
func DefaultMasterOptions() MasterOptions {
	return MasterOptions{
		WorkDir: ".",
		Listen:  "127.0.0.1:0",
		Restore: RestoreLatest,
	}
}

var jobIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (o MasterOptions) withDefaults() MasterOptions {
	d := DefaultMasterOptions()
	if o.WorkDir == "" {
		o.WorkDir = d.WorkDir
	}
	if o.CheckpointDir == "" {
		o.CheckpointDir = filepath.Join(o.WorkDir, "checkpoints")
	}
	if o.Listen == "" {
		o.Listen = d.Listen
	}
	if o.Restore == "" {
		o.Restore = d.Restore
	}
	return o
}

// Validate reports the first invalid field. Empty optional fields are valid
// (they take their defaults).
func (o MasterOptions) Validate() error {
	if o.SpecFile == "" {
		return errors.New("jobrunner: MasterOptions.SpecFile: required")
	}
	if o.JobID != "" && !jobIDRE.MatchString(o.JobID) {
		return fmt.Errorf("jobrunner: MasterOptions.JobID: must be 32 lower-case hex characters, got %q", o.JobID)
	}
	if o.Attempt < 0 {
		return fmt.Errorf("jobrunner: MasterOptions.Attempt: must be >= 1, got %d", o.Attempt)
	}
	if o.Listen != "" {
		if _, _, err := net.SplitHostPort(o.Listen); err != nil {
			return fmt.Errorf("jobrunner: MasterOptions.Listen: %w", err)
		}
	}
	return nil
}

// NewJobID returns a random job id in Flink's format.
func NewJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// RunMaster runs one job to a terminal state: it locks the checkpoint
// directory, parses the spec, restores state, serves the REST API, runs the
// pipeline and records the outcome in result.json. It returns nil when the
// job ends FINISHED or CANCELED. Cancelling ctx cancels the job (after a
// best-effort final checkpoint).
func RunMaster(ctx context.Context, opts MasterOptions) (err error) {
	if err := opts.Validate(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	if opts.JobID == "" {
		opts.JobID = NewJobID()
	}
	if opts.Log == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		opts.Log = logrus.NewEntry(l)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	log := opts.Log.WithFields(logrus.Fields{"component": "jobmaster", "jobId": opts.JobID})
	startTime := time.Now()

	// Absolute (or a full hdfs:// URL), so checkpoint and savepoint paths in
	// the REST API and in result.json mean the same thing to every reader.
	ckStorage, err := openCheckpointStorage(opts.CheckpointDir, log.WithField("component", "checkpoints"))
	if err != nil {
		return err
	}
	defer ckStorage.Close()
	opts.CheckpointDir = ckStorage.URL(ckStorage.Dir())
	for _, dir := range []string{opts.WorkDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("jobrunner: %w", err)
		}
	}
	// Creates the checkpoint directory; local: flock, HDFS: a lease on
	// <dir>/.lock (see checkpoint_lock.go).
	unlock, err := ckStorage.Lock(ctx, newLockOwner(opts.JobID, max(1, opts.Attempt)))
	if err != nil {
		return err
	}
	defer unlock()

	// From here on this process owns the job's directories: every failure
	// is recorded in result.json.
	for _, f := range []string{JobMasterFile, ResultFile} {
		if err := os.Remove(filepath.Join(opts.WorkDir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("jobrunner: remove stale %s: %w", f, err)
		}
	}
	fail := func(err error) error {
		log.WithError(err).Error("job failed before it started")
		if werr := writeResult(opts.WorkDir, Result{State: StatusFailed, EndTime: time.Now().UnixMilli(), Error: err.Error()}); werr != nil {
			log.WithError(werr).Error("cannot write " + ResultFile)
		}
		return err
	}

	data, err := os.ReadFile(opts.SpecFile)
	if err != nil {
		return fail(fmt.Errorf("jobrunner: read spec: %w", err))
	}
	spec, err := ParseSpec(data, filepath.Base(opts.SpecFile))
	if err != nil {
		return fail(err)
	}
	log = log.WithField("job", spec.Name)

	j := newJob(opts.JobID, spec, log, startTime)
	j.attempt = max(1, opts.Attempt)
	j.workers, j.registerWorker = opts.Workers, opts.RegisterWorker
	limit := memoryLimit(spec)
	j.proc = procstat.NewSampler(limit)
	if opts.SetMemoryLimit && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(limit / 10 * 9))
		log.WithField("goMemLimit", ByteSize(limit/10*9).String()).Debug("set the Go soft memory limit")
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	var observe func(context.Context, procstat.Sample)
	if spec.AutoMigrate != nil {
		observe = (&memoryPolicy{j: j, spec: *spec.AutoMigrate}).observe
	}
	go sampleProcess(sampleCtx, j.proc, observe)
	j.metrics, err = newJobMetrics(opts.Registry, j, time.Now)
	if err != nil {
		return fail(fmt.Errorf("jobrunner: register metrics: %w", err))
	}
	defer j.metrics.unregister()

	store := &checkpointStore{storage: ckStorage, retained: spec.Checkpoint.Retained, log: log.WithField("component", "checkpoints")}
	j.store = store
	b, err := buildPlan(spec, opts.CheckpointDir, opts.Local, log)
	if err != nil {
		var se *SpecError
		if errors.As(err, &se) {
			se.File = filepath.Base(opts.SpecFile)
		}
		return fail(err)
	}
	if b.ingest != nil {
		j.ingest = b.ingest
		defer b.ingest.Close()
	}
	// Scratch space for the Pebble backend, deleted on the way out: keyed
	// state is rebuilt from checkpoints.
	b.stateDir = filepath.Join(opts.WorkDir, ".tidewatch-state-"+opts.JobID[:6])
	defer func() {
		if err := b.closeState(); err != nil {
			log.WithError(err).Warn("closing the Pebble state store")
		}
	}()
	p := newPipeline(j, spec, store, b)
	p.preferNewer = opts.PreferNewerCheckpoint
	p.partial = opts.Local != nil
	if err := p.restoreAndOpen(opts.Restore, startTime); err != nil {
		return fail(err)
	}

	// Cancellation through REST must work from the first request on.
	jobCtx, cancelJob := context.WithCancel(ctx)
	defer cancelJob()
	j.setCancel(cancelJob)

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fail(fmt.Errorf("jobrunner: listen: %w", err))
	}
	j.url = listenURL(ln.Addr())
	httpErrors := log.WithField("component", "rest").WriterLevel(logrus.WarnLevel)
	defer httpErrors.Close()
	srv := &http.Server{
		Handler:           j.handler(opts.Registry),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          stdlog.New(httpErrors, "", 0),
	}
	var serveWG sync.WaitGroup
	serveWG.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("REST server stopped")
		}
	})
	stopServer := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		serveWG.Wait()
	}

	info := MasterInfo{PID: os.Getpid(), URL: j.url, JobID: opts.JobID, StartTime: startTime.UnixMilli()}
	if err := writeJSONAtomic(filepath.Join(opts.WorkDir, JobMasterFile), info); err != nil {
		stopServer()
		return fail(fmt.Errorf("jobrunner: write %s: %w", JobMasterFile, err))
	}
	log.WithField("url", j.url).Info("job master serving REST API")
	if opts.Started != nil {
		opts.Started(info)
	}

	j.setStatus(StatusRunning)
	out := p.run(jobCtx)
	j.finish(out)

	res := Result{State: out.status, EndTime: time.Now().UnixMilli(), Savepoint: out.savepoint}
	if out.err != nil {
		res.Error = out.err.Error()
	}
	werr := writeResult(opts.WorkDir, res)
	if opts.Finished != nil {
		opts.Finished(res)
	}
	stopServer()
	entry := log.WithField("state", out.status)
	if out.savepoint != "" {
		entry = entry.WithField("savepoint", out.savepoint)
	}
	if out.err != nil {
		entry.WithError(out.err).Error("job ended")
	} else {
		entry.Info("job ended")
	}
	if werr != nil {
		werr = fmt.Errorf("jobrunner: write %s: %w", ResultFile, werr)
	}
	if out.status == StatusFailed {
		return errors.Join(out.err, werr)
	}
	return werr
}

// lockDir takes an exclusive, non-blocking flock on dir/.lock. The lock dies
// with the process, so a crashed job master never leaves it behind.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jobrunner: open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by another job master", ErrAlreadyRunning, path)
		}
		return nil, fmt.Errorf("jobrunner: lock %s: %w", path, err)
	}
	// Record the holder for humans; the flock is what counts.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// listenURL turns a bound address into the URL clients on this host use.
func listenURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	host := "127.0.0.1"
	if !tcp.IP.IsUnspecified() && tcp.IP != nil {
		host = tcp.IP.String()
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

func writeResult(workDir string, r Result) error {
	return writeJSONAtomic(filepath.Join(workDir, ResultFile), r)
}

// ReadMasterInfo reads <workDir>/jobmaster.json.
func ReadMasterInfo(workDir string) (MasterInfo, error) {
	var info MasterInfo
	err := readJSONFile(filepath.Join(workDir, JobMasterFile), &info)
	return info, err
}

// ReadResult reads <workDir>/result.json.
func ReadResult(workDir string) (Result, error) {
	var r Result
	err := readJSONFile(filepath.Join(workDir, ResultFile), &r)
	return r, err
}

func readJSONFile(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("jobrunner: %s: %w", path, err)
	}
	return nil
}

// memoryLimit is the job's memory limit: resources.memory, or the cgroup's
// limit if that is smaller (a container may be given less than asked).
func memoryLimit(spec *Spec) uint64 {
	limit := uint64(spec.Resources.Memory)
	if cg, ok := procstat.CgroupMemoryLimit(); ok && cg < limit {
		limit = cg
	}
	return limit
}

// sampleInterval is how often the job master samples its process.
const sampleInterval = time.Second

// sampleProcess samples the process every sampleInterval and hands each
// sample to observe, if not nil.
func sampleProcess(ctx context.Context, ps *procstat.Sampler, observe func(context.Context, procstat.Sample)) {
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s := ps.Sample(now)
			if observe != nil {
				observe(ctx, s)
			}
		}
	}
}
