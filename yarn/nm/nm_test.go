package nm_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest"
	"github.com/tidewatch/tidewatch/yarn/nm"
	"github.com/tidewatch/tidewatch/yarn/token"
)

var attempt = &hadoopproto.ApplicationAttemptIdProto{
	ApplicationId: &hadoopproto.ApplicationIdProto{Id: proto.Int32(6), ClusterTimestamp: proto.Int64(1795472850388)},
	AttemptId:     proto.Int32(1),
}

func nmToken(node string) token.Token {
	id, _ := proto.Marshal(&hadoopproto.NMTokenIdentifierProto{
		AppAttemptId: attempt, NodeId: &hadoopproto.NodeIdProto{Host: proto.String("localhost"), Port: proto.Int32(45454)},
		AppSubmitter: proto.String("root"), KeyId: proto.Int32(1117630088),
	})
	return token.Token{Identifier: id, Password: []byte("nm-password"), Kind: token.KindNM, Service: "127.0.0.1:45454"}
}

func container(seq int64) *hadoopproto.ContainerProto {
	id := &hadoopproto.ContainerIdProto{AppAttemptId: attempt, Id: proto.Int64(seq)}
	return &hadoopproto.ContainerProto{
		Id:     id,
		NodeId: &hadoopproto.NodeIdProto{Host: proto.String("localhost"), Port: proto.Int32(45454)},
		ContainerToken: (token.Token{Identifier: []byte(hadoopproto.ContainerIDString(id)), Password: []byte("ct"),
			Kind: token.KindContainer, Service: "127.0.0.1:45454"}).Proto(),
	}
}

// fakeNM follows ContainerManagerImpl as §7 and §12.3 describe: the user must
// be the NM token's attempt, a container starts once ("Attempt to relaunch
// the same container"), statuses of running containers are C_RUNNING with
// exit -1000, a stopped one completes with -105, and stopping an exited
// container succeeds.
type fakeNM struct {
	srv     *ipctest.Server
	mu      sync.Mutex
	running map[string]*hadoopproto.ContainerLaunchContextProto
	stopped map[string]bool
}

func newFakeNM(t *testing.T, tok token.Token) *fakeNM {
	f := &fakeNM{running: map[string]*hadoopproto.ContainerLaunchContextProto{}, stopped: map[string]bool{}}
	srv, err := ipctest.NewServer(ipctest.Options{Secrets: func(identifier []byte) ([]byte, string, error) {
		if string(identifier) != string(tok.Identifier) {
			return nil, "", ipctest.ErrUnknownToken
		}
		id, err := token.DecodeNMIdentifier(identifier)
		if err != nil {
			return nil, "", err
		}
		return tok.Password, id.User(), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	f.srv = srv
	p := hadoopproto.ContainerManagementProtocolName
	ipctest.Handle(srv, p, hadoopproto.MethodStartContainers, f.start)
	ipctest.Handle(srv, p, hadoopproto.MethodGetContainerStatuses, f.statuses)
	ipctest.Handle(srv, p, hadoopproto.MethodStopContainers, f.stop)
	return f
}

func failure(id *hadoopproto.ContainerIdProto, msg string) *hadoopproto.ContainerExceptionMapProto {
	return &hadoopproto.ContainerExceptionMapProto{ContainerId: id, Exception: &hadoopproto.SerializedExceptionProto{
		Message: proto.String(msg), ClassName: proto.String("org.apache.hadoop.yarn.exceptions.YarnException")}}
}

func (f *fakeNM) start(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.StartContainersRequestProto) (*hadoopproto.StartContainersResponseProto, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &hadoopproto.StartContainersResponseProto{}
	for _, r := range req.GetStartContainerRequest() {
		ct := r.GetContainerToken()
		if ct.GetKind() != token.KindContainer {
			return nil, &ipctest.Exception{Class: ipc.ClassInvalidToken, Message: "not a container token"}
		}
		cid, err := hadoopproto.ParseContainerID(string(ct.GetIdentifier()))
		if err != nil {
			return nil, &ipctest.Exception{Class: ipc.ClassInvalidToken, Message: err.Error()}
		}
		if call.User != hadoopproto.AttemptIDString(cid.GetAppAttemptId()) {
			resp.FailedRequests = append(resp.FailedRequests, failure(cid, "Unauthorized request to start container."))
			continue
		}
		key := hadoopproto.ContainerIDString(cid)
		if _, dup := f.running[key]; dup || f.stopped[key] {
			resp.FailedRequests = append(resp.FailedRequests, failure(cid, "Unauthorized request to start container.\n Attempt to relaunch the same container with id "+key+"."))
			continue
		}
		f.running[key] = r.GetContainerLaunchContext()
		resp.SucceededRequests = append(resp.SucceededRequests, cid)
	}
	return resp, nil
}

func (f *fakeNM) statuses(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.GetContainerStatusesRequestProto) (*hadoopproto.GetContainerStatusesResponseProto, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &hadoopproto.GetContainerStatusesResponseProto{}
	for _, id := range req.GetContainerId() {
		key := hadoopproto.ContainerIDString(id)
		switch {
		case f.stopped[key]:
			resp.Status = append(resp.Status, &hadoopproto.ContainerStatusProto{ContainerId: id, State: hadoopproto.ContainerStateProto_C_COMPLETE.Enum(),
				ExitStatus: proto.Int32(nm.ExitKilledByAppMaster), ContainerSubState: hadoopproto.ContainerSubStateProto_CSS_DONE.Enum()})
		case f.running[key] != nil:
			resp.Status = append(resp.Status, &hadoopproto.ContainerStatusProto{ContainerId: id, State: hadoopproto.ContainerStateProto_C_RUNNING.Enum(),
				ContainerSubState: hadoopproto.ContainerSubStateProto_CSS_SCHEDULED.Enum()})
		default:
			resp.FailedRequests = append(resp.FailedRequests, failure(id, "Container "+key+" is not handled by this NodeManager"))
		}
	}
	return resp, nil
}

func (f *fakeNM) stop(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.StopContainersRequestProto) (*hadoopproto.StopContainersResponseProto, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &hadoopproto.StopContainersResponseProto{}
	for _, id := range req.GetContainerId() {
		key := hadoopproto.ContainerIDString(id)
		if f.running[key] == nil && !f.stopped[key] {
			resp.FailedRequests = append(resp.FailedRequests, failure(id, "Container "+key+" is not handled by this NodeManager"))
			continue
		}
		f.stopped[key] = true
		resp.SucceededRequests = append(resp.SucceededRequests, id)
	}
	return resp, nil
}

func TestStartStatusStop(t *testing.T) {
	tok := nmToken("localhost:45454")
	f := newFakeNM(t, tok)
	c, err := nm.New(nm.Options{Addr: f.srv.Addr(), Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c2, c3 := container(2), container(3)
	creds := (&token.Credentials{Tokens: []token.Entry{{Alias: "hdfs", Token: token.Token{Identifier: []byte{1}, Password: []byte{2}, Kind: "HDFS_DELEGATION_TOKEN", Service: "ha-hdfs:ns"}}}}).MarshalWritable()
	launch := nm.LaunchContext{
		LocalResources: map[string]nm.LocalResource{
			"job.jar": {URL: "hdfs://nn:8020/user/tw/job.jar", Size: 10, Timestamp: 1700000000000,
				Type: hadoopproto.LocalResourceTypeProto_FILE, Visibility: hadoopproto.LocalResourceVisibilityProto_APPLICATION},
		},
		Environment: map[string]string{"B": "2", "A": "1"},
		Commands:    []string{"exec", "./run.sh", "1><LOG_DIR>/stdout"},
	}
	withTokens := launch
	withTokens.Tokens = creds
	res, err := c.StartContainers(ctx, []nm.StartRequest{{Container: c2, Launch: launch}, {Container: c3, Launch: withTokens}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Succeeded) != 2 || len(res.Failed) != 0 {
		t.Fatalf("start: %+v", res)
	}
	f.mu.Lock()
	lc := f.running[hadoopproto.ContainerIDString(c2.GetId())]
	lc3 := f.running[hadoopproto.ContainerIDString(c3.GetId())]
	f.mu.Unlock()
	if lc.Tokens != nil {
		t.Errorf("tokens field sent although no credentials were given")
	}
	if string(lc3.GetTokens()) != string(creds) {
		t.Errorf("credentials blob not passed verbatim")
	}
	if e := lc.GetEnvironment(); len(e) != 2 || e[0].GetKey() != "A" || e[1].GetKey() != "B" {
		t.Errorf("environment %v", e)
	}
	u := lc.GetLocalResources()[0].GetValue().GetResource()
	if u.GetScheme() != "hdfs" || u.GetHost() != "nn" || u.GetPort() != 8020 || u.GetFile() != "/user/tw/job.jar" {
		t.Errorf("resource URL %v", u)
	}
	if strings.Join(lc.GetCommand(), " ") != "exec ./run.sh 1><LOG_DIR>/stdout" {
		t.Errorf("command %v", lc.GetCommand())
	}

	// Starting the same container again fails for that container only.
	res, err = c.StartContainers(ctx, []nm.StartRequest{{Container: c2, Launch: launch}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Message, "Attempt to relaunch the same container") || res.Failed[0].Class != "org.apache.hadoop.yarn.exceptions.YarnException" {
		t.Fatalf("duplicate start: %+v", res)
	}

	st, failed, err := c.GetContainerStatuses(ctx, []*hadoopproto.ContainerIdProto{c2.GetId(), container(9).GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].GetState() != hadoopproto.ContainerStateProto_C_RUNNING || st[0].GetExitStatus() != nm.ExitInvalid || len(failed) != 1 {
		t.Fatalf("statuses %v failed %v", st, failed)
	}
	var ce *nm.ContainerError
	if !errors.As(error(failed[0]), &ce) || !strings.Contains(ce.Error(), "container_1795472850388_0006_01_000009") {
		t.Errorf("container error %v", failed[0])
	}

	ok, failed, err := c.StopContainers(ctx, []*hadoopproto.ContainerIdProto{c2.GetId()})
	if err != nil || len(ok) != 1 || len(failed) != 0 {
		t.Fatalf("stop: %v %v %v", ok, failed, err)
	}
	st, _, err = c.GetContainerStatuses(ctx, []*hadoopproto.ContainerIdProto{c2.GetId()})
	if err != nil || st[0].GetExitStatus() != nm.ExitKilledByAppMaster || nm.ExitStatusName(st[0].GetExitStatus()) != "KILLED_BY_APPMASTER" {
		t.Fatalf("after stop: %v %v", st, err)
	}
	if f.srv.Stats().Connections != 1 {
		t.Errorf("%d connections, want one per NM", f.srv.Stats().Connections)
	}
}

func TestWrongNMTokenIsAuthError(t *testing.T) {
	tok := nmToken("localhost:45454")
	f := newFakeNM(t, tok)
	bad := tok
	bad.Password = []byte("other")
	c, err := nm.New(nm.Options{Addr: f.srv.Addr(), Token: bad})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err = c.GetContainerStatuses(ctx, []*hadoopproto.ContainerIdProto{container(2).GetId()})
	if !errors.Is(err, ipc.ErrAuth) {
		t.Fatalf("err %v, want ipc.ErrAuth", err)
	}
}

func TestURLProto(t *testing.T) {
	tests := []struct {
		in         string
		host, file string
		hasHost    bool
		port       int32
		err        bool
	}{
		{in: "hdfs://nn:8020/a/b.jar", host: "nn", hasHost: true, port: 8020, file: "/a/b.jar"},
		{in: "hdfs://nn/a", host: "nn", hasHost: true, port: -1, file: "/a"},
		{in: "file:///tmp/x", port: -1, file: "/tmp/x"},
		{in: "hdfs://ha-ns/a%20b", host: "ha-ns", hasHost: true, port: -1, file: "/a b"},
		{in: "/no/scheme", err: true},
	}
	for _, tt := range tests {
		u, err := nm.URLProto(tt.in)
		if tt.err {
			if !errors.Is(err, nm.ErrBadURL) {
				t.Errorf("%s: err %v", tt.in, err)
			}
			continue
		}
		if err != nil || (u.Host != nil) != tt.hasHost || u.GetHost() != tt.host || u.GetPort() != tt.port || u.GetFile() != tt.file {
			t.Errorf("%s: %v %v", tt.in, u, err)
		}
	}
}

func TestExitStatusNames(t *testing.T) {
	tests := map[int32]string{0: "SUCCESS", -100: "ABORTED", -102: "PREEMPTED", -105: "KILLED_BY_APPMASTER", -109: "KILLED_FOR_EXCESS_LOGS", -1000: "INVALID", 137: "exit code 137"}
	for code, want := range tests {
		if got := nm.ExitStatusName(code); got != want {
			t.Errorf("%d: %s, want %s", code, got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (nm.Options{Token: nmToken("x")}).Validate(); !errors.Is(err, nm.ErrInvalidOptions) || !strings.Contains(err.Error(), "Addr") {
		t.Errorf("no addr: %v", err)
	}
	if err := (nm.Options{Addr: "h:1", Token: token.Token{Identifier: []byte{1}, Kind: token.KindAMRM}}).Validate(); !errors.Is(err, nm.ErrInvalidOptions) || !strings.Contains(err.Error(), "Token") {
		t.Errorf("wrong kind: %v", err)
	}
}
