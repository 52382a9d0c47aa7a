// Package yarn is the client side of Hadoop YARN and HDFS for Tidewatch: the
// ResourceManager REST client, HDFS staging, Hadoop IPC with SASL, the
// ApplicationMaster and NodeManager protocols, and token files.
//
// It has no code in this build; the daemon deploys jobs as local processes
// only (deployer: local).
package yarn
