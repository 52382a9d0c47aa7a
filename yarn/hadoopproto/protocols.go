package hadoopproto

// Hadoop IPC identifies a protocol by the name of its Java PB interface, sent
// in IpcConnectionContextProto.protocol and
// RequestHeaderProto.declaringClassProtocolName, and a method by its name in
// the protobuf service (RequestHeaderProto.methodName).
const (
	// ApplicationMasterProtocolName is the AM ↔ RM scheduler protocol (§6.1).
	ApplicationMasterProtocolName = "org.apache.hadoop.yarn.api.ApplicationMasterProtocolPB"
	// ContainerManagementProtocolName is the AM ↔ NodeManager protocol (§7.1).
	ContainerManagementProtocolName = "org.apache.hadoop.yarn.api.ContainerManagementProtocolPB"
	// YARNProtocolVersion is clientProtocolVersion for both YARN protocols.
	YARNProtocolVersion uint64 = 1

	MethodRegisterApplicationMaster = "registerApplicationMaster"
	MethodAllocate                  = "allocate"
	MethodFinishApplicationMaster   = "finishApplicationMaster"

	MethodStartContainers      = "startContainers"
	MethodStopContainers       = "stopContainers"
	MethodGetContainerStatuses = "getContainerStatuses"
)

// Token kinds (HADOOP_PROTOCOLS.md §3.5, §7.4).
const (
	TokenKindAMRM      = "YARN_AM_RM_TOKEN"
	TokenKindNM        = "NMToken"
	TokenKindContainer = "ContainerToken"
)
