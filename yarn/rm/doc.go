// Package rm is Tidewatch's client of the YARN ResourceManager REST API
// (/ws/v1/cluster, HADOOP_PROTOCOLS.md §1 and §12): new-application, submit,
// application and attempt reports, kill, listing by state, type and tag,
// cluster info, metrics, nodes and the scheduler's queues.
//
// The client follows the active RM of an HA group: a standby's 307 redirect
// is followed (the body is re-sent), a standby page or a refused connection
// moves on to the next configured RM, and retryable failures (connection
// errors, 5xx, standby) are retried with exponential backoff. A submit is
// never re-sent blindly: when it may have reached an RM the client looks for
// the application first (FindByTag).
//
// Error answers become *RemoteError with the HTTP status and the remote Java
// exception; errors.Is maps them to ErrNotFound, ErrBadRequest, ... .
// Decoders accept Jersey's JSON quirks (one-element lists written as objects,
// repeated "entry" members, numbers written as strings).
//
// Package rmtest holds a fake ResourceManager for tests.
package rm
