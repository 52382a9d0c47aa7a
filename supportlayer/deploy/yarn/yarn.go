package yarn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner"
	"github.com/tidewatch/tidewatch/supportlayer/deploy"
	"github.com/tidewatch/tidewatch/yarn/am"
	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/hdfs"
	"github.com/tidewatch/tidewatch/yarn/rm"
)

// Name is the deployer kind recorded in handles.
const Name = "yarn"

// Link names in the AM container's working directory.
const (
	BinaryLink = "tidewatch"
	SpecLink   = "job.yaml"
)

// EnvSchedulerAddress passes the RM scheduler address(es) to the AM, which
// reads it with amrm.SchedulerAddresses.
const EnvSchedulerAddress = amrm.EnvSchedulerAddress

// JobTag and DeployTag are the application tags of a deployment: every
// application of a job carries JobTag, and DeployTag names the one
// deployment (job and attempt), so a daemon that stopped mid-submit finds
// the application again. Job ids are lower-case hex, as the RM stores tags.
func JobTag(jobID string) string { return "tidewatch-job-" + jobID }

// DeployTag is the tag of deployment attempt of job jobID.
func DeployTag(jobID string, attempt int) string {
	return "tidewatch-deploy-" + jobID + "-" + strconv.Itoa(attempt)
}

var (
	_ deploy.Deployer   = (*Deployer)(nil)
	_ deploy.CycleAware = (*Deployer)(nil)
)

// Deployer runs each deployment of a job as one YARN application whose
// ApplicationMaster is `tidewatch am`.
type Deployer struct {
	cfg    Config
	client *rm.Client
	stager *hdfs.Stager
	cache  *appCache
	log    *logrus.Entry
	closer io.Closer // the HDFS connection Open made, if any
}

// New returns a deployer that submits through client and stages with
// stager. cfg.User must be set (Open resolves it).
func New(cfg Config, client *rm.Client, stager *hdfs.Stager, log *logrus.Entry) (*Deployer, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Binary == "" {
		return nil, errors.New("runtime.binary: must be set (the tidewatch executable to stage)")
	}
	if cfg.User == "" {
		return nil, errors.New("hdfs.user: must be set")
	}
	if client == nil || stager == nil {
		return nil, errors.New("yarn: deployer needs an RM client and a stager")
	}
	return &Deployer{
		cfg: cfg, client: client, stager: stager,
		cache: newAppCache(client, cfg.User, cfg.ObserveInterval, time.Now),
		log:   log.WithField("component", "yarn-deployer"),
	}, nil
}

// Name implements deploy.Deployer.
func (d *Deployer) Name() string { return Name }

// BeginCycle implements deploy.CycleAware: the next Observe lists the RM's
// applications again, and the rest of the cycle reads that listing.
func (d *Deployer) BeginCycle() { d.cache.beginCycle() }

// Close closes the HDFS connection Open made.
func (d *Deployer) Close() error {
	if d.closer != nil {
		return d.closer.Close()
	}
	return nil
}

// Command is the AM command of a deployment. The NodeManager expands
// <LOG_DIR> to the container's log directory.
func Command(req deploy.Request) string {
	return fmt.Sprintf("./%s am --spec %s --job-id %s --attempt %d --work-dir . --checkpoint-dir %s --listen 0.0.0.0:0 --restore %s --log-format json 1><LOG_DIR>/jobmaster.log 2>&1",
		BinaryLink, SpecLink, req.JobID, req.Attempt, req.CheckpointDir, req.Restore)
}

// Deploy implements deploy.Deployer. It adopts the deployment's application
// if one was submitted already (a daemon that stopped after submitting and
// before storing the handle), kills live applications of earlier
// deployments of the job (left by a failed or uncertain submit), and
// otherwise stages the binary and the spec and submits a new application.
// The handle is returned once the RM has accepted the application.
func (d *Deployer) Deploy(ctx context.Context, req deploy.Request) (deploy.Handle, error) {
	log := d.log.WithFields(logrus.Fields{"job": req.JobID, "attempt": req.Attempt})
	spec, err := jobrunner.ParseSpec(req.Spec, SpecLink)
	if err != nil {
		return deploy.Handle{}, fmt.Errorf("yarn: job spec: %w", err)
	}
	for what, v := range map[string]string{"job id": req.JobID, "checkpoint directory": req.CheckpointDir, "restore": req.Restore} {
		if err := checkShellSafe(v); err != nil {
			return deploy.Handle{}, fmt.Errorf("yarn: %s %w", what, err)
		}
	}
	if req.Attempt < 1 {
		return deploy.Handle{}, fmt.Errorf("yarn: attempt must be at least 1, got %d", req.Attempt)
	}
	handle := deploy.Handle{Deployer: Name, JobID: req.JobID, Attempt: req.Attempt}
	jobTag, deployTag := JobTag(req.JobID), DeployTag(req.JobID, req.Attempt)

	apps, err := d.client.FindByTag(ctx, jobTag, rm.ApplicationTypeTidewatch)
	if err != nil {
		return deploy.Handle{}, fmt.Errorf("yarn: looking for earlier applications of the job: %w", err)
	}
	for i := range apps {
		a := &apps[i]
		if hasTag(a, deployTag) {
			log.WithFields(logrus.Fields{"app": a.ID, "state": a.State}).Warn("adopting the application already submitted for this deployment")
			d.cache.remember(a)
			handle.ApplicationID = a.ID
			return handle, nil
		}
	}
	for i := range apps {
		if a := &apps[i]; !rm.IsFinalState(a.State) {
			// The watcher deploys only when the job has no active deployment:
			// a live application of another deployment is a leftover.
			log.WithFields(logrus.Fields{"app": a.ID, "tags": a.ApplicationTags}).Warn("killing a live application of an earlier deployment of the job")
			if _, err := d.client.Kill(ctx, a.ID, "superseded by deployment "+strconv.Itoa(req.Attempt)+" of the job"); err != nil && !errors.Is(err, rm.ErrNotFound) {
				return deploy.Handle{}, fmt.Errorf("yarn: killing %s, left by an earlier deployment: %w", a.ID, err)
			}
			d.cache.forget(a.ID)
			// No deployment's handle names it, so no Observe removes its
			// staging directory.
			d.cleanup(ctx, a.ID)
		}
	}

	na, err := d.client.NewApplication(ctx)
	if err != nil {
		return deploy.Handle{}, fmt.Errorf("yarn: new application: %w", err)
	}
	appID := na.ApplicationID
	log = log.WithField("app", appID)
	res := rm.Resource{MemoryMB: (int64(spec.Resources.Memory) + 1<<20 - 1) >> 20, VCores: int32(spec.Resources.VCores)}
	if limit := na.MaximumResourceCapability; (limit.MemoryMB > 0 && res.MemoryMB > limit.MemoryMB) || (limit.VCores > 0 && res.VCores > limit.VCores) {
		return deploy.Handle{}, fmt.Errorf("yarn: the job asks for %d MB and %d vcores (resources.memory, resources.vcores); the cluster's largest container is %d MB and %d vcores",
			res.MemoryMB, res.VCores, limit.MemoryMB, limit.VCores)
	}

	staged, err := d.stager.Stage(ctx, hdfs.Request{
		ApplicationID: appID,
		Binary:        d.cfg.Binary,
		BinaryLink:    BinaryLink,
		Files:         []hdfs.File{{Link: SpecLink, Data: req.Spec}},
	})
	if err != nil {
		return deploy.Handle{}, fmt.Errorf("yarn: staging %s: %w", appID, err)
	}

	env := map[string]string{"HADOOP_USER_NAME": d.cfg.User}
	// The AM starts worker containers from the same files.
	if env[am.EnvLocalResources], err = am.EncodeLocalResources(staged.Resources); err != nil {
		if cerr := d.stager.Cleanup(ctx, appID); cerr != nil {
			log.WithError(cerr).Warn("could not remove the staging directory of an application not submitted")
		}
		return deploy.Handle{}, fmt.Errorf("yarn: local resources of %s: %w", appID, err)
	}
	if len(d.cfg.SchedulerAddresses) > 0 {
		env[EnvSchedulerAddress] = strings.Join(d.cfg.SchedulerAddresses, ",")
	}
	sub := &rm.ApplicationSubmission{
		ApplicationID:   appID,
		Name:            spec.Name,
		ApplicationType: rm.ApplicationTypeTidewatch,
		Queue:           d.cfg.Queue,
		MaxAppAttempts:  int32(d.cfg.MaxAttempts),
		KeepContainers:  false,
		Resource:        res,
		// The deployment tag first: the client's check after an uncertain
		// submit looks for the application by the first tag.
		Tags: rm.Tags{deployTag, jobTag},
		AMContainerSpec: rm.ContainerLaunchContext{
			LocalResources: staged.Resources,
			Environment:    env,
			Commands:       []string{Command(req)},
		},
		AttemptFailuresValidityIntervalMS: d.cfg.AttemptFailuresValidityInterval.Milliseconds(),
	}
	if err := d.client.Submit(ctx, sub); err != nil {
		d.abandon(ctx, log, appID, err)
		return deploy.Handle{}, fmt.Errorf("yarn: submit %s: %w", appID, err)
	}
	log.WithFields(logrus.Fields{"queue": d.cfg.Queue, "memory_mb": res.MemoryMB, "vcores": res.VCores, "binary_reused": staged.BinaryReused}).Info("submitted job master application")
	handle.ApplicationID = appID
	return handle, nil
}

// abandon cleans up after a failed submit. When the submit may have reached
// the RM, the application is killed, so that no copy of the job runs that no
// deployment tracks; its staging directory is removed either way.
func (d *Deployer) abandon(ctx context.Context, log *logrus.Entry, appID string, submitErr error) {
	if ctx.Err() != nil {
		// The daemon is stopping: the next one finds the application by its
		// tag if it was submitted, and then the staging directory is used.
		return
	}
	var re *rm.RemoteError
	definite := errors.As(submitErr, &re) && re.Status >= 400 && re.Status < 500
	if !definite {
		if _, err := d.client.Kill(ctx, appID, "its submit failed: "+clip(submitErr.Error(), 200)); err != nil && !errors.Is(err, rm.ErrNotFound) {
			log.WithError(err).Warn("could not kill the application of an uncertain submit; the next deployment of the job kills it")
		}
	}
	if err := d.stager.Cleanup(ctx, appID); err != nil {
		log.WithError(err).Warn("could not remove the staging directory of a failed submit")
	}
}

func hasTag(a *rm.Application, tag string) bool {
	for _, t := range a.TagList() {
		if t == tag {
			return true
		}
	}
	return false
}

// errNotSubmitted marks a deployment whose application was never submitted.
var errNotSubmitted = errors.New("yarn: no application was submitted for the deployment")

// resolve returns the deployment's application: by the handle's id from the
// cache (or a single report), or — for a handle stored before its id (the
// daemon stopped mid-deploy) — by its deployment tag.
func (d *Deployer) resolve(ctx context.Context, h deploy.Handle) (*rm.Application, error) {
	if h.Deployer != "" && h.Deployer != Name {
		return nil, fmt.Errorf("%w: deployment made by the %s deployer, and this daemon runs the %s deployer", deploy.ErrUnknownHandle, h.Deployer, Name)
	}
	if h.ApplicationID != "" {
		if _, err := rm.ParseApplicationID(h.ApplicationID); err != nil {
			return nil, fmt.Errorf("%w: %w", deploy.ErrUnknownHandle, err)
		}
		return d.cache.app(ctx, h.ApplicationID)
	}
	if h.JobID == "" || h.Attempt < 1 {
		return nil, fmt.Errorf("%w: no application id, job id or attempt", deploy.ErrUnknownHandle)
	}
	tag := DeployTag(h.JobID, h.Attempt)
	a, err := d.cache.byDeployTag(ctx, tag)
	if err != nil || a != nil {
		return a, err
	}
	apps, err := d.client.FindByTag(ctx, tag, rm.ApplicationTypeTidewatch)
	if err != nil {
		return nil, err
	}
	if len(apps) == 0 {
		return nil, fmt.Errorf("%w (no application carries the tag %s)", errNotSubmitted, tag)
	}
	d.cache.remember(&apps[0])
	return &apps[0], nil
}

// Observe implements deploy.Deployer. It reads the application from the
// listing of the current watch cycle (one RM request per cycle for all
// jobs), falling back to one report for an application not in it. The
// endpoint is the RM proxy's tracking URL once the AM has registered; the
// job master's result comes from the diagnostics it unregistered with. The
// staging directory of an ended application is removed.
func (d *Deployer) Observe(ctx context.Context, h deploy.Handle) (deploy.Status, error) {
	a, err := d.resolve(ctx, h)
	switch {
	case errors.Is(err, errNotSubmitted):
		return deploy.Status{Diagnostics: "the daemon stopped before it submitted the deployment's application"}, nil
	case errors.Is(err, errUnknownApp):
		// The RM forgot it: restarted without recovery, or the application
		// ended long ago and was evicted.
		d.cleanup(ctx, h.ApplicationID)
		return deploy.Status{Diagnostics: "application " + h.ApplicationID + " is unknown to the ResourceManager"}, nil
	case err != nil:
		return deploy.Status{}, fmt.Errorf("yarn: observe %s: %w", describe(h), err)
	}
	st := statusOf(a)
	if !st.Alive {
		if _, err := d.stager.CleanupIfEnded(ctx, a); err != nil {
			d.log.WithError(err).WithField("app", a.ID).Warn("could not remove the staging directory")
		}
	}
	return st, nil
}

// statusOf maps an application report to a deployment status.
func statusOf(a *rm.Application) deploy.Status {
	if !rm.IsFinalState(a.State) {
		st := deploy.Status{Alive: true}
		switch {
		case a.State != rm.StateRunning:
		case a.AMRPCAddress != "" && !strings.HasPrefix(a.AMRPCAddress, "N/A"):
			// The AM registers its REST port as its RPC port: the job
			// master directly, since the RM's web proxy forwards only GET
			// and PUT and stops, savepoints and migrations are POSTs.
			st.Endpoint = "http://" + a.AMRPCAddress
		case a.TrackingURL != "":
			st.Endpoint = a.TrackingURL // read-only through the proxy
		}
		return st
	}
	outcome := fmt.Sprintf("YARN application %s %s (final status %s)", a.ID, a.State, a.FinalStatus)
	if r, ok := parseResult(a.Diagnostics); ok {
		return deploy.Status{FinalState: r.State, Savepoint: r.Savepoint, Diagnostics: joinDiag(clip(r.Error, maxDiagnostics), outcome)}
	}
	// No result: the AM crashed on its last attempt, was killed, or never ran.
	return deploy.Status{Diagnostics: joinDiag(outcome, clip(a.Diagnostics, maxDiagnostics))}
}

// Kill implements deploy.Deployer: it asks the RM to kill the application,
// repeating the request until the RM reports it KILLED (the first answer is
// 202 with the current state, HADOOP_PROTOCOLS.md §12.3), and removes its
// staging directory. An application that is gone or ended already is not
// an error.
func (d *Deployer) Kill(ctx context.Context, h deploy.Handle) error {
	a, err := d.resolve(ctx, h)
	switch {
	case errors.Is(err, errNotSubmitted), errors.Is(err, errUnknownApp):
		d.cleanup(ctx, h.ApplicationID)
		return nil
	case err != nil:
		return fmt.Errorf("yarn: kill %s: %w", describe(h), err)
	}
	log := d.log.WithFields(logrus.Fields{"app": a.ID, "job": h.JobID, "attempt": h.Attempt})
	kctx, cancel := context.WithTimeout(ctx, d.cfg.KillTimeout)
	defer cancel()
	state, err := d.client.KillAndWait(kctx, a.ID, "killed by the tidewatch daemon", d.cfg.KillPoll)
	d.cache.forget(a.ID)
	if err != nil && !errors.Is(err, rm.ErrNotFound) {
		return fmt.Errorf("yarn: kill %s: %w", a.ID, err)
	}
	log.WithField("state", state).Info("killed job master application")
	d.cleanup(ctx, a.ID)
	return nil
}

// cleanup removes an application's staging directory. A failure is logged:
// it leaves files behind but changes nothing about the deployment.
func (d *Deployer) cleanup(ctx context.Context, appID string) {
	if appID == "" {
		return
	}
	if err := d.stager.Cleanup(ctx, appID); err != nil {
		d.log.WithError(err).WithField("app", appID).Warn("could not remove the staging directory")
	}
}

// Logs implements deploy.Deployer. The job master writes jobmaster.log into
// its container's log directory on the NodeManager; without log aggregation
// there is no copy to stream, so Logs returns a description of the
// application with the links to its logs instead of the log itself.
func (d *Deployer) Logs(ctx context.Context, h deploy.Handle, tail int64) (io.ReadCloser, error) {
	a, err := d.resolve(ctx, h)
	var b strings.Builder
	switch {
	case errors.Is(err, errNotSubmitted):
		fmt.Fprintf(&b, "No YARN application was submitted for deployment %d of job %s: the daemon stopped before it submitted one.\n", h.Attempt, h.JobID)
	case errors.Is(err, errUnknownApp):
		fmt.Fprintf(&b, "YARN application %s is unknown to the ResourceManager (restarted without recovery, or evicted long after it ended).\n", h.ApplicationID)
	case err != nil:
		return nil, fmt.Errorf("yarn: logs of %s: %w", describe(h), err)
	default:
		var attempts []rm.AppAttempt
		if as, err := d.client.Attempts(ctx, a.ID); err == nil {
			attempts = as
		}
		writeLogsText(&b, a, attempts)
	}
	s := b.String()
	if tail > 0 && int64(len(s)) > tail {
		s = s[int64(len(s))-tail:]
	}
	return io.NopCloser(strings.NewReader(s)), nil
}

func writeLogsText(b *strings.Builder, a *rm.Application, attempts []rm.AppAttempt) {
	fmt.Fprintf(b, "YARN application %s (%s)\n", a.ID, a.Name)
	fmt.Fprintf(b, "state:        %s, final status %s\n", a.State, a.FinalStatus)
	if a.User != "" || a.Queue != "" {
		fmt.Fprintf(b, "user, queue:  %s, %s\n", a.User, a.Queue)
	}
	if a.TrackingURL != "" {
		fmt.Fprintf(b, "tracking URL: %s\n", a.TrackingURL)
	}
	if a.AMContainerLogs != "" {
		fmt.Fprintf(b, "AM logs:      %s\n", a.AMContainerLogs)
	}
	for _, at := range attempts {
		if at.LogsLink != "" {
			fmt.Fprintf(b, "attempt %d:    %s (container %s on %s)\n", at.ID, at.LogsLink, at.ContainerID, at.NodeID)
		}
	}
	if diag := strings.TrimSpace(a.Diagnostics); diag != "" {
		b.WriteString("diagnostics:\n")
		for line := range strings.SplitSeq(diag, "\n") {
			b.WriteString("  " + line + "\n")
		}
	}
	fmt.Fprintf(b, "\nThe job master logs to jobmaster.log in its AM container's log directory on the NodeManager.\n"+
		"The daemon cannot stream it: open the AM logs link above (one per attempt), or, with log\n"+
		"aggregation enabled, after the application ended: yarn logs -applicationId %s -log_files jobmaster.log\n", a.ID)
}

func describe(h deploy.Handle) string {
	if h.ApplicationID != "" {
		return h.ApplicationID
	}
	return fmt.Sprintf("deployment %d of job %s", h.Attempt, h.JobID)
}

// AppFacts are what YARN knows about one application, for the monitor.
type AppFacts struct {
	Attempts          int
	Queue             string
	QueueUsedRatio    float64 // the application's share of its queue
	RunningContainers int64
}

// Facts reads an application's facts: its report from the cycle's list (or
// one report) and its attempts (one request).
func (d *Deployer) Facts(ctx context.Context, appID string) (AppFacts, error) {
	a, err := d.cache.app(ctx, appID)
	if err != nil {
		return AppFacts{}, err
	}
	atts, err := d.client.Attempts(ctx, appID)
	if err != nil {
		return AppFacts{}, err
	}
	return AppFacts{Attempts: len(atts), Queue: a.Queue, QueueUsedRatio: a.QueueUsagePercent / 100, RunningContainers: a.RunningContainers}, nil
}
