package monitor

import (
	"github.com/tidewatch/tidewatch/monitor/cep"
	"github.com/tidewatch/tidewatch/monitor/rules"
)

// Event is one metric event as the rules see it: a cep.Event and the scope
// (job master or worker) it describes. A rule receives only events of its
// own scope.
type Event struct {
	Scope rules.Scope
	cep.Event
}

// LabelJobName is the label every event of the scraper carries with the
// job's name (e1.jobName in a rule).
const LabelJobName = "jobName"

// The metric events the scraper derives from a job master's /metrics and
// Flink metric endpoints (metricsName). Ratios are 0..1 unless the name
// says percent; rates are per second over the last scrape interval.
//
// Process metrics come twice, once as the job master (scope jobmanager,
// no tmID) and once as the worker it hosts (scope taskmanager, tmID the
// worker's id), because in this build every task runs in the job master's
// process.
const (
	// process (jobmanager and taskmanager)
	MetricHeapLoad          = "heap_load"              // Go heap in use / memory limit
	MetricHeapInUse         = "heap_inuse_bytes"       // Go heap in use
	MetricMemoryLimit       = "memory_limit_bytes"     // the job's memory limit
	MetricNonHeapLoad       = "nonheap_load"           // (RSS − heap in use) / memory limit
	MetricNonHeap           = "nonheap_bytes"          // RSS − heap in use
	MetricRSS               = "rss_bytes"              // resident set size
	MetricMemoryLoad        = "memory_load"            // RSS / memory limit
	MetricCPULoad           = "cpu_load"               // share of all cores
	MetricGCPauseMsPerSec   = "gc_pause_ms_per_second" // stop-the-world GC pause per second
	MetricGCCyclesPerSecond = "gc_cycles_per_second"   // completed GC cycles per second
	MetricGoroutines        = "goroutines"
	MetricThreads           = "threads"

	// job (jobmanager)
	MetricUp                   = "up"                             // 1 if the scrape succeeded, else 0
	MetricRestarts             = "restarts"                       // restarts before this job master
	MetricRunningJobs          = "running_jobs"                   // numRunningJobs
	MetricTaskManagers         = "task_managers"                  // numRegisteredTaskManagers
	MetricCheckpointsFailedInc = "checkpoints_failed_increase"    // failed checkpoints since the last scrape
	MetricCheckpointsDoneInc   = "checkpoints_completed_increase" // completed checkpoints since the last scrape
	MetricCheckpointDuration   = "checkpoint_duration_seconds"    // of the last completed checkpoint
	MetricWatermarkLag         = "watermark_lag_seconds"          // wall time − watermark
	MetricLateDroppedPerSecond = "late_records_dropped_per_second"

	// dataflow (taskmanager)
	MetricSourceRecordsPerSec   = "source_records_per_second" // records the sources emitted
	MetricSinkRecordsPerSec     = "sink_records_per_second"   // records the sinks received
	MetricLatencyP50            = "latency_p50_seconds"       // latency markers, over the interval
	MetricLatencyP99            = "latency_p99_seconds"
	MetricLatencyMean           = "latency_mean_seconds"
	MetricRecordsInPerSecond    = "records_in_per_second"       // key: operator; sum over subtasks
	MetricRecordsOutPerSecond   = "records_out_per_second"      // key: operator; sum over subtasks
	MetricRecordsInSkew         = "records_in_skew"             // key: operator; percent
	MetricBackpressuredMsPerSec = "backpressured_ms_per_second" // key: operator; the worst subtask
	MetricStateEntries          = "state_entries"               // key: backend (heap, pebble)

	// YARN facts (jobmanager), when the daemon provides them
	MetricYARNAMAttempts     = "yarn_am_attempts"      // application attempts so far
	MetricYARNContainerExits = "yarn_container_exits"  // key: exit status; exits since the last cycle
	MetricYARNQueueUsed      = "yarn_queue_used_ratio" // key: queue; used / configured capacity
)
