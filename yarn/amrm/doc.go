// Package amrm is the ApplicationMaster's client of YARN's
// ApplicationMasterProtocol (the RM scheduler, port 8030): register,
// allocate with the responseId protocol, finish, NM-token caching and AMRM
// token roll-over (HADOOP_PROTOCOLS.md §6). It runs over package ipc with SASL
// TOKEN authentication using the AMRM token from the container's token file.
//
// Allocate calls are strictly sequential (the client serialises them). When
// the RM answers "not registered" (RM restart or failover) the error wraps
// ErrResync: call Register again and re-send all outstanding asks. When the
// attempt is gone the error wraps ErrShutdown: exit without unregistering.
//
// SchedulerAddresses finds the scheduler address from the environment or
// $HADOOP_CONF_DIR/yarn-site.xml (§2.4).
package amrm
