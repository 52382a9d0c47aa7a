package amrm_test

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// fakeRM is a small scheduler behind ipctest that follows
// ApplicationMasterService as HADOOP_PROTOCOLS.md §6.4 and §12.3 describe it:
// register once, the responseId protocol with the cached duplicate, asks as
// absolute counts allocated on two nodes, NM tokens with the first container
// on a node, releases completed with exit -100, finish answering false then
// true, and AMRM token roll-over.
type fakeRM struct {
	srv *ipctest.Server

	mu          sync.Mutex
	tokens      map[string]token.Token // identifier -> token the RM accepts
	attempt     *hadoopproto.ApplicationAttemptIdProto
	registered  bool
	gone        bool // the attempt no longer exists
	last        *hadoopproto.AllocateResponseProto
	lastID      int32
	pending     int32
	seq         int64
	nodes       []string
	servedNodes map[string]bool
	completed   []*hadoopproto.ContainerStatusProto
	requests    []*hadoopproto.AllocateRequestProto
	finishCalls int
	finishReq   *hadoopproto.FinishApplicationMasterRequestProto
	rollTo      *token.Token // sent with the next allocate response
	dropNext    bool         // drop the connection instead of answering the next allocate
	command     *hadoopproto.AMCommandProto
}

func attemptID(app int32) *hadoopproto.ApplicationAttemptIdProto {
	return &hadoopproto.ApplicationAttemptIdProto{
		ApplicationId: &hadoopproto.ApplicationIdProto{Id: proto.Int32(app), ClusterTimestamp: proto.Int64(1795472850388)},
		AttemptId:     proto.Int32(1),
	}
}

// amrmToken makes an AMRM token for the attempt under a key id.
func amrmToken(att *hadoopproto.ApplicationAttemptIdProto, keyID int32, password string) token.Token {
	id, _ := proto.Marshal(&hadoopproto.AMRMTokenIdentifierProto{AppAttemptId: att, KeyId: proto.Int32(keyID)})
	return token.Token{Identifier: id, Password: []byte(password), Kind: token.KindAMRM}
}

func newFakeRM(tok token.Token) (*fakeRM, error) {
	f := &fakeRM{tokens: map[string]token.Token{string(tok.Identifier): tok}, nodes: []string{"node1:45454", "node2:45454"}, servedNodes: map[string]bool{}}
	id, err := token.DecodeAMRMIdentifier(tok.Identifier)
	if err != nil {
		return nil, err
	}
	f.attempt = id.Attempt
	srv, err := ipctest.NewServer(ipctest.Options{Secrets: f.secret})
	if err != nil {
		return nil, err
	}
	f.srv = srv
	p := hadoopproto.ApplicationMasterProtocolName
	ipctest.Handle(srv, p, hadoopproto.MethodRegisterApplicationMaster, f.register)
	ipctest.Handle(srv, p, hadoopproto.MethodAllocate, f.allocate)
	ipctest.Handle(srv, p, hadoopproto.MethodFinishApplicationMaster, f.finish)
	return f, nil
}

// secret is the AMRMTokenSecretManager: the user is the attempt id string.
func (f *fakeRM) secret(identifier []byte) ([]byte, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tokens[string(identifier)]
	if !ok {
		return nil, "", ipctest.ErrUnknownToken
	}
	id, err := token.DecodeAMRMIdentifier(identifier)
	if err != nil {
		return nil, "", err
	}
	return t.Password, id.User(), nil
}

func (f *fakeRM) exception(class, msg string) error {
	return &ipctest.Exception{Class: class, Message: msg + "\n\tat org.apache.hadoop.yarn.server.resourcemanager.ApplicationMasterService(ApplicationMasterService.java:1)"}
}

func (f *fakeRM) checkUser(call ipctest.CallInfo) error {
	if call.User != hadoopproto.AttemptIDString(f.attempt) {
		return f.exception("org.apache.hadoop.security.AccessControlException", "wrong user "+call.User)
	}
	return nil
}

func (f *fakeRM) register(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.RegisterApplicationMasterRequestProto) (*hadoopproto.RegisterApplicationMasterResponseProto, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkUser(call); err != nil {
		return nil, err
	}
	if f.gone {
		return nil, f.exception(amrm.ClassInvalidAMRequest, "Application doesn't exist in cache "+call.User)
	}
	if f.registered {
		return nil, f.exception(amrm.ClassInvalidAMRequest, "Application Master is already registered : "+hadoopproto.ApplicationIDString(f.attempt.GetApplicationId()))
	}
	f.registered, f.last, f.lastID = true, nil, 0
	return &hadoopproto.RegisterApplicationMasterResponseProto{
		MaximumCapability: &hadoopproto.ResourceProto{Memory: proto.Int64(8192), VirtualCores: proto.Int32(8)},
		Queue:             proto.String("default"),
	}, nil
}

func (f *fakeRM) allocate(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.AllocateRequestProto) (*hadoopproto.AllocateResponseProto, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkUser(call); err != nil {
		return nil, err
	}
	f.requests = append(f.requests, proto.Clone(req).(*hadoopproto.AllocateRequestProto))
	if f.gone {
		return nil, f.exception(amrm.ClassAttemptNotFound, "Application attempt "+call.User+" doesn't exist in ApplicationMasterService cache.")
	}
	if !f.registered {
		return nil, f.exception(amrm.ClassNotRegistered, "AM is not registered for known application attempt: "+call.User+" or RM had restarted after AM registered. AM should re-register.")
	}
	if f.last != nil && (req.GetResponseId()+1)&0x7fffffff == f.lastID {
		return f.last, nil // duplicate: the cached response, nothing else
	}
	if req.GetResponseId() != f.lastID {
		return nil, f.exception(amrm.ClassInvalidAMRequest, fmt.Sprintf("Invalid responseId in AllocateRequest from application attempt: %s, expect responseId to be %d but get %d", call.User, f.lastID, req.GetResponseId()))
	}
	for _, a := range req.GetAsk() {
		if a.GetResourceName() == "*" {
			f.pending = a.GetNumContainers() // absolute, replaces the previous count
		}
	}
	resp := &hadoopproto.AllocateResponseProto{
		ResponseId:      proto.Int32((f.lastID + 1) & 0x7fffffff),
		Limit:           &hadoopproto.ResourceProto{Memory: proto.Int64(4096), VirtualCores: proto.Int32(4)},
		NumClusterNodes: proto.Int32(int32(len(f.nodes))),
		AMCommand:       f.command,
	}
	for ; f.pending > 0; f.pending-- {
		f.seq++
		node := f.nodes[int(f.seq)%len(f.nodes)]
		host, port := splitNode(node)
		cid := &hadoopproto.ContainerIdProto{AppAttemptId: f.attempt, Id: proto.Int64(f.seq + 1)}
		resp.AllocatedContainers = append(resp.AllocatedContainers, &hadoopproto.ContainerProto{
			Id:       cid,
			NodeId:   &hadoopproto.NodeIdProto{Host: proto.String(host), Port: proto.Int32(port)},
			Resource: &hadoopproto.ResourceProto{Memory: proto.Int64(1024), VirtualCores: proto.Int32(1)},
			Priority: &hadoopproto.PriorityProto{Priority: proto.Int32(0)},
			ContainerToken: (token.Token{Identifier: []byte("ct-" + hadoopproto.ContainerIDString(cid)), Password: []byte("ctpw"),
				Kind: token.KindContainer, Service: "127.0.0.1:45454"}).Proto(),
		})
		if !f.servedNodes[node] {
			f.servedNodes[node] = true
			resp.NmTokens = append(resp.NmTokens, &hadoopproto.NMTokenProto{
				NodeId: &hadoopproto.NodeIdProto{Host: proto.String(host), Port: proto.Int32(port)},
				Token:  (token.Token{Identifier: []byte("nm-" + node), Password: []byte("nmpw"), Kind: token.KindNM, Service: "127.0.0.1:45454"}).Proto(),
			})
		}
	}
	for _, r := range req.GetRelease() {
		f.completed = append(f.completed, &hadoopproto.ContainerStatusProto{
			ContainerId: r, State: hadoopproto.ContainerStateProto_C_COMPLETE.Enum(),
			Diagnostics: proto.String("Container released by application"), ExitStatus: proto.Int32(-100),
		})
	}
	resp.CompletedContainerStatuses, f.completed = f.completed, nil
	if f.rollTo != nil {
		resp.AmRmToken = f.rollTo.Proto()
		f.rollTo = nil
	}
	f.last, f.lastID = resp, resp.GetResponseId()
	if f.dropNext {
		// The RM processed the request but the response is lost.
		f.dropNext = false
		f.srv.DropConnections()
	}
	return resp, nil
}

func (f *fakeRM) finish(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.FinishApplicationMasterRequestProto) (*hadoopproto.FinishApplicationMasterResponseProto, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkUser(call); err != nil {
		return nil, err
	}
	if !f.registered {
		return nil, f.exception(amrm.ClassNotRegistered, "Application Master is trying to unregister before registering for: "+call.User)
	}
	f.finishCalls++
	f.finishReq = req
	// false until the final state is "persisted": the second call.
	return &hadoopproto.FinishApplicationMasterResponseProto{IsUnregistered: proto.Bool(f.finishCalls >= 2)}, nil
}

func splitNode(n string) (string, int32) {
	var host string
	var port int32
	for i := len(n) - 1; i >= 0; i-- {
		if n[i] == ':' {
			host = n[:i]
			fmt.Sscan(n[i+1:], &port)
			break
		}
	}
	return host, port
}
