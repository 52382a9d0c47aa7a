// Package hadoopproto holds Tidewatch's own copies of the Hadoop protobuf
// definitions it speaks on the wire (Hadoop IPC v9 headers, SASL, the
// connection context, tokens and credentials, and the subset of YARN's
// ApplicationMasterProtocol and ContainerManagementProtocol messages an
// ApplicationMaster uses), and the Go code generated from them.
//
// Message names, field numbers, labels and defaults are exactly Hadoop's, as
// listed in HADOOP_PROTOCOLS.md and checked against the descriptors of Hadoop
// 3.3.6 (and byte for byte against recorded 3.3.6 traffic by yarn/ipc's
// tests). Fields that Tidewatch does not use are left out; they decode as
// unknown fields and survive re-encoding.
//
// The proto packages are Hadoop's with a "tidewatch." prefix
// (tidewatch.hadoop.common, tidewatch.hadoop.yarn) and the files register
// under yarn/hadoopproto/. Hadoop IPC never sends message type names — only
// the method name and the Java protocol name, as strings (protocols.go) — so
// this changes nothing on the wire, and it lets the binary also link other Go
// copies of Hadoop's protos (github.com/colinmarc/hdfs/v2 registers
// hadoop.common.* from "RpcHeader.proto"): the protobuf registry panics at
// init when two packages register the same file path or full name.
//
// The *.pb.go files are generated: edit the .proto files and run `make proto`.
//
// Besides the generated code the package has the protocol names and method
// names Hadoop IPC sends as strings (protocols.go), and the text forms of
// YARN ids (ids.go).
package hadoopproto
