// Package jobrunner is Tidewatch's stream runtime for one job: the job spec,
// the pipeline (source, watermarks, windows, sink), the checkpoint
// coordinator and the job master's Flink-shaped REST API. It implements the
// `tidewatch am` and `tidewatch run` roles.
//
// The current runtime executes a single chained pipeline on one goroutine:
//
//	Source: datagen -> KeyBy -> TumblingWindow(count) -> Sink: file|stdout
//
// Event time comes from the records; the watermark is bounded
// out-of-orderness and advances record by record, so the output of a job is a
// pure function of its spec (and synthetic start time). Checkpoints are taken
// on the pipeline goroutine between records, so a snapshot is always
// consistent without locks on the hot path. Each checkpoint stores the source
// offset, the open windows, the watermark and the sink's committed file
// length; restoring truncates the output file to that length and replays the
// deterministic source from the offset, which makes the file sink
// exactly-once.
//
// RunMaster holds an exclusive flock on the checkpoint directory for its whole
// life, so two copies of a job can never run against the same state.
//
// Features named in the spec reference (docs/JOBS.md) but not implemented yet
// (parallelism > 1, processing time, sliding/session windows, other
// aggregates, other sources and sinks) are rejected by ParseSpec rather than
// silently ignored.
package jobrunner
