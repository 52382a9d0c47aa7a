// Package ipc is a Hadoop IPC client (RPC version 9, protobuf engine) for the
// YARN protocols an ApplicationMaster speaks: the connection preamble,
// int32-length framing of varint-delimited protobufs, SASL authentication
// (TOKEN with DIGEST-MD5 qop=auth, or SIMPLE without SASL), the connection
// context, and calls multiplexed by call id over one TCP connection with one
// reader goroutine (HADOOP_PROTOCOLS.md §4, §5).
//
// A Client owns at most one connection at a time. It connects on the first
// call, pings the server when the connection has been idle for
// Options.PingInterval, and after the connection breaks it reconnects on the
// next call. It never resends a call: a call in flight when the connection
// breaks fails, because YARN calls such as allocate are not idempotent.
//
// Server errors become *RemoteError (use errors.As); a FATAL status also
// breaks the connection. SASL qop auth-int and auth-conf (the cluster setting
// hadoop.rpc.protection=integrity or privacy) are refused with
// ErrUnsupportedQOP.
//
// The frame reader and writer (frame.go) are shared with the test server in
// package ipctest.
package ipc
