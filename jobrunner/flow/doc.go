// Package flow is the dataflow engine of the Tidewatch runtime: records and
// their schemas, operators (filter, map, flat-map, key-by, windows with
// aggregates), parallel subtasks connected by bounded channels, the shuffle by
// key group, watermarks and aligned checkpoint barriers.
//
// Records move between operators in batches. Inside a subtask, operators are
// chained: each calls the next directly, with no channel in between. Between
// subtasks, a batch is handed over a bounded channel, which is where
// backpressure comes from: a full channel blocks the sender.
package flow
