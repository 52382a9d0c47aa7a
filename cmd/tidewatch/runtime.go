package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/tidewatch/tidewatch/jobrunner"
	"github.com/tidewatch/tidewatch/yarn/am"
)

// runtimeFlags are the flags shared by `am` and `run`.
type runtimeFlags struct {
	opts      jobrunner.MasterOptions
	logFormat string
}

func (f *runtimeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.opts.WorkDir, "work-dir", f.opts.WorkDir, "directory for "+jobrunner.JobMasterFile+" and "+jobrunner.ResultFile)
	fl.StringVar(&f.opts.CheckpointDir, "checkpoint-dir", "", "checkpoint directory (default <work-dir>/checkpoints)")
	fl.StringVar(&f.opts.Listen, "listen", f.opts.Listen, "REST API listen address")
	fl.StringVar(&f.opts.Restore, "restore", f.opts.Restore, `"latest" checkpoint, "none", or a checkpoint/savepoint directory`)
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
}

// logger builds the job master's logger on w.
func (f *runtimeFlags) logger(w io.Writer) (*logrus.Entry, error) {
	l := logrus.New()
	l.SetOutput(w)
	switch f.logFormat {
	case "text":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, fmt.Errorf("--log-format: must be text or json, got %q", f.logFormat)
	}
	return logrus.NewEntry(l).WithField("component", "jobmaster"), nil
}

// newAMCommand is `tidewatch am`: the job master of one job, as started by a
// deployer (YARN AM container or local child process).
func newAMCommand() *cobra.Command {
	f := &runtimeFlags{opts: jobrunner.DefaultMasterOptions()}
	f.opts.SetMemoryLimit = true // a process of its own
	cmd := &cobra.Command{
		Use:   "am",
		Short: "Run the job master of one job",
		Long: `Run the job master of one job: restore its latest checkpoint, run it,
serve its Flink-compatible REST API, and write ` + jobrunner.JobMasterFile + ` and ` + jobrunner.ResultFile + `
into the work directory. Exits non-zero if the job fails or is already running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := f.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			f.opts.Log = log
			if err := f.opts.Validate(); err != nil {
				return err
			}
			cmd.SilenceUsage = true
			if am.InContainer(os.Getenv) {
				return runInYARN(cmd.Context(), f.opts)
			}
			return jobrunner.RunMaster(cmd.Context(), f.opts)
		},
	}
	cmd.Flags().StringVar(&f.opts.SpecFile, "spec", "", "job spec file (YAML or JSON)")
	cmd.Flags().StringVar(&f.opts.JobID, "job-id", "", "job id, 32 lower-case hex characters (generated if empty)")
	cmd.Flags().IntVar(&f.opts.Attempt, "attempt", 1, "deployment attempt of the job, 1 for the first (reported as restarts)")
	_ = cmd.MarkFlagRequired("spec")
	f.register(cmd)
	return cmd
}

// newRunCommand is `tidewatch run FILE`: one job in this process, for
// development.
func newRunCommand() *cobra.Command {
	f := &runtimeFlags{opts: jobrunner.DefaultMasterOptions()}
	f.opts.SetMemoryLimit = true // a process of its own
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run one job in this process (no daemon, no YARN)",
		Long: `Run the job described by FILE in this process until it finishes (bounded
source) or is interrupted (Ctrl-C cancels it after a final checkpoint).
By default it resumes from the newest checkpoint in the checkpoint directory;
use --restore none to start over.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := f.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			f.opts.SpecFile = args[0]
			f.opts.Log = log
			f.opts.Started = func(info jobrunner.MasterInfo) {
				fmt.Fprintf(cmd.ErrOrStderr(), "job %s: REST API at %s (metrics at %s/metrics)\n", info.JobID, info.URL, info.URL)
			}
			if err := f.opts.Validate(); err != nil {
				return err
			}
			cmd.SilenceUsage = true
			return jobrunner.RunMaster(cmd.Context(), f.opts)
		},
	}
	f.register(cmd)
	return cmd
}

// workerFinishLimit is how long the AM of a bounded job that has read all
// its input waits for the workers to read theirs; workerStopLimit how long
// the AM of a stopped job waits for its workers' final checkpoints.
const (
	workerFinishLimit = 30 * time.Minute
	workerStopLimit   = 2 * time.Minute
)

// runInYARN runs the job master as a YARN ApplicationMaster: it registers
// with the scheduler once its REST endpoint serves (the tracking URL),
// heartbeats, and unregisters with the job's result when it ends. If
// registering fails the job master stops and exits non-zero, and YARN starts
// the next attempt. If the RM says the attempt is gone, the job master stops
// the job and its workers and exits non-zero without unregistering.
func runInYARN(parent context.Context, opts jobrunner.MasterOptions) error {
	ctx, cancel := context.WithCancel(parent)
	// YARN restarts the AM with the same command line; from the second
	// attempt on, checkpoints taken since the first are the state to resume.
	opts.PreferNewerCheckpoint = am.ContainerAttempt(os.Getenv(am.EnvContainerID)) >= 2
	defer cancel()
	// A job whose keyed parallelism exceeds the AM's vcores runs its first
	// share here and the others in worker containers (jobrunner.Layout).
	baseCheckpointDir := opts.CheckpointDir
	opts, layout, err := jobrunner.InContainer(opts, 0)
	if err != nil {
		return err
	}
	var tracking string
	var workers *am.WorkerOptions
	var workersFailed atomic.Pointer[error]
	if layout.Containers > 1 {
		if opts.Restore != jobrunner.RestoreLatest && opts.Restore != jobrunner.RestoreNone {
			return fmt.Errorf("am: --restore %s: a savepoint cannot restore a job spread over %d containers; it resumes from each container's checkpoints", opts.Restore, layout.Containers)
		}
		memoryMB := (int64(layout.Memory) + 1<<20 - 1) >> 20
		if workers, err = workerOptions(opts, layout, baseCheckpointDir, memoryMB, func() string { return tracking }); err != nil {
			return err
		}
		workers.Failed = func(err error) {
			workersFailed.Store(&err)
			opts.Log.WithError(err).Error("giving up on worker containers: stopping the job")
			cancel()
		}
		opts.Log.WithFields(logrus.Fields{"containers": layout.Containers, "subtasksPerContainer": layout.Slots}).Info("the job runs in worker containers too")
	}
	var session atomic.Pointer[am.Session]
	var regErr error
	var attemptGone atomic.Pointer[error]
	if workers != nil {
		opts.Workers = func() any {
			if s := session.Load(); s != nil {
				return s.Workers()
			}
			return nil
		}
		opts.RegisterWorker = func(k int, containerID, url string) error {
			s := session.Load()
			if s == nil {
				return errors.New("am: not registered with the RM yet")
			}
			return s.RegisterWorker(k, containerID, url)
		}
	}
	opts.Started = func(info jobrunner.MasterInfo) {
		var err error
		tracking, err = am.TrackingURL(info.URL, am.AdvertiseHost(os.Getenv))
		var port int32
		if err == nil {
			port, err = am.Port(info.URL)
		}
		if err == nil {
			var s *am.Session
			s, err = am.Start(ctx, tracking, am.Options{Log: opts.Log, RPCPort: port, Workers: workers, OnShutdown: func(err error) {
				attemptGone.Store(&err)
				opts.Log.WithError(err).Error("the RM ended this application attempt: stopping the job")
				cancel()
			}})
			session.Store(s)
		}
		if err != nil {
			regErr = err
			opts.Log.WithError(err).Error("cannot run as ApplicationMaster: stopping")
			cancel()
		}
	}
	opts.Finished = func(res jobrunner.Result) {
		session := session.Load()
		if session == nil {
			return
		}
		if parent.Err() != nil {
			// Stopped by a signal: the NodeManager stops containers of a
			// killed application (or a preempted one) that way. Leave the
			// outcome to YARN.
			session.Close()
			return
		}
		r := am.Result{State: string(res.State), Savepoint: res.Savepoint, Error: res.Error}
		// A bounded job is done when every container has read all its
		// input; otherwise the job's end ends the workers.
		if layout.Bounded && res.State == jobrunner.StatusFinished {
			if err := session.WaitWorkers(context.Background(), workerFinishLimit); err != nil {
				r.State, r.Error = string(jobrunner.StatusFailed), err.Error()
			}
		} else if res.State == jobrunner.StatusFinished {
			// An unbounded job stopped: each worker sees the FINISHED job
			// master, takes a final checkpoint and exits, which can take
			// longer than the NodeManager's grace after SIGTERM.
			if !session.DrainWorkers(context.Background(), workerStopLimit) {
				opts.Log.WithField("limit", workerStopLimit).Warn("workers did not end within the limit after the stop; stopping them")
			}
		}
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := session.StopWorkers(sctx); err != nil {
			opts.Log.WithError(err).Warn("stopping worker containers")
		}
		if attemptGone.Load() != nil {
			// The attempt is gone: there is no registration to end.
			session.Close()
			return
		}
		fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer fcancel()
		if err := workersFailed.Load(); err != nil {
			r.State, r.Error = string(jobrunner.StatusFailed), (*err).Error()
		}
		if err := session.Finish(fctx, r); err != nil {
			opts.Log.WithError(err).Error("unregistering from the RM")
		}
	}
	err = jobrunner.RunMaster(ctx, opts)
	if regErr != nil {
		return errors.Join(regErr, err)
	}
	if gone := attemptGone.Load(); gone != nil {
		return errors.Join(*gone, err)
	}
	return err
}
