package amrm_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/token"
)

func setup(t *testing.T) (*fakeRM, *amrm.Client, token.Token) {
	t.Helper()
	tok := amrmToken(attemptID(1), -1003770638, "amrm-password")
	f, err := newFakeRM(tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.srv.Close() })
	o := amrm.DefaultOptions()
	o.Addrs = []string{f.srv.Addr()}
	o.Token = tok
	o.FinishRetryInterval = time.Millisecond
	c, err := amrm.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return f, c, tok
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRegisterAllocateReleaseFinish(t *testing.T) {
	f, c, _ := setup(t)
	ctx := ctxT(t)
	reg, err := c.Register(ctx, "am-host", -1, "")
	if err != nil {
		t.Fatal(err)
	}
	if reg.MaxCapability != (amrm.Resource{MemoryMB: 8192, VCores: 8}) || reg.Queue != "default" {
		t.Errorf("registration %+v", reg)
	}
	ask := amrm.Ask{Capability: amrm.Resource{MemoryMB: 1024, VCores: 1}, NumContainers: 3}
	res, err := c.Allocate(ctx, amrm.AllocateRequest{Asks: []amrm.Ask{ask}, Progress: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Allocated) != 3 || res.ResponseID != 1 {
		t.Fatalf("allocated %d containers, response id %d", len(res.Allocated), res.ResponseID)
	}
	if len(res.NMTokens) != 2 {
		t.Fatalf("%d NM tokens, want one per node", len(res.NMTokens))
	}
	for _, ct := range res.Allocated {
		node := amrm.NodeAddr(ct.GetNodeId())
		nt, ok := c.NMToken(node)
		if !ok || nt.Kind != token.KindNM || string(nt.Identifier) != "nm-"+node {
			t.Errorf("no NM token cached for %s: %v", node, nt)
		}
	}
	// Release one; its completion comes back with exit -100.
	rel := res.Allocated[0].GetId()
	res, err = c.Allocate(ctx, amrm.AllocateRequest{Release: []*hadoopproto.ContainerIdProto{rel}, Progress: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Completed) != 1 || res.Completed[0].GetExitStatus() != -100 || !proto.Equal(res.Completed[0].GetContainerId(), rel) {
		t.Fatalf("completed %v", res.Completed)
	}
	if len(res.Allocated) != 0 || len(res.NMTokens) != 0 {
		t.Errorf("second heartbeat allocated %d, NM tokens %d", len(res.Allocated), len(res.NMTokens))
	}
	if err := c.Finish(ctx, amrm.Succeeded, "done", "http://am:8080/"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finishCalls != 2 {
		t.Errorf("finish called %d times, want 2 (false, then true)", f.finishCalls)
	}
	if f.finishReq.GetFinalApplicationStatus() != hadoopproto.FinalApplicationStatusProto_APP_SUCCEEDED || f.finishReq.GetDiagnostics() != "done" || f.finishReq.GetTrackingUrl() != "http://am:8080/" {
		t.Errorf("finish request %v", f.finishReq)
	}
	var ids []int32
	for _, r := range f.requests {
		ids = append(ids, r.GetResponseId())
	}
	if !reflect.DeepEqual(ids, []int32{0, 1}) {
		t.Errorf("response ids sent %v, want [0 1]", ids)
	}
	// Only memory and vcores are sent, with ANY as resource name.
	a := f.requests[0].GetAsk()[0]
	if a.GetResourceName() != "*" || len(a.GetCapability().GetResourceValueMap()) != 0 || a.GetCapability().GetMemory() != 1024 || a.RelaxLocality != nil {
		t.Errorf("ask %v", a)
	}
}

func TestRegisterTwiceIsAnError(t *testing.T) {
	_, c, _ := setup(t)
	ctx := ctxT(t)
	if _, err := c.Register(ctx, "h", -1, ""); err != nil {
		t.Fatal(err)
	}
	_, err := c.Register(ctx, "h", -1, "")
	var re *ipc.RemoteError
	if !errors.As(err, &re) || re.Class != amrm.ClassInvalidAMRequest || errors.Is(err, amrm.ErrResync) {
		t.Fatalf("err %v", err)
	}
}

func TestLostResponseIsAnsweredFromCache(t *testing.T) {
	f, c, _ := setup(t)
	ctx := ctxT(t)
	if _, err := c.Register(ctx, "h", -1, ""); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.dropNext = true
	f.mu.Unlock()
	ask := []amrm.Ask{{Capability: amrm.Resource{MemoryMB: 1024, VCores: 1}, NumContainers: 2}}
	if _, err := c.Allocate(ctx, amrm.AllocateRequest{Asks: ask}); !errors.Is(err, ipc.ErrConnectionBroken) {
		t.Fatalf("err %v, want a broken connection", err)
	}
	// The repeated request carries the same responseId: the RM returns the
	// cached response with the containers it allocated.
	res, err := c.Allocate(ctx, amrm.AllocateRequest{Asks: ask})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Allocated) != 2 || res.ResponseID != 1 {
		t.Fatalf("allocated %d, response id %d", len(res.Allocated), res.ResponseID)
	}
	if res, err = c.Allocate(ctx, amrm.AllocateRequest{}); err != nil || res.ResponseID != 2 || len(res.Allocated) != 0 {
		t.Fatalf("next heartbeat: %+v %v", res, err)
	}
}

func TestResyncAndShutdown(t *testing.T) {
	f, c, _ := setup(t)
	ctx := ctxT(t)
	// Allocate before register: ApplicationMasterNotRegisteredException.
	_, err := c.Allocate(ctx, amrm.AllocateRequest{})
	var re *ipc.RemoteError
	if !errors.Is(err, amrm.ErrResync) || !errors.As(err, &re) || re.Class != amrm.ClassNotRegistered {
		t.Fatalf("err %v, want ErrResync", err)
	}
	if _, err := c.Register(ctx, "h", -1, ""); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := c.Allocate(ctx, amrm.AllocateRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	// The RM restarts and forgets the registration.
	f.mu.Lock()
	f.registered = false
	f.mu.Unlock()
	if _, err := c.Allocate(ctx, amrm.AllocateRequest{}); !errors.Is(err, amrm.ErrResync) {
		t.Fatalf("err %v, want ErrResync", err)
	}
	if _, err := c.Register(ctx, "h", -1, ""); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Allocate(ctx, amrm.AllocateRequest{}); err != nil || res.ResponseID != 1 {
		t.Fatalf("after re-register (responseId restarts at 0): %+v %v", res, err)
	}
	// AM_RESYNC / AM_SHUTDOWN commands.
	for cmd, want := range map[hadoopproto.AMCommandProto]error{
		hadoopproto.AMCommandProto_AM_RESYNC:   amrm.ErrResync,
		hadoopproto.AMCommandProto_AM_SHUTDOWN: amrm.ErrShutdown,
	} {
		f.mu.Lock()
		f.command = cmd.Enum()
		f.mu.Unlock()
		if _, err := c.Allocate(ctx, amrm.AllocateRequest{}); !errors.Is(err, want) {
			t.Fatalf("%v: err %v, want %v", cmd, err, want)
		}
	}
	f.mu.Lock()
	f.command = nil
	f.gone = true
	f.mu.Unlock()
	_, err = c.Allocate(ctx, amrm.AllocateRequest{})
	if !errors.Is(err, amrm.ErrShutdown) || !errors.As(err, &re) || re.Class != amrm.ClassAttemptNotFound {
		t.Fatalf("err %v, want ErrShutdown", err)
	}
}

func TestFinishBeforeRegister(t *testing.T) {
	_, c, _ := setup(t)
	if err := c.Finish(ctxT(t), amrm.Failed, "x", ""); !errors.Is(err, amrm.ErrResync) {
		t.Fatalf("err %v, want ErrResync", err)
	}
}

func TestAMRMTokenRollOver(t *testing.T) {
	f, c, _ := setup(t)
	ctx := ctxT(t)
	if _, err := c.Register(ctx, "h", -1, ""); err != nil {
		t.Fatal(err)
	}
	next := amrmToken(attemptID(1), 42, "next-password")
	f.mu.Lock()
	f.rollTo = &next
	f.tokens[string(next.Identifier)] = next
	f.mu.Unlock()
	res, err := c.Allocate(ctx, amrm.AllocateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.AMRMToken == nil || !reflect.DeepEqual(*res.AMRMToken, next) || !reflect.DeepEqual(c.AMRMToken(), next) {
		t.Fatalf("rolled token %v", res.AMRMToken)
	}
	// The new key is activated: the old token stops working. The open
	// connection stays valid; a new one must use the new token.
	f.mu.Lock()
	f.tokens = map[string]token.Token{string(next.Identifier): next}
	f.mu.Unlock()
	if _, err := c.Allocate(ctx, amrm.AllocateRequest{}); err != nil {
		t.Fatal(err)
	}
	f.srv.DropConnections()
	if _, err := c.Allocate(ctx, amrm.AllocateRequest{}); err != nil && !errors.Is(err, ipc.ErrConnectionBroken) {
		t.Fatal(err)
	}
	if _, err := c.Allocate(ctx, amrm.AllocateRequest{}); err != nil {
		t.Fatalf("reconnect with the rolled token: %v", err)
	}
	if st := f.srv.Stats(); st.Authed != 2 || st.AuthFailures != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestOptionsValidate(t *testing.T) {
	good := amrmToken(attemptID(1), 1, "p")
	tests := []struct {
		name  string
		o     amrm.Options
		field string
	}{
		{"no addrs", amrm.Options{Token: good}, "Addrs"},
		{"wrong kind", amrm.Options{Addrs: []string{"rm:8030"}, Token: token.Token{Identifier: []byte{1}, Kind: token.KindNM}}, "Token"},
		{"negative interval", amrm.Options{Addrs: []string{"rm:8030"}, Token: good, FinishRetryInterval: -1}, "FinishRetryInterval"},
	}
	for _, tt := range tests {
		if err := tt.o.Validate(); !errors.Is(err, amrm.ErrInvalidOptions) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestSchedulerAddresses(t *testing.T) {
	site := func(props ...string) []byte {
		var sb strings.Builder
		sb.WriteString("<?xml version=\"1.0\"?>\n<configuration>\n")
		for i := 0; i < len(props); i += 2 {
			sb.WriteString("  <property><name>" + props[i] + "</name><value>" + props[i+1] + "</value></property>\n")
		}
		sb.WriteString("</configuration>\n")
		return []byte(sb.String())
	}
	tests := []struct {
		name    string
		env     map[string]string
		site    []byte
		want    []string
		wantErr error
	}{
		{name: "environment wins", env: map[string]string{amrm.EnvSchedulerAddress: "rm1:8030, rm2:8030", "HADOOP_CONF_DIR": "/conf"},
			site: site("yarn.resourcemanager.hostname", "x"), want: []string{"rm1:8030", "rm2:8030"}},
		{name: "nothing configured", env: map[string]string{}, wantErr: amrm.ErrNoSchedulerAddress},
		{name: "hadoop defaults", env: map[string]string{"HADOOP_CONF_DIR": "/conf"}, site: site(), want: []string{"0.0.0.0:8030"}},
		{name: "hostname", env: map[string]string{"HADOOP_CONF_DIR": "/conf"}, site: site("yarn.resourcemanager.hostname", "rm.example"), want: []string{"rm.example:8030"}},
		{name: "explicit address with substitution", env: map[string]string{"HADOOP_CONF_DIR": "/conf", "RMHOST": "envhost"},
			site: site("my.host", "${env.RMHOST}", "yarn.resourcemanager.scheduler.address", "${my.host}:9030"), want: []string{"envhost:9030"}},
		{name: "HA", env: map[string]string{"HADOOP_CONF_DIR": "/conf"},
			site: site("yarn.resourcemanager.ha.enabled", "true", "yarn.resourcemanager.ha.rm-ids", "rm1, rm2",
				"yarn.resourcemanager.scheduler.address.rm1", "a:18030", "yarn.resourcemanager.hostname.rm2", "b"),
			want: []string{"a:18030", "b:8030"}},
		{name: "unresolvable reference kept", env: map[string]string{"HADOOP_CONF_DIR": "/conf"},
			site: site("yarn.resourcemanager.scheduler.address", "${nope}:1"), want: []string{"${nope}:1"}},
		{name: "bad xml", env: map[string]string{"HADOOP_CONF_DIR": "/conf"}, site: []byte("<configuration><property>"), wantErr: amrm.ErrBadConf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := amrm.SchedulerAddresses(func(k string) string { return tt.env[k] }, func(p string) ([]byte, error) {
				if p != "/conf/yarn-site.xml" || tt.site == nil {
					return nil, os.ErrNotExist
				}
				return tt.site, nil
			})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v %v, want %v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseHadoopConf(f *testing.F) {
	f.Add([]byte(`<configuration><property><name>a</name><value>${a}${b}</value></property><property><name>b</name><value>${a}</value></property></configuration>`))
	f.Add([]byte(`<configuration><property><name>yarn.resourcemanager.hostname</name><value>h</value></property></configuration>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := amrm.ParseHadoopConf(b)
		if err != nil {
			if !errors.Is(err, amrm.ErrBadConf) {
				t.Fatalf("unclassified: %v", err)
			}
			return
		}
		// Self-referencing values must terminate.
		_, _ = c.Get("a")
		_, _ = c.Get("yarn.resourcemanager.scheduler.address")
	})
}
