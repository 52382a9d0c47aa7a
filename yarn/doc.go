// Package yarn is the client side of Hadoop YARN and HDFS for Tidewatch. Its
// subpackages speak Hadoop's wire protocols without Java:
//
//   - rm: the ResourceManager REST client (HA, retries, typed RemoteException),
//     and rm/rmtest, a fake ResourceManager for tests;
//   - hadoopconf: core-site, hdfs-site and yarn-site from HADOOP_CONF_DIR;
//   - hdfs: staging of the runtime binary and job files for local resources;
//   - ipc: Hadoop IPC (protocol 9) with SASL SIMPLE and TOKEN (DIGEST-MD5),
//     and ipc/ipctest, a test server;
//   - token: token files (HADOOP_TOKEN_FILE_LOCATION);
//   - amrm and nm: the ApplicationMaster and ContainerManagement protocols;
//   - hadoopproto: the protobuf messages those protocols use.
//
// The daemon does not deploy to YARN yet (deployer: local); these packages
// are the protocol layer that deployer and the ApplicationMaster are built on.
package yarn
