// Package token reads and writes Hadoop credentials: the token file a
// NodeManager writes at HADOOP_TOKEN_FILE_LOCATION (both the Writable "HDTS"
// format 0 and the protobuf format 1, HADOOP_PROTOCOLS.md §3.4), Hadoop's
// VInt/VLong and Text encodings, and the Token Writable. It also decodes the
// YARN token identifiers an ApplicationMaster needs (AMRM and NM tokens).
//
// Passwords are secrets: Token.String and every error of this package leave
// them out.
package token
