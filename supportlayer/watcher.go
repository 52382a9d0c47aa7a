package supportlayer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/tidewatch/tidewatch/supportlayer/deploy"
	"github.com/tidewatch/tidewatch/supportlayer/jobmaster"
)

// watchConcurrency bounds how many jobs one cycle observes at once; a job
// master that does not answer costs at most one probe timeout of one slot.
const watchConcurrency = 16

// watcher observes every unfinished job on a schedule, decides what to do with
// decide, and applies it. All changes a daemon makes to a job's deployments go
// through it, one job at a time (jobLocks).
type watcher struct {
	store    *Store
	deployer deploy.Deployer
	master   *jobmaster.Client
	policy   RestartPolicy
	to       timeouts
	interval time.Duration
	ckptRoot string
	log      *logrus.Entry
	metrics  *metrics
	now      func() time.Time

	locks  jobLocks
	cron   *cron.Cron
	cycles atomic.Int64 // completed cycles
	kicks  chan string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	stopped bool
	timers  map[*time.Timer]struct{}
	ready   bool
}

// every is a cron schedule with sub-second resolution (cron's @every rounds
// up to whole seconds).
type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

func (w *watcher) Start() {
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.kicks = make(chan string, 256)
	w.timers = map[*time.Timer]struct{}{}
	w.cron = cron.New(cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	w.cron.Schedule(every(w.interval), cron.FuncJob(func() { w.cycle(w.ctx) }))

	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		w.cycle(w.ctx) // once at once: adopts what is running before anything else happens
		w.mu.Lock()
		w.ready = true
		w.mu.Unlock()
		w.cron.Start()
	}()
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.ctx.Done():
				return
			case id := <-w.kicks:
				if err := w.reconcile(w.ctx, id); err != nil && w.ctx.Err() == nil {
					w.log.WithError(err).WithField("job", id).Warn("reconcile failed")
				}
			}
		}
	}()
}

// Ready reports whether the first cycle (re-adoption) has completed.
func (w *watcher) Ready() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ready
}

// Stop ends the schedule and waits for running cycles. It is idempotent.
func (w *watcher) Stop() {
	w.mu.Lock()
	if w.stopped || w.cancel == nil {
		w.mu.Unlock()
		return
	}
	w.stopped = true
	for t := range w.timers {
		t.Stop()
	}
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait() // the first cycle may still start cron; wait for it before stopping cron
	<-w.cron.Stop().Done()
}

// Kick asks for a look at one job now, instead of at the next cycle.
func (w *watcher) Kick(jobID string) {
	select {
	case w.kicks <- jobID:
	default: // a full queue means a look is coming anyway
	}
}

func (w *watcher) wakeAt(jobID string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(time.Until(at), func() {
		w.mu.Lock()
		delete(w.timers, t)
		w.mu.Unlock()
		w.Kick(jobID)
	})
	w.timers[t] = struct{}{}
}

func (w *watcher) cycle(ctx context.Context) {
	start := time.Now()
	defer func() { w.metrics.cycleSeconds.Observe(time.Since(start).Seconds()) }()
	if ca, ok := w.deployer.(deploy.CycleAware); ok {
		ca.BeginCycle() // a batching deployer (YARN) refreshes its view once for the whole cycle
	}
	var unfinished []string
	unfinished = append(unfinished, StateSubmitted, StateDeploying, StateRunning, StateRestarting, StateStopping, StateCancelling)
	jobs, err := w.store.Jobs(ctx, unfinished)
	if err != nil {
		if ctx.Err() == nil {
			w.metrics.watchErrors.WithLabelValues("list").Inc()
			w.log.WithError(err).Warn("list jobs")
		}
		return
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(watchConcurrency)
	for _, j := range jobs {
		id := j.ID
		g.Go(func() error {
			if err := w.reconcile(gctx, id); err != nil && gctx.Err() == nil {
				w.metrics.watchErrors.WithLabelValues("reconcile").Inc()
				w.log.WithError(err).WithField("job", id).Warn("reconcile failed")
			}
			return nil
		})
	}
	_ = g.Wait()
	w.cycles.Add(1)
	if counts, err := w.store.CountJobsByState(ctx); err == nil {
		w.metrics.setJobStates(counts)
	}
}

// reconcile observes one job, decides and applies, holding the job's lock.
func (w *watcher) reconcile(ctx context.Context, id string) error {
	unlock := w.locks.lock(id)
	defer unlock()

	j, err := w.store.Job(ctx, id)
	if err != nil {
		return err
	}
	d, err := w.store.ActiveDeployment(ctx, id)
	if err != nil {
		return err
	}
	now := w.now()
	obs := observation{Job: j, Deployment: d}
	if d != nil {
		obs.Status, obs.StatusErr = w.deployer.Observe(ctx, handleOf(d))
		if obs.StatusErr != nil {
			w.metrics.watchErrors.WithLabelValues("observe").Inc()
			return fmt.Errorf("observe deployment %d: %w", d.Attempt, obs.StatusErr)
		}
		if ep := obs.Status.Endpoint; obs.Status.Alive && ep != "" {
			if d.Endpoint != ep {
				d.Endpoint = ep
				if err := w.store.SaveDeployment(ctx, d); err != nil {
					return err
				}
			}
			pctx, cancel := context.WithTimeout(ctx, w.to.probe())
			ov, err := w.master.Job(pctx, ep, j.ID)
			cancel()
			obs.Master, obs.MasterErr = ov.State, err
		}
	}
	if obs.RestartsInWindow, err = w.store.RecentRestarts(ctx, id, now.Add(-w.policy.Window)); err != nil {
		return err
	}
	acts := decide(obs, w.policy, w.to, now)
	if len(acts) == 0 {
		return nil
	}
	return w.apply(ctx, &j, d, acts, now)
}

func (w *watcher) apply(ctx context.Context, j *Job, d *Deployment, acts []action, now time.Time) error {
	log := w.log.WithField("job", j.ID)
	if d != nil {
		log = log.WithField("attempt", d.Attempt)
	}
	var evs []Event
	event := func(level, typ, msg string) {
		var depID uint
		if d != nil {
			depID = d.ID
		}
		evs = append(evs, Event{Time: now, Level: level, Type: typ, Message: msg, DeploymentID: depID})
	}
	for i := 0; i < len(acts); i++ {
		log.WithField("action", acts[i].String()).Debug("apply")
		switch a := acts[i].(type) {
		case actDeploy:
			nd, err := w.deploy(ctx, j, a, now)
			if err != nil {
				log.WithError(err).Error("deploy failed")
				event("ERROR", "DEPLOY_FAILED", err.Error())
				// Like a dead deployment: the policy decides whether to retry,
				// in place of what was planned after the deploy.
				restarts, rerr := w.store.RecentRestarts(ctx, j.ID, now.Add(-w.policy.Window))
				if rerr != nil {
					return rerr
				}
				acts = append(acts[:i+1], restartOrFail(observation{Job: *j, RestartsInWindow: restarts}, w.policy, now, "deploy failed: "+err.Error())...)
				continue
			}
			d = nd
			log = log.WithField("attempt", d.Attempt)
			event("INFO", "JOB_DEPLOYED", fmt.Sprintf("deployment %d started by %s (%s), restoring from %s", d.Attempt, d.Deployer, describeHandle(d), d.Restore))
		case actKill:
			if d == nil {
				continue
			}
			if err := w.deployer.Kill(ctx, handleOf(d)); err != nil {
				return fmt.Errorf("kill deployment %d: %w", d.Attempt, err)
			}
			log.WithField("why", a.Why).Warn("killed deployment")
		case actStop, actCancel:
			if d == nil {
				continue
			}
			j.StopRequestedAt = &now
			var err error
			pctx, cancel := context.WithTimeout(ctx, w.to.probe())
			if _, ok := a.(actStop); ok {
				_, err = w.master.Stop(pctx, d.Endpoint, j.ID, "")
			} else {
				err = w.master.Cancel(pctx, d.Endpoint, j.ID)
			}
			cancel()
			if err != nil {
				// The stop timeout still applies: the process is killed when it runs out.
				event("WARN", "JOB_MASTER_UNREACHABLE", fmt.Sprintf("%s request failed: %v", a, err))
			}
		case actEndDeployment:
			if d == nil {
				continue
			}
			d.Active, d.State, d.FinalState, d.Diagnostics, d.Savepoint = false, "ENDED", a.FinalState, a.Diagnostics, a.Savepoint
			d.EndedAt = &now
			if err := w.store.SaveDeployment(ctx, d); err != nil {
				return err
			}
			j.RestartRequested = false
		case actMarkDeploymentRunning:
			if d != nil {
				d.State = "RUNNING"
				if err := w.store.SaveDeployment(ctx, d); err != nil {
					return err
				}
			}
		case actSetState:
			if j.State != a.State {
				log.WithField("state", a.State).Info("job state")
			}
			j.State, j.Message = a.State, a.Message
			if isTerminal(a.State) {
				j.NextRestartAt, j.StopRequestedAt = nil, nil
			}
		case actScheduleRestart:
			j.State, j.NextRestartAt, j.RestartReason, j.Message = StateRestarting, &a.At, a.Reason, ""
			j.RestartRequested = false
		case actEvent:
			event(a.Level, a.Type, a.Message)
		case actWake:
			w.wakeAt(j.ID, a.At)
		}
	}
	return w.store.SaveJob(ctx, j, evs...)
}

// deploy records a new deployment and starts it.
func (w *watcher) deploy(ctx context.Context, j *Job, a actDeploy, now time.Time) (*Deployment, error) {
	restore := a.Restore
	if a.Reason == ReasonManual {
		// A job stopped with a savepoint continues from that savepoint.
		if last, err := w.store.LatestDeployment(ctx, j.ID); err == nil && last != nil && last.Savepoint != "" {
			restore = last.Savepoint
		}
	}
	d := &Deployment{JobID: j.ID, Deployer: w.deployer.Name(), Reason: a.Reason, Restore: restore, State: "STARTING", StartedAt: now}
	if err := w.store.BeginDeployment(ctx, d); err != nil {
		return nil, err
	}
	h, err := w.deployer.Deploy(ctx, deploy.Request{
		JobID:         j.ID,
		Attempt:       d.Attempt,
		Spec:          []byte(j.Spec),
		CheckpointDir: w.checkpointDir(j.ID),
		Restore:       restore,
	})
	if err != nil {
		end := now
		d.Active, d.State, d.Diagnostics, d.EndedAt = false, "ENDED", err.Error(), &end
		if serr := w.store.SaveDeployment(ctx, d); serr != nil {
			return nil, errors.Join(err, serr)
		}
		return nil, err
	}
	d.PID, d.ApplicationID, d.WorkDir, d.LogPath = h.PID, h.ApplicationID, h.WorkDir, h.LogPath
	if err := w.store.SaveDeployment(ctx, d); err != nil {
		return nil, err
	}
	if a.Reason == ReasonRestart {
		j.Restarts++
		w.metrics.restarts.Inc()
	}
	j.NextRestartAt, j.RestartReason, j.StopRequestedAt = nil, "", nil
	return d, nil
}

func (w *watcher) checkpointDir(jobID string) string {
	return w.ckptRoot + "/" + jobID
}

func (t timeouts) probe() time.Duration {
	if t.Probe <= 0 {
		return 2 * time.Second
	}
	return t.Probe
}

func handleOf(d *Deployment) deploy.Handle {
	return deploy.Handle{Deployer: d.Deployer, PID: d.PID, ApplicationID: d.ApplicationID, WorkDir: d.WorkDir, LogPath: d.LogPath,
		JobID: d.JobID, Attempt: d.Attempt}
}

func describeHandle(d *Deployment) string {
	if d.ApplicationID != "" {
		return d.ApplicationID
	}
	return fmt.Sprintf("pid %d", d.PID)
}

// jobLocks serialises work on one job between the watcher and the API.
type jobLocks struct {
	mu    sync.Mutex
	locks map[string]*jobLock
}

type jobLock struct {
	mu   sync.Mutex
	refs int
}

func (l *jobLocks) lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*jobLock{}
	}
	jl := l.locks[id]
	if jl == nil {
		jl = &jobLock{}
		l.locks[id] = jl
	}
	jl.refs++
	l.mu.Unlock()
	jl.mu.Lock()
	return func() {
		jl.mu.Unlock()
		l.mu.Lock()
		if jl.refs--; jl.refs == 0 {
			delete(l.locks, id)
		}
		l.mu.Unlock()
	}
}
