// Package connectors holds the sources and sinks jobs read from and write to,
// each behind a plain config struct with Validate and a factory producing the
// flow.SourceFactory or flow.SinkFactory the engine drives:
//
//   - Datagen: a deterministic, replayable, rate-paced generator.
//   - File source: JSON lines or CSV from local files, globs or HDFS, bounded
//     or tailing, resumable from exact byte offsets.
//   - Ingest: an HTTP endpoint appending accepted records durably to a local
//     log, and the source that replays that log from checkpointed offsets.
//   - File sink: exactly-once part files (in progress → pending → committed),
//     local or HDFS.
//   - Stdout sink (at-least-once) and webhook sink (exactly-once for receivers
//     that honour the Idempotency-Key header).
//
// Delivery guarantees and file layouts are described in docs/CONNECTORS.md.
package connectors
