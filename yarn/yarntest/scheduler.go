package yarntest

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest"
	"github.com/tidewatch/tidewatch/yarn/nm"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// The fake cluster's one node and its scheduler limits. Capabilities are
// normalized as the CapacityScheduler does (§6.4.3): memory rounded up to a
// multiple of the minimum allocation, at least one vcore.
const (
	nodeHost        = "127.0.0.1"
	nmHTTPPort      = 8042 // shown in node_http_address and NM_HTTP_PORT; nothing listens there
	minAllocationMB = 1024
	maxAllocationMB = 8192
	maxVCores       = 8
	// containerExpiry is yarn.resourcemanager.rm.container-allocation.expiry-interval-ms,
	// written into container tokens; the fake does not reclaim unstarted
	// containers when it passes.
	containerExpiry = 10 * time.Minute
	nmKeyID         = 1117630088
	containerKeyID  = -1892156411
)

const (
	classInvalidResourceRequest  = "org.apache.hadoop.yarn.exceptions.InvalidResourceRequestException"
	classInvalidContainerRelease = "org.apache.hadoop.yarn.exceptions.InvalidContainerReleaseException"
)

// askKey identifies a ResourceRequest. As in YARN, an ask replaces the
// outstanding count of its key; the scheduler decrements it per allocation.
type askKey struct {
	priority int32
	name     string
	memoryMB int64
	vcores   int32
}

// attemptSched is the scheduler's state of one application attempt.
type attemptSched struct {
	asks map[askKey]int32
	// lastID and last implement the responseId protocol (§6.4.2): last is
	// the cached response answered again to a duplicate request.
	lastID int32
	last   *hadoopproto.AllocateResponseProto
	// nmToken is the attempt's NM token for the node, issued with its first
	// container; nil before.
	nmToken *token.Token
	// ready are containers allocated since the last call, with the NM
	// tokens issued for them, for the next response.
	ready       []*hadoopproto.ContainerProto
	readyTokens []*hadoopproto.NMTokenProto
	// completed are statuses not yet reported to the AM.
	completed []*hadoopproto.ContainerStatusProto
}

// allocate is ApplicationMasterService.allocate: the responseId protocol,
// releases, asks, allocation up to Options.MaxContainers live worker
// containers per application, NM tokens and completed containers.
//
// Allocation is asynchronous, as on a real RM, where the scheduler assigns
// containers on NodeManager heartbeats between the AM's calls: a call
// returns the containers allocated since the previous one, and after
// answering, the scheduler allocates for the outstanding asks, so a
// container asked for in call N is delivered in call N+1. An ask replaces
// the outstanding count of its key (§6.4.3), so an AM that re-sends an ask
// before it has seen the containers for it gets surplus containers. Only
// the ANY ("*") request of a priority and capability gives containers: node
// and rack requests are accepted and ignored, there being one node.
func (c *Cluster) allocate(_ context.Context, call ipctest.CallInfo, req *hadoopproto.AllocateRequestProto) (*hadoopproto.AllocateResponseProto, error) {
	ct, err := c.byUser(call.User)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ct.registered {
		return nil, exception(amrm.ClassNotRegistered, "AM is not registered for known application attempt: "+call.User)
	}
	s := &ct.sched
	switch id := req.GetResponseId(); {
	case s.last != nil && (id+1)&0x7fffffff == s.lastID:
		return s.last, nil
	case id != s.lastID:
		return nil, exception(amrm.ClassInvalidAMRequest, fmt.Sprintf(
			"Invalid responseId in AllocateRequest from application attempt: %s, expect responseId to be %d but get %d", ct.attempt, s.lastID, id))
	}
	asks := make(map[askKey]int32, len(req.GetAsk()))
	for _, rr := range req.GetAsk() {
		k, n, err := normalizeAsk(rr)
		if err != nil {
			return nil, err
		}
		asks[k] = n
	}
	var release []*worker
	for _, id := range req.GetRelease() {
		w := c.workers[hadoopproto.ContainerIDString(id)]
		if w == nil || w.attempt != ct.attempt {
			return nil, exception(classInvalidContainerRelease, fmt.Sprintf(
				"Cannot release container : %s not belonging to this application attempt : %s", hadoopproto.ContainerIDString(id), ct.attempt))
		}
		release = append(release, w)
	}

	for k, n := range asks {
		if n == 0 {
			delete(s.asks, k)
		} else {
			s.asks[k] = n
		}
	}
	for _, w := range release {
		c.stopLocked(w, nm.ExitAborted, "Container released by application")
	}
	resp := &hadoopproto.AllocateResponseProto{
		ResponseId:      proto.Int32((s.lastID + 1) & 0x7fffffff),
		NumClusterNodes: proto.Int32(1),
	}
	resp.AllocatedContainers, resp.NmTokens, s.ready, s.readyTokens = s.ready, s.readyTokens, nil, nil
	if !ct.finished && !ct.ended {
		if err := c.scheduleLocked(ct); err != nil {
			return nil, err
		}
		free := int64(c.opts.MaxContainers - c.liveLocked(ct.app))
		resp.Limit = &hadoopproto.ResourceProto{Memory: proto.Int64(free * minAllocationMB), VirtualCores: proto.Int32(int32(free))}
	} else {
		// As after unregistering on a real RM: success, headroom 0.
		resp.Limit = &hadoopproto.ResourceProto{Memory: proto.Int64(0), VirtualCores: proto.Int32(0)}
	}
	resp.CompletedContainerStatuses, s.completed = s.completed, nil
	s.last, s.lastID = resp, resp.GetResponseId()
	return resp, nil
}

// scheduleLocked allocates containers for the attempt's outstanding ANY
// asks, up to Options.MaxContainers live ones, for its next allocate call.
// The NM token for the node goes with the first container on it.
func (c *Cluster) scheduleLocked(ct *container) error {
	s := &ct.sched
	for _, k := range anyAsks(s.asks) {
		for s.asks[k] > 0 && c.liveLocked(ct.app) < c.opts.MaxContainers {
			s.ready = append(s.ready, c.newWorkerLocked(ct, k))
			if s.asks[k]--; s.asks[k] == 0 {
				delete(s.asks, k)
			}
			if s.nmToken == nil {
				t, err := c.newNMTokenLocked(ct)
				if err != nil {
					return err
				}
				s.nmToken = &t
				s.readyTokens = append(s.readyTokens, &hadoopproto.NMTokenProto{NodeId: c.nodeID(), Token: t.Proto()})
			}
		}
	}
	return nil
}

// normalizeAsk validates a ResourceRequest and normalizes its capability.
func normalizeAsk(rr *hadoopproto.ResourceRequestProto) (askKey, int32, error) {
	mem, vc := rr.GetCapability().GetMemory(), rr.GetCapability().GetVirtualCores()
	if mem < 0 || mem > maxAllocationMB || vc < 0 || vc > maxVCores || rr.GetNumContainers() < 0 {
		return askKey{}, 0, exception(classInvalidResourceRequest, fmt.Sprintf(
			"Invalid resource request: <memory:%d, vCores:%d> x %d, maximum allowed allocation=<memory:%d, vCores:%d>",
			mem, vc, rr.GetNumContainers(), maxAllocationMB, maxVCores))
	}
	if mem < minAllocationMB {
		mem = minAllocationMB
	}
	mem = (mem + minAllocationMB - 1) / minAllocationMB * minAllocationMB
	vc = max(vc, 1)
	return askKey{priority: rr.GetPriority().GetPriority(), name: rr.GetResourceName(), memoryMB: mem, vcores: vc}, rr.GetNumContainers(), nil
}

// anyAsks returns the keys of the ANY requests, highest priority (lowest
// number) first.
func anyAsks(asks map[askKey]int32) []askKey {
	var ks []askKey
	for k := range asks {
		if k.name == "*" {
			ks = append(ks, k)
		}
	}
	sort.Slice(ks, func(i, j int) bool {
		a, b := ks[i], ks[j]
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		if a.memoryMB != b.memoryMB {
			return a.memoryMB < b.memoryMB
		}
		return a.vcores < b.vcores
	})
	return ks
}

// liveLocked counts an application's worker containers that have not
// completed.
func (c *Cluster) liveLocked(app string) int {
	n := 0
	for _, w := range c.workers {
		if w.app == app && !w.done {
			n++
		}
	}
	return n
}

func (c *Cluster) nodeID() *hadoopproto.NodeIdProto {
	return &hadoopproto.NodeIdProto{Host: proto.String(nodeHost), Port: proto.Int32(c.nmPort)}
}

func (c *Cluster) nodeAddr() string { return fmt.Sprintf("%s:%d", nodeHost, c.nmPort) }

// newWorkerLocked allocates the application's next container to the attempt.
// Sequence numbers continue per application across attempts; the AM
// containers have 1.
func (c *Cluster) newWorkerLocked(ct *container, k askKey) *hadoopproto.ContainerProto {
	seq := max(c.nextSeq[ct.app], 2)
	c.nextSeq[ct.app] = seq + 1
	id := &hadoopproto.ContainerIdProto{AppAttemptId: ct.attemptProto, Id: proto.Int64(seq)}
	name := hadoopproto.ContainerIDString(id)
	res := &hadoopproto.ResourceProto{Memory: proto.Int64(k.memoryMB), VirtualCores: proto.Int32(k.vcores)}
	prio := &hadoopproto.PriorityProto{Priority: proto.Int32(k.priority)}
	now := time.Now()
	ident, err := proto.Marshal(&hadoopproto.ContainerTokenIdentifierProto{
		ContainerId: id, NmHostAddr: proto.String(c.nodeAddr()), AppSubmitter: proto.String(ct.user),
		Resource: res, ExpiryTimeStamp: proto.Int64(now.Add(containerExpiry).UnixMilli()), MasterKeyId: proto.Int32(containerKeyID),
		RmIdentifier: proto.Int64(ct.attemptProto.GetApplicationId().GetClusterTimestamp()), Priority: prio,
		CreationTime: proto.Int64(now.UnixMilli()), ContainerType: hadoopproto.ContainerTypeProto_TASK.Enum(),
	})
	if err != nil {
		panic(fmt.Sprintf("yarntest: marshal container token identifier: %v", err)) // cannot happen: all fields valid
	}
	tok := token.Token{Identifier: ident, Password: randomBytes(20), Kind: token.KindContainer, Service: c.nodeAddr()}
	c.workers[name] = &worker{
		id: id, name: name, app: ct.app, attempt: ct.attempt, resource: res,
		token: tok, dir: filepath.Join(c.opts.Dir, name),
	}
	return &hadoopproto.ContainerProto{
		Id: id, NodeId: c.nodeID(), NodeHttpAddress: proto.String(fmt.Sprintf("%s:%d", nodeHost, nmHTTPPort)),
		Resource: res, Priority: prio, ContainerToken: tok.Proto(),
	}
}

// newNMTokenLocked issues the attempt's NM token for the node; the NM
// authenticates it as the attempt id string.
func (c *Cluster) newNMTokenLocked(ct *container) (token.Token, error) {
	ident, err := proto.Marshal(&hadoopproto.NMTokenIdentifierProto{
		AppAttemptId: ct.attemptProto, NodeId: c.nodeID(), AppSubmitter: proto.String(ct.user), KeyId: proto.Int32(nmKeyID),
	})
	if err != nil {
		return token.Token{}, fmt.Errorf("yarntest: NM token for %s: %w", ct.attempt, err)
	}
	t := token.Token{Identifier: ident, Password: randomBytes(20), Kind: token.KindNM, Service: c.nodeAddr()}
	c.nmTokens[string(ident)] = ct
	return t, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}
