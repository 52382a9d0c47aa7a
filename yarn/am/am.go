// Package am is the ApplicationMaster side of a Tidewatch job on YARN: the
// job master (`tidewatch am`), started by a NodeManager in the AM container,
// registers with the ResourceManager's scheduler as soon as its REST endpoint
// serves (the tracking URL, so the RM's web proxy at /proxy/<app-id>/ reaches
// it), sends an allocate heartbeat about once a second with its progress, and
// unregisters when the job ends with the final status and a result line the
// daemon's YARN deployer reads (ResultPrefix).
//
// A job that fails unregisters FAILED: the daemon's restart policy decides
// what happens next, as with local processes. A job master that dies without
// unregistering (SIGKILL, OOM, a lost node) is restarted by YARN as the next
// attempt, which restores the newest complete checkpoint.
//
// A job whose keyed parallelism exceeds the AM container's vcores also runs
// in worker containers the session asks for, starts and replaces
// (WorkerOptions; see docs/YARN.md).
package am

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// Environment of a YARN container (HADOOP_PROTOCOLS.md §2).
const (
	EnvContainerID = "CONTAINER_ID"
	EnvNMHost      = "NM_HOST"
	EnvTokenFile   = "HADOOP_TOKEN_FILE_LOCATION"
)

// ResultPrefix starts the line of the unregister diagnostics that carries
// the job master's result as JSON (Result).
const ResultPrefix = "tidewatch-result "

// Result is how the job ended, as the job master wrote it to result.json.
type Result struct {
	State     string `json:"state"` // FINISHED, CANCELED or FAILED
	Savepoint string `json:"savepoint,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Diagnostics formats r for the unregister call: a readable first line and
// the result line.
func (r Result) Diagnostics() string {
	b, _ := json.Marshal(r)
	head := "job " + strings.ToLower(r.State)
	if r.Error != "" {
		head += ": " + r.Error
	}
	return head + "\n" + ResultPrefix + string(b)
}

// ParseResult finds the result line in diagnostics; the RM may have put
// other lines around it (an earlier attempt's failure). A line that does not
// decode, or names no end state, is not a result.
func ParseResult(diagnostics string) (Result, bool) {
	for line := range strings.SplitSeq(diagnostics, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), ResultPrefix)
		if !ok {
			continue
		}
		var r Result
		if json.Unmarshal([]byte(rest), &r) != nil {
			continue
		}
		switch r.State {
		case "FINISHED", "CANCELED", "FAILED":
			return r, true
		}
	}
	return Result{}, false
}

// FinalStatus maps a job end state to the application's final status.
func FinalStatus(state string) amrm.FinalStatus {
	switch state {
	case "FINISHED":
		return amrm.Succeeded
	case "CANCELED":
		return amrm.Killed
	}
	return amrm.Failed
}

// InContainer reports whether the process runs in a YARN container.
func InContainer(getenv func(string) string) bool {
	return getenv(EnvContainerID) != "" && getenv(EnvTokenFile) != ""
}

// Options configure Start. Zero values take defaults.
type Options struct {
	Getenv   func(string) string          // default os.Getenv
	ReadFile func(string) ([]byte, error) // default os.ReadFile
	// Heartbeat is the allocate interval (default 1s).
	Heartbeat time.Duration
	// Progress reports the job's progress, 0..1, for the heartbeat.
	Progress func() float32
	// RPCPort is registered as the AM's RPC port: the job master's REST
	// port, so that the application report's amRPCAddress names the job
	// master directly (the RM's web proxy forwards only GET and PUT, and
	// stop, savepoint and migration requests are POSTs). 0 registers -1.
	RPCPort int32
	Log     *logrus.Entry
	// Workers, if not nil, makes the session keep worker containers.
	Workers *WorkerOptions
	// OnShutdown is called once, from the heartbeat goroutine, when the RM
	// says the attempt is gone (amrm.ErrShutdown: the attempt was killed,
	// or the RM restarted without recovery). The heartbeat stops; the
	// caller should end the job, stop the workers if it can, and Close the
	// session: unregistering is no longer possible. OnShutdown must not
	// block on Close or Finish, which wait for the heartbeat to end.
	OnShutdown func(err error)
}

// Time limits of calls to the scheduler.
const (
	registerTimeout = 30 * time.Second
	allocateTimeout = 30 * time.Second
	// finishTimeout bounds Finish, re-registrations included.
	finishTimeout = time.Minute
	// finishAttempts is how many times Finish calls finishApplicationMaster
	// when the RM keeps losing the registration.
	finishAttempts = 3
)

// ErrWorkerTooLarge reports worker containers larger than the queue's
// maximum container size.
var ErrWorkerTooLarge = errors.New("am: worker containers exceed the maximum container size")

// Session is a registered application attempt.
type Session struct {
	client *amrm.Client
	opts   Options
	log    *logrus.Entry
	// What the attempt registered with, to register again after an RM
	// restart (§6.4.5).
	host        string
	rpcPort     int32
	trackingURL string

	workers *workers // nil without WorkerOptions
	release []*hadoopproto.ContainerIdProto

	// ctx is cancelled when the heartbeat stops, ending its calls.
	ctx    context.Context
	cancel context.CancelFunc
	gone   atomic.Bool // the RM said the attempt is gone (ErrShutdown)

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// AdvertiseHost is the host the tracking URL should name: the NodeManager's
// host (NM_HOST), which the RM proxy can reach.
func AdvertiseHost(getenv func(string) string) string {
	if h := getenv(EnvNMHost); h != "" {
		return h
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "localhost"
}

// TrackingURL rewrites a listen URL (http://0.0.0.0:port) to name host.
func TrackingURL(listenURL, host string) (string, error) {
	u, err := url.Parse(listenURL)
	if err != nil {
		return "", fmt.Errorf("am: tracking URL %q: %w", listenURL, err)
	}
	_, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", fmt.Errorf("am: tracking URL %q: %w", listenURL, err)
	}
	u.Host = net.JoinHostPort(host, port)
	return u.String(), nil
}

// Start reads the AMRM token from the container's token file, connects to
// the scheduler, registers the attempt with trackingURL and starts the
// heartbeat. Worker containers larger than the queue allows could never be
// allocated: Start then unregisters the attempt FAILED, saying so, and
// returns an error wrapping ErrWorkerTooLarge.
func Start(ctx context.Context, trackingURL string, opts Options) (*Session, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	if opts.Log == nil {
		l := logrus.New()
		opts.Log = logrus.NewEntry(l)
	}
	creds, err := token.ReadFromEnv(opts.Getenv)
	if err != nil {
		return nil, fmt.Errorf("am: container credentials: %w", err)
	}
	tok, err := creds.AMRMToken()
	if err != nil {
		return nil, fmt.Errorf("am: container credentials (%s): %w", opts.Getenv(EnvTokenFile), err)
	}
	addrs, err := amrm.SchedulerAddresses(opts.Getenv, opts.ReadFile)
	if err != nil {
		return nil, fmt.Errorf("am: %w", err)
	}
	attempt := ""
	if id, err := token.DecodeAMRMIdentifier(tok.Identifier); err == nil {
		attempt = hadoopproto.AttemptIDString(id.Attempt)
	}
	log := opts.Log.WithFields(logrus.Fields{"component": "am", "attempt": attempt})
	co := amrm.DefaultOptions()
	co.Addrs, co.Token, co.Logger = addrs, tok, log
	client, err := amrm.New(co)
	if err != nil {
		return nil, fmt.Errorf("am: %w", err)
	}
	rpcPort := opts.RPCPort
	if rpcPort == 0 {
		rpcPort = -1
	}
	s := &Session{client: client, opts: opts, log: log, host: AdvertiseHost(opts.Getenv), rpcPort: rpcPort, trackingURL: trackingURL,
		stop: make(chan struct{}), done: make(chan struct{})}
	reg, err := s.register(ctx)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("am: register with the scheduler at %s: %w", strings.Join(addrs, ","), err)
	}
	log.WithFields(logrus.Fields{"scheduler": strings.Join(addrs, ","), "trackingUrl": trackingURL}).Info("registered as ApplicationMaster")
	if opts.Workers != nil && opts.Workers.Count > 0 {
		if err := checkWorkerSize(opts.Workers.Resource, reg.MaxCapability); err != nil {
			// Every allocate would fail with InvalidResourceRequestException:
			// end the application now, with the reason, rather than hang or
			// fail attempt after attempt.
			fctx, cancel := context.WithTimeout(ctx, finishTimeout)
			defer cancel()
			if ferr := client.Finish(fctx, amrm.Failed, Result{State: "FAILED", Error: err.Error()}.Diagnostics(), ""); ferr != nil {
				log.WithError(ferr).Error("unregistering")
			}
			client.Close()
			return nil, err
		}
		s.workers = newWorkers(*opts.Workers, log)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.heartbeat()
	return s, nil
}

// checkWorkerSize fails if a worker container of size r could never be
// allocated under the queue's maximum container size limit (a zero field
// of limit is unknown).
func checkWorkerSize(r, limit amrm.Resource) error {
	if (limit.MemoryMB > 0 && r.MemoryMB > limit.MemoryMB) || (limit.VCores > 0 && r.VCores > limit.VCores) {
		return fmt.Errorf("%w: a worker needs <memory:%d MB, vCores:%d>, the queue's maximum is <memory:%d MB, vCores:%d>",
			ErrWorkerTooLarge, r.MemoryMB, r.VCores, limit.MemoryMB, limit.VCores)
	}
	return nil
}

// register registers the attempt with what Start registered it with.
func (s *Session) register(ctx context.Context) (*amrm.Registration, error) {
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	return s.client.Register(ctx, s.host, s.rpcPort, s.trackingURL)
}

// firstAllocateWait is the first wait between heartbeats while workers
// wait for containers; it doubles up to Options.Heartbeat. The RM
// allocates between heartbeats, so a faster heartbeat gets containers to
// workers sooner (Spark's AM does the same, from 200ms).
const firstAllocateWait = 200 * time.Millisecond

func (s *Session) heartbeat() {
	defer close(s.done)
	t := time.NewTimer(0) // the first heartbeat at once
	defer t.Stop()
	failures := 0
	wait := firstAllocateWait
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		err := s.allocate()
		if s.workers != nil && s.workers.waiting() && err == nil {
			t.Reset(min(wait, s.opts.Heartbeat))
			wait *= 2
		} else {
			t.Reset(s.opts.Heartbeat)
			wait = firstAllocateWait
		}
		if err == nil {
			failures = 0
			continue
		}
		if s.ctx.Err() != nil {
			return // stopping
		}
		failures++
		if errors.Is(err, amrm.ErrResync) {
			// The RM restarted or failed over and lost the registration:
			// register again, as before, and re-send the asks.
			s.log.WithError(err).Warn("the RM lost the registration: registering again")
			if _, err = s.register(s.ctx); err == nil {
				s.log.Info("registered again")
				if s.workers != nil {
					s.workers.resync()
				}
				continue
			}
		}
		switch {
		case errors.Is(err, amrm.ErrShutdown):
			s.gone.Store(true)
			s.log.WithError(err).Error("the RM ended this application attempt: shutting down without unregistering")
			if s.opts.OnShutdown != nil {
				s.opts.OnShutdown(err)
			}
			return
		case failures == 1 || failures%30 == 0:
			s.log.WithError(err).WithField("failures", failures).Warn("allocate heartbeat failed")
		}
	}
}

// allocate sends one heartbeat and handles its answer.
func (s *Session) allocate() error {
	var progress float32
	if s.opts.Progress != nil {
		progress = s.opts.Progress()
	}
	req := amrm.AllocateRequest{Progress: progress, Release: s.release}
	if s.workers != nil {
		req.Asks = s.workers.asks()
	}
	ctx, cancel := context.WithTimeout(s.ctx, allocateTimeout)
	res, err := s.client.Allocate(ctx, req)
	cancel()
	if err != nil {
		return err // the releases and asks go out again with the next one
	}
	s.release = nil
	if s.workers != nil {
		s.workers.sent(req.Asks)
		s.workers.completed(res.Completed)
		s.release = s.workers.allocated(s.ctx, res.Allocated, s.client.NMToken)
	}
	return nil
}

// Workers describes the worker containers (nil without WorkerOptions).
func (s *Session) Workers() []WorkerStatus {
	if s.workers == nil {
		return nil
	}
	return s.workers.status()
}

// RegisterWorker records the REST endpoint (url) of worker k, running in
// container containerID, for Workers. A worker whose container is not the
// one the session started for k gets ErrUnknownWorker.
func (s *Session) RegisterWorker(k int, containerID, url string) error {
	if s.workers == nil {
		return fmt.Errorf("%w: the job has no worker containers", ErrUnknownWorker)
	}
	return s.workers.register(k, containerID, url)
}

// WaitWorkers waits up to limit for every worker to finish its share (exit
// with status 0), replacing lost ones meanwhile, as a bounded job needs. It
// fails if they do not, if the session gave up on them, or if the RM ended
// the attempt (amrm.ErrShutdown).
func (s *Session) WaitWorkers(ctx context.Context, limit time.Duration) error {
	if s.workers == nil {
		return nil
	}
	return s.pollWorkers(ctx, limit, "finish", func() (bool, error) {
		done, gaveUp := s.workers.finished()
		if !done && gaveUp {
			return false, errors.New("am: gave up on worker containers before they finished")
		}
		return done, nil
	})
}

// DrainWorkers asks for no more workers and waits, up to limit or until
// ctx is done, for the running ones to end by themselves (a stopped
// unbounded job's workers take a final checkpoint first, which can take
// longer than the NodeManager's grace between SIGTERM and SIGKILL). It
// reports whether they all ended; StopWorkers stops any left.
func (s *Session) DrainWorkers(ctx context.Context, limit time.Duration) bool {
	if s.workers == nil {
		return true
	}
	return s.pollWorkers(ctx, limit, "end", func() (bool, error) { return s.workers.drain(), nil }) == nil
}

// pollWorkers checks cond every 50ms until it holds or fails, ctx is done,
// limit has passed or the attempt is gone.
func (s *Session) pollWorkers(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := cond()
		switch {
		case err != nil:
			return err
		case done:
			return nil
		case s.gone.Load():
			return fmt.Errorf("am: waiting for the workers: %w: the attempt is gone", amrm.ErrShutdown)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("am: workers did not %s within %s: %v", what, limit, s.workers.status())
		case <-tick.C:
		}
	}
}

// StopWorkers asks for no more workers and stops the running ones through
// their NodeManagers (which send SIGTERM: a worker then ends after a final
// checkpoint if it has the time).
func (s *Session) StopWorkers(ctx context.Context) error {
	if s.workers == nil {
		return nil
	}
	return s.workers.stop(ctx, s.client.NMToken)
}

// Finish stops the heartbeat and unregisters the attempt with r's final
// status and diagnostics. If the RM lost the registration (a restart or
// failover), it registers again as before and repeats the call: an AM that
// exits without unregistering fails its attempt, and YARN would run the
// job again (§8.1, §8.2). After OnShutdown it returns an error wrapping
// amrm.ErrShutdown without calling the RM.
func (s *Session) Finish(ctx context.Context, r Result) error {
	s.stopHeartbeat()
	if s.gone.Load() {
		return fmt.Errorf("am: unregister: %w: the attempt is gone", amrm.ErrShutdown)
	}
	ctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	for n := 1; ; n++ {
		err := s.client.Finish(ctx, FinalStatus(r.State), r.Diagnostics(), "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, amrm.ErrResync) || n == finishAttempts {
			return fmt.Errorf("am: unregister: %w", err)
		}
		s.log.WithError(err).Warn("the RM lost the registration: registering again to unregister")
		if _, err := s.register(ctx); err != nil {
			return fmt.Errorf("am: unregister: registering again: %w", err)
		}
	}
}

// Close stops the heartbeat and closes the connection without unregistering
// (YARN then starts the next attempt, if any).
func (s *Session) Close() error {
	s.stopHeartbeat()
	return s.client.Close()
}

func (s *Session) stopHeartbeat() {
	s.stopOnce.Do(func() {
		close(s.stop)
		s.cancel()
	})
	<-s.done
	if s.workers != nil {
		s.workers.close()
	}
}

// Port is the port of a listen URL.
func Port(listenURL string) (int32, error) {
	u, err := url.Parse(listenURL)
	if err != nil {
		return 0, fmt.Errorf("am: %q: %w", listenURL, err)
	}
	p, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("am: %q has no port", listenURL)
	}
	return int32(p), nil
}

// ContainerAttempt is the application attempt number in a container id
// (container_[e<epoch>_]<cluster ts>_<app>_<attempt>_<container>), or 0.
func ContainerAttempt(containerID string) int {
	parts := strings.Split(containerID, "_")
	if len(parts) < 5 || parts[0] != "container" {
		return 0
	}
	n, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil {
		return 0
	}
	return n
}
