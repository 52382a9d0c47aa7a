package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/tidewatch/tidewatch/jobrunner"
	"github.com/tidewatch/tidewatch/supportlayer/jobmaster"
	"github.com/tidewatch/tidewatch/yarn/am"
	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/nm"
)

// newWorkerCommand is `tidewatch worker`: one worker container's share of a
// job spread over YARN containers (see jobrunner.Layout). The AM starts it.
func newWorkerCommand() *cobra.Command {
	f := &runtimeFlags{opts: jobrunner.DefaultMasterOptions()}
	f.opts.SetMemoryLimit = true
	var container int
	var master string
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker container's share of a job (started by the job's ApplicationMaster on YARN)",
		Long: `Run worker container K's keyed subtasks of the job: every container reads
the whole input and keeps the records of its own subtasks' key groups, and
checkpoints its share in a directory of its own under --checkpoint-dir.
The worker stops by itself, after a final checkpoint, when the job master at
--master reports the job CANCELED or FAILED, or FINISHED for an unbounded job
(a stop: the AM waits up to two minutes for the workers' final checkpoints),
or cannot be reached for five minutes; the AM stops any worker still running
then through its NodeManager (SIGTERM).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := f.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if container < 1 {
				return fmt.Errorf("--container: must be at least 1 (0 is the AM), got %d", container)
			}
			if master == "" {
				return errors.New("--master: the job master's URL is required")
			}
			opts, layout, err := jobrunner.InContainer(f.opts, container)
			if err != nil {
				return err
			}
			opts.Log = log.WithField("container", container)
			if err := opts.Validate(); err != nil {
				return err
			}
			cmd.SilenceUsage = true
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			go followMaster(ctx, cancel, master, opts.JobID, layout.Bounded, opts.Log)
			opts.Started = func(info jobrunner.MasterInfo) {
				go registerWithMaster(ctx, master, opts.JobID, container, info.URL, opts.Log)
			}
			return jobrunner.RunMaster(ctx, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.opts.SpecFile, "spec", "", "job spec file (YAML or JSON)")
	fl.StringVar(&f.opts.JobID, "job-id", "", "job id, 32 lower-case hex characters")
	fl.IntVar(&container, "container", 0, "this worker's container number, 1 or more")
	fl.StringVar(&master, "master", "", "URL of the job master (the AM's REST endpoint)")
	_ = cmd.MarkFlagRequired("spec")
	_ = cmd.MarkFlagRequired("job-id")
	f.register(cmd)
	return cmd
}

// masterGone is how long a worker goes on without reaching its job master.
// (When the AM's attempt ends, YARN stops the attempt's containers anyway.)
const masterGone = 5 * time.Minute

// followMaster polls the job master and cancels the worker's job (which
// ends it after a final checkpoint) once the job there is CANCELED or
// FAILED, or FINISHED for an unbounded job (stopped: the AM waits for its
// workers' final checkpoints), or the master has been unreachable for
// masterGone. (A FINISHED job master of a bounded job waits for its
// workers to read all their input.)
func followMaster(ctx context.Context, cancel context.CancelFunc, master, jobID string, bounded bool, log *logrus.Entry) {
	jm := jobmaster.New(5 * time.Second)
	lastSeen := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ov, err := jm.Job(ctx, master, jobID)
		switch {
		case err != nil && time.Since(lastSeen) > masterGone:
			log.WithError(err).Error("the job master has been unreachable too long: stopping")
			cancel()
			return
		case err != nil:
			continue
		case ov.State == string(jobrunner.StatusCanceled) || ov.State == string(jobrunner.StatusFailed) ||
			ov.State == string(jobrunner.StatusFinished) && !bounded:
			log.WithField("masterState", ov.State).Info("the job master's job has ended: stopping after a final checkpoint")
			cancel()
			return
		}
		lastSeen = time.Now()
	}
}

// registerWithMaster tells the job master this worker's REST endpoint (as
// the NodeManager's host names it), so that it lists the endpoint for the
// daemon's monitor. It retries for a minute: the AM may not be registered
// with the RM yet.
func registerWithMaster(ctx context.Context, master, jobID string, k int, listenURL string, log *logrus.Entry) {
	endpoint, err := am.TrackingURL(listenURL, am.AdvertiseHost(os.Getenv))
	if err != nil {
		log.WithError(err).Warn("cannot name this worker's REST endpoint")
		return
	}
	jm := jobmaster.New(5 * time.Second)
	for deadline := time.Now().Add(time.Minute); ; {
		err := jm.RegisterWorker(ctx, master, jobID, k, os.Getenv(am.EnvContainerID), endpoint)
		if err == nil {
			log.WithField("endpoint", endpoint).Info("registered with the job master")
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log.WithError(err).Warn("could not register with the job master; the monitor will not scrape this worker")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// workerOptions are the AM's WorkerOptions for a job laid out over
// l.Containers containers: worker k runs `tidewatch worker --container k`
// from the AM's own local resources (the staged binary and spec).
func workerOptions(opts jobrunner.MasterOptions, l jobrunner.Layout, baseCheckpointDir string, memoryMB int64, masterURL func() string) (*am.WorkerOptions, error) {
	resources, err := am.LocalResources(os.Getenv)
	if err != nil {
		return nil, err
	}
	binary := filepath.Base(os.Args[0])
	spec := filepath.Base(opts.SpecFile)
	for _, link := range []string{binary, spec} {
		if _, ok := resources[link]; !ok {
			return nil, fmt.Errorf("am: %s has no %q to give worker containers", am.EnvLocalResources, link)
		}
	}
	env := map[string]string{}
	if v := os.Getenv("HADOOP_USER_NAME"); v != "" {
		env["HADOOP_USER_NAME"] = v // the HDFS user of the checkpoints and sinks
	}
	return &am.WorkerOptions{
		Count:    l.Containers - 1,
		Resource: amrm.Resource{MemoryMB: memoryMB, VCores: int32(l.Slots)},
		Launch: func(k int) (nm.LaunchContext, error) {
			command := fmt.Sprintf("./%s worker --spec %s --job-id %s --container %d --master %s --work-dir . --checkpoint-dir %s --listen 0.0.0.0:0 --log-format json 1><LOG_DIR>/worker.log 2>&1",
				binary, spec, opts.JobID, k, masterURL(), baseCheckpointDir)
			return nm.LaunchContext{LocalResources: resources, Environment: env, Commands: []string{command}}, nil
		},
	}, nil
}
