// Package deploy defines what the support layer asks of a deployer: start one
// deployment of a job, observe it, kill it, and read its logs. The local-process
// deployer (package local) and the YARN deployer implement it.
package deploy

import (
	"context"
	"errors"
	"io"
)

// ErrUnknownHandle is returned when a handle does not describe anything the
// deployer can find (for example a process that is gone and left no trace).
var ErrUnknownHandle = errors.New("deploy: unknown deployment handle")

// Request asks for one deployment (one attempt) of a job.
type Request struct {
	JobID         string // 32 lower-case hex, also the job master's job id
	Attempt       int    // 1 for the first deployment of the job, then 2, 3, ...
	Spec          []byte // the job spec as submitted
	CheckpointDir string // stable across attempts of the job
	Restore       string // "latest", "none" or a checkpoint/savepoint path
}

// Handle is what the store keeps about a running deployment, so that a daemon
// restarted later can find it again. Only the fields of the deployer in use are set.
type Handle struct {
	Deployer      string `json:"deployer"`
	PID           int    `json:"pid,omitempty"`
	ApplicationID string `json:"applicationId,omitempty"`
	WorkDir       string `json:"workDir,omitempty"`
	LogPath       string `json:"logPath,omitempty"`
	// JobID and Attempt name the deployment (the Request's). They are known
	// before anything starts, so a deployer that labels what it starts with
	// them (the YARN deployer's application tags) finds a deployment whose
	// other fields were never stored because the daemon stopped mid-deploy.
	JobID   string `json:"jobId,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
}

// Status is one observation of a deployment.
type Status struct {
	// Alive reports that the deployment's process or application still exists.
	Alive bool
	// Endpoint is the job master's REST base URL, empty until it is known.
	Endpoint string
	// FinalState is the job master's own record of how the job ended
	// (FINISHED, CANCELED or FAILED), empty if it ended without one (killed, crashed).
	FinalState string
	// Savepoint is the path of the final savepoint, when the job ended with one.
	Savepoint string
	// Diagnostics says why the deployment ended, when it has.
	Diagnostics string
}

// CycleAware is implemented by a deployer that observes all its deployments
// in one batch (the YARN deployer lists the ResourceManager's applications
// once instead of asking for one report per job). The watcher calls
// BeginCycle at the start of each watch cycle, before it observes every
// deployment; observations between cycles may be served from the batch.
type CycleAware interface {
	BeginCycle()
}

// Deployer starts and tracks deployments of jobs.
type Deployer interface {
	// Name is the deployer's kind, stored with every handle it returns.
	Name() string
	// Deploy starts one deployment and returns its handle once it has started.
	Deploy(ctx context.Context, req Request) (Handle, error)
	// Observe reports the current status of a deployment.
	Observe(ctx context.Context, h Handle) (Status, error)
	// Kill ends a deployment at once, without a final checkpoint.
	Kill(ctx context.Context, h Handle) error
	// Logs returns the deployment's log, at most the last tail bytes when tail > 0.
	Logs(ctx context.Context, h Handle, tail int64) (io.ReadCloser, error)
}
