package jobrunner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Layout is how a job spreads over YARN containers: the AM's container is
// container 0, worker containers are 1 to Containers-1, and each runs as
// many keyed subtasks as its vcores (resources.vcores), in subtask order.
// A job whose keyed parallelism fits the AM's vcores, or that has no keyed
// stage, runs in the AM's container alone.
//
// Every container runs the whole plan: all source subtasks read all the
// input, and each container keeps the records of its own keyed subtasks'
// key groups (flow.Plan.Local). No record crosses containers, so each
// container checkpoints and restores on its own, in a directory of its own
// (CheckpointDir), and its snapshots are consistent by themselves. The price
// is that every container reads the whole input.
type Layout struct {
	Containers int
	// Slots is the keyed subtasks per container; Parallelism all of them.
	Slots, Parallelism int
	// Memory is each container's memory (resources.memory).
	Memory ByteSize
	// Bounded: the source ends by itself, and so does each container.
	Bounded bool
}

// LayoutOf is the layout of spec's job.
func LayoutOf(spec *Spec) Layout {
	p, slots := spec.WindowParallelism(), spec.Resources.VCores
	l := Layout{Containers: 1, Slots: p, Parallelism: p, Memory: spec.Resources.Memory, Bounded: spec.Bounded()}
	if !spec.Keyed() || slots < 1 || p <= slots || spec.Source.Type == SourceHTTP {
		// An http source's records arrive once, at one endpoint.
		return l
	}
	l.Containers, l.Slots = (p+slots-1)/slots, slots
	return l
}

// Subtasks is the range [start, end) of keyed subtasks container c runs.
func (l Layout) Subtasks(c int) (start, end int) {
	return min(c*l.Slots, l.Parallelism), min((c+1)*l.Slots, l.Parallelism)
}

// Local is flow.Plan.Local for container c, or nil when one container runs
// everything.
func (l Layout) Local(c int) []bool {
	if l.Containers <= 1 {
		return nil
	}
	start, end := l.Subtasks(c)
	local := make([]bool, l.Parallelism)
	for j := start; j < end; j++ {
		local[j] = true
	}
	return local
}

// CheckpointDir is container c's checkpoint directory under the job's dir
// (a local path or an hdfs:// URL). The layout is in the name, so that a
// job restarted with another layout does not restore a share that no longer
// matches its subtasks.
func (l Layout) CheckpointDir(jobDir string, c int) string {
	if l.Containers <= 1 {
		return jobDir
	}
	start, end := l.Subtasks(c)
	name := fmt.Sprintf("container-%d-subtasks-%d-%d-of-%d", c, start, end-1, l.Parallelism)
	if strings.Contains(jobDir, "://") {
		return strings.TrimSuffix(jobDir, "/") + "/" + name
	}
	return filepath.Join(jobDir, name)
}

// InContainer returns opts set up to run container c's share of the job in
// opts.SpecFile: its checkpoint directory under opts.CheckpointDir and its
// keyed subtasks. With one container, opts come back as they are.
func InContainer(opts MasterOptions, c int) (MasterOptions, Layout, error) {
	data, err := os.ReadFile(opts.SpecFile)
	if err != nil {
		return opts, Layout{}, fmt.Errorf("jobrunner: read spec: %w", err)
	}
	spec, err := ParseSpec(data, filepath.Base(opts.SpecFile))
	if err != nil {
		return opts, Layout{}, err
	}
	l := LayoutOf(spec)
	if c < 0 || c >= l.Containers {
		return opts, l, fmt.Errorf("jobrunner: container %d: the job has %d (keyed parallelism %d, %d vcores each)", c, l.Containers, l.Parallelism, l.Slots)
	}
	if l.Containers == 1 {
		return opts, l, nil
	}
	if opts.CheckpointDir == "" {
		opts.CheckpointDir = opts.withDefaults().CheckpointDir
	}
	opts.CheckpointDir = l.CheckpointDir(opts.CheckpointDir, c)
	opts.Local = l.Local(c)
	return opts, l, nil
}
