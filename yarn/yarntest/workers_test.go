package yarntest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/nm"
	"github.com/tidewatch/tidewatch/yarn/rm"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// envFakeAM makes the test binary act as a tiny ApplicationMaster (see
// fakeAM).
const envFakeAM = "YARNTEST_FAKE_AM"

func TestMain(m *testing.M) {
	if os.Getenv(envFakeAM) == "1" {
		if err := fakeAM(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "fake AM:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeAM runs inside an AM container, as a real AM would: it finds its AMRM
// token and the scheduler in its environment, registers, gets one worker
// container, starts it with a command that exits 3, waits for the
// completion through allocate and unregisters with the exit status in the
// diagnostics.
func fakeAM(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	creds, err := token.ReadFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	amrmTok, err := creds.AMRMToken()
	if err != nil {
		return err
	}
	addrs, err := amrm.SchedulerAddresses(os.Getenv, os.ReadFile)
	if err != nil {
		return err
	}
	client, err := amrm.New(amrm.Options{Addrs: addrs, Token: amrmTok})
	if err != nil {
		return err
	}
	defer client.Close()
	if _, err := client.Register(ctx, os.Getenv("NM_HOST"), -1, ""); err != nil {
		return err
	}
	req := amrm.AllocateRequest{Asks: []amrm.Ask{{Priority: 1, Capability: amrm.Resource{MemoryMB: 1024, VCores: 1}, NumContainers: 1}}}
	var ct *hadoopproto.ContainerProto
	for ct == nil {
		res, err := client.Allocate(ctx, req)
		if err != nil {
			return err
		}
		req.Asks = nil
		if len(res.Allocated) > 0 {
			ct = res.Allocated[0]
		}
	}
	node := amrm.NodeAddr(ct.GetNodeId())
	nmTok, ok := client.NMToken(node)
	if !ok {
		return fmt.Errorf("no NM token for %s", node)
	}
	nmc, err := nm.New(nm.Options{Addr: node, Token: nmTok})
	if err != nil {
		return err
	}
	defer nmc.Close()
	sr, err := nmc.StartContainers(ctx, []nm.StartRequest{{Container: ct, Launch: nm.LaunchContext{Commands: []string{"sh -c 'exit 3'"}}}})
	if err != nil {
		return err
	}
	if len(sr.Failed) > 0 {
		return sr.Failed[0]
	}
	for {
		res, err := client.Allocate(ctx, amrm.AllocateRequest{})
		if err != nil {
			return err
		}
		for _, st := range res.Completed {
			diag := fmt.Sprintf("worker %s exit %d", hadoopproto.ContainerIDString(st.GetContainerId()), st.GetExitStatus())
			return client.Finish(ctx, amrm.Succeeded, diag, "")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	opts.Dir = t.TempDir()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// submit submits an application whose AM container runs command and waits
// until it is launched.
func submit(t *testing.T, c *Cluster, maxAttempts int32, lc rm.ContainerLaunchContext) string {
	t.Helper()
	ctx := context.Background()
	client, err := rm.New(rm.Options{BaseURLs: []string{c.RM.URL()}, User: "tidewatch"})
	if err != nil {
		t.Fatal(err)
	}
	app, err := client.NewApplication(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = client.Submit(ctx, &rm.ApplicationSubmission{
		ApplicationID: app.ApplicationID, Name: "workers", ApplicationType: "TEST", Queue: "default",
		MaxAppAttempts: maxAttempts, Resource: rm.Resource{MemoryMB: 1024, VCores: 1}, AMContainerSpec: lc,
	})
	if err != nil {
		t.Fatal(err)
	}
	return app.ApplicationID
}

// waitFor polls cond until it holds or 10s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// am is a test acting as the ApplicationMaster of an application whose AM
// container only sleeps: it uses the AMRM token the NM wrote into that
// container, over the real protocols.
type am struct {
	t      *testing.T
	app    string
	launch Launch
	client *amrm.Client
	// completed collects every completed status allocate reported.
	completed []*hadoopproto.ContainerStatusProto
}

func startAM(t *testing.T, c *Cluster, maxAttempts int32) *am {
	t.Helper()
	app := submit(t, c, maxAttempts, rm.ContainerLaunchContext{Commands: []string{"sleep 60"}})
	return attachAM(t, c, app, 1)
}

// attachAM registers as attempt n of app, once its AM container runs.
func attachAM(t *testing.T, c *Cluster, app string, n int) *am {
	t.Helper()
	var l Launch
	waitFor(t, fmt.Sprintf("attempt %d of %s launched", n, app), func() bool {
		k := 0
		for _, x := range c.Launches() {
			if x.ApplicationID == app {
				if k++; k == n {
					l = x
					return true
				}
			}
		}
		return false
	})
	creds, err := token.ReadFile(filepath.Join(l.Dir, "container_tokens"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := creds.AMRMToken()
	if err != nil {
		t.Fatal(err)
	}
	client, err := amrm.New(amrm.Options{Addrs: []string{c.sched.Addr()}, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if _, err := client.Register(context.Background(), "127.0.0.1", -1, ""); err != nil {
		t.Fatal(err)
	}
	return &am{t: t, app: app, launch: l, client: client}
}

func (a *am) allocate(req amrm.AllocateRequest) *amrm.AllocateResult {
	a.t.Helper()
	res, err := a.client.Allocate(context.Background(), req)
	if err != nil {
		a.t.Fatal(err)
	}
	a.completed = append(a.completed, res.Completed...)
	return res
}

// allocateN sends req, then heartbeats until n containers have arrived
// (allocation is asynchronous: they come in a later call), and returns them
// with the NM tokens and the last headroom. It fails the test if they do
// not arrive within a few calls, or if more arrive.
func (a *am) allocateN(req amrm.AllocateRequest, n int) *amrm.AllocateResult {
	a.t.Helper()
	out := &amrm.AllocateResult{}
	for i := 0; i < 3 && (i == 0 || len(out.Allocated) < n); i++ {
		res := a.allocate(req)
		req = amrm.AllocateRequest{}
		out.Allocated = append(out.Allocated, res.Allocated...)
		out.NMTokens = append(out.NMTokens, res.NMTokens...)
		out.Limit = res.Limit
	}
	if len(out.Allocated) != n {
		a.t.Fatalf("allocated %d containers, want %d", len(out.Allocated), n)
	}
	return out
}

// waitCompleted heartbeats until allocate has reported the container
// completed and returns its status.
func (a *am) waitCompleted(id *hadoopproto.ContainerIdProto) *hadoopproto.ContainerStatusProto {
	a.t.Helper()
	name := hadoopproto.ContainerIDString(id)
	var st *hadoopproto.ContainerStatusProto
	waitFor(a.t, name+" reported completed", func() bool {
		a.allocate(amrm.AllocateRequest{})
		st = a.reported(name)
		return st != nil
	})
	return st
}

// reported returns the status allocate reported for a container, failing
// the test if it was reported more than once.
func (a *am) reported(name string) *hadoopproto.ContainerStatusProto {
	a.t.Helper()
	var out *hadoopproto.ContainerStatusProto
	for _, st := range a.completed {
		if hadoopproto.ContainerIDString(st.GetContainerId()) == name {
			if out != nil {
				a.t.Fatalf("%s reported completed twice", name)
			}
			out = st
		}
	}
	return out
}

func (a *am) nm(node *hadoopproto.NodeIdProto) *nm.Client {
	a.t.Helper()
	tok, ok := a.client.NMToken(amrm.NodeAddr(node))
	if !ok {
		a.t.Fatalf("no NM token for %s", amrm.NodeAddr(node))
	}
	c, err := nm.New(nm.Options{Addr: amrm.NodeAddr(node), Token: tok})
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { c.Close() })
	return c
}

func ask(n int32) amrm.AllocateRequest {
	return amrm.AllocateRequest{Asks: []amrm.Ask{{Priority: 1, Capability: amrm.Resource{MemoryMB: 512, VCores: 1}, NumContainers: n}}}
}

func start(t *testing.T, c *nm.Client, ct *hadoopproto.ContainerProto, lc nm.LaunchContext) *nm.StartResult {
	t.Helper()
	res, err := c.StartContainers(context.Background(), []nm.StartRequest{{Container: ct, Launch: lc}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sleepCmd() nm.LaunchContext { return nm.LaunchContext{Commands: []string{"sleep 30"}} }

func failedWith(t *testing.T, what string, res *nm.StartResult, want string) {
	t.Helper()
	if len(res.Succeeded) != 0 || len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Message, want) {
		t.Fatalf("%s: succeeded %v, failed %v; want one failure containing %q", what, res.Succeeded, res.Failed, want)
	}
	if res.Failed[0].Class != ipc.ClassYarnException {
		t.Errorf("%s: class %s, want %s", what, res.Failed[0].Class, ipc.ClassYarnException)
	}
}

// TestWorkerContainers: allocation with an NM token, starting through the
// NM with the container environment, a SIGKILLed container reported 137
// exactly once, a stopped one -105, a released unstarted one -100, and the
// NM's refusals.
func TestWorkerContainers(t *testing.T) {
	c := newCluster(t, Options{})
	a := startAM(t, c, 1)
	ctx := context.Background()

	res := a.allocateN(ask(2), 2)
	if len(res.NMTokens) != 1 || res.NMTokens[0].Node != fmt.Sprintf("127.0.0.1:%d", c.nmPort) || res.NMTokens[0].Token.Kind != token.KindNM {
		t.Fatalf("NM tokens %v, want one for 127.0.0.1:%d", res.NMTokens, c.nmPort)
	}
	appID, err := rm.ParseApplicationID(a.app)
	if err != nil {
		t.Fatal(err)
	}
	for i, ct := range res.Allocated {
		want := fmt.Sprintf("container_%d_%04d_01_%06d", appID.ClusterTimestamp, appID.Seq, i+2)
		if got := hadoopproto.ContainerIDString(ct.GetId()); got != want {
			t.Errorf("container %d is %s, want %s", i, got, want)
		}
		if ct.GetResource().GetMemory() != 1024 || ct.GetPriority().GetPriority() != 1 || ct.GetContainerToken().GetKind() != token.KindContainer {
			t.Errorf("container %d: resource %v priority %v token kind %q", i, ct.GetResource(), ct.GetPriority(), ct.GetContainerToken().GetKind())
		}
		if amrm.NodeAddr(ct.GetNodeId()) != res.NMTokens[0].Node {
			t.Errorf("container %d on %s", i, amrm.NodeAddr(ct.GetNodeId()))
		}
	}
	if res := a.allocate(amrm.AllocateRequest{}); len(res.Allocated) != 0 {
		t.Fatalf("allocated %d more containers after the ask was met", len(res.Allocated))
	}
	first, second := res.Allocated[0], res.Allocated[1]
	firstID := hadoopproto.ContainerIDString(first.GetId())
	nmc := a.nm(first.GetNodeId())

	// The first container checks its environment, resources and tokens.
	data := filepath.Join(t.TempDir(), "data.txt")
	if err := os.WriteFile(data, []byte("payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(data)
	blob := (&token.Credentials{Tokens: []token.Entry{{Alias: "x", Token: token.Token{Identifier: []byte("i"), Password: []byte("p"), Kind: "K", Service: "s"}}}}).MarshalWritable()
	sr := start(t, nmc, first, nm.LaunchContext{
		LocalResources: map[string]nm.LocalResource{"data.txt": {URL: "file://" + data, Size: fi.Size(), Timestamp: fi.ModTime().UnixMilli(),
			Type: hadoopproto.LocalResourceTypeProto_FILE, Visibility: hadoopproto.LocalResourceVisibilityProto_APPLICATION}},
		Environment: map[string]string{"GREETING": "hello {{CONTAINER_ID}}"},
		Commands:    []string{"sh -c 'printenv > env.txt; exec sleep 30'", "1><LOG_DIR>/stdout"},
		Tokens:      blob,
	})
	if len(sr.Succeeded) != 1 || len(sr.Failed) != 0 {
		t.Fatalf("start: succeeded %v failed %v", sr.Succeeded, sr.Failed)
	}
	if sr := start(t, nmc, second, sleepCmd()); len(sr.Succeeded) != 1 {
		t.Fatalf("start second: failed %v", sr.Failed)
	}
	wc := c.WorkerContainers(a.app)
	if len(wc) != 2 || wc[0].ID != firstID || wc[0].PID == 0 || wc[0].Started.IsZero() || wc[0].Completed || wc[0].AttemptID != a.launch.AttemptID {
		t.Fatalf("worker containers %+v", wc)
	}
	envFile := filepath.Join(wc[0].Dir, "env.txt")
	waitFor(t, "env.txt", func() bool { b, _ := os.ReadFile(envFile); return strings.Contains(string(b), "PWD=") })
	env, _ := os.ReadFile(envFile)
	for _, want := range []string{
		"CONTAINER_ID=" + firstID, fmt.Sprintf("NM_PORT=%d", c.nmPort), "NM_HOST=127.0.0.1", "GREETING=hello " + firstID,
		"HADOOP_TOKEN_FILE_LOCATION=" + filepath.Join(wc[0].Dir, "container_tokens"), "LOG_DIRS=" + filepath.Join(wc[0].Dir, "logs"),
	} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("container environment lacks %s:\n%s", want, env)
		}
	}
	if b, err := os.ReadFile(filepath.Join(wc[0].Dir, "data.txt")); err != nil || string(b) != "payload" {
		t.Errorf("localized data.txt: %q, %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(wc[0].Dir, "container_tokens")); string(b) != string(blob) {
		t.Errorf("container_tokens is not the launch context's credentials")
	}

	failedWith(t, "starting twice", start(t, nmc, first, sleepCmd()), "Attempt to relaunch the same container with id "+firstID)
	forged := &hadoopproto.ContainerProto{Id: first.GetId(), NodeId: first.GetNodeId(),
		ContainerToken: (token.Token{Identifier: first.GetContainerToken().GetIdentifier(), Password: []byte("forged"), Kind: token.KindContainer}).Proto()}
	failedWith(t, "a forged container token", start(t, nmc, forged, sleepCmd()), "did not allocate it")

	sts, failed, err := nmc.GetContainerStatuses(ctx, []*hadoopproto.ContainerIdProto{first.GetId(), second.GetId()})
	if err != nil || len(failed) != 0 || len(sts) != 2 {
		t.Fatalf("statuses %v failed %v: %v", sts, failed, err)
	}
	for _, st := range sts {
		if st.GetState() != hadoopproto.ContainerStateProto_C_RUNNING || st.GetExitStatus() != nm.ExitInvalid {
			t.Errorf("status of a running container: %v", st)
		}
	}

	// A SIGKILL from outside: 137, reported once.
	if err := c.KillContainer(firstID); err != nil {
		t.Fatal(err)
	}
	if st := a.waitCompleted(first.GetId()); st.GetExitStatus() != 137 || st.GetState() != hadoopproto.ContainerStateProto_C_COMPLETE {
		t.Errorf("killed container: %v, want COMPLETE with 137", st)
	}
	if err := c.KillContainer(firstID); err == nil {
		t.Error("killing a completed container again succeeded")
	}

	// Stopped by the AM: -105.
	stopped, failed, err := nmc.StopContainers(ctx, []*hadoopproto.ContainerIdProto{second.GetId()})
	if err != nil || len(stopped) != 1 || len(failed) != 0 {
		t.Fatalf("stop: %v %v %v", stopped, failed, err)
	}
	if st := a.waitCompleted(second.GetId()); st.GetExitStatus() != nm.ExitKilledByAppMaster {
		t.Errorf("stopped container: %v, want %d", st, nm.ExitKilledByAppMaster)
	}
	sts, _, err = nmc.GetContainerStatuses(ctx, []*hadoopproto.ContainerIdProto{second.GetId()})
	if err != nil || len(sts) != 1 || sts[0].GetState() != hadoopproto.ContainerStateProto_C_COMPLETE || sts[0].GetExitStatus() != nm.ExitKilledByAppMaster {
		t.Errorf("status of the stopped container: %v, %v", sts, err)
	}
	if stopped, _, err := nmc.StopContainers(ctx, []*hadoopproto.ContainerIdProto{second.GetId()}); err != nil || len(stopped) != 1 {
		t.Errorf("stopping an exited container: %v, %v; want success", stopped, err)
	}

	// A released container that was never started: -100.
	res = a.allocateN(ask(1), 1)
	if len(res.NMTokens) != 0 {
		t.Fatalf("%d NM tokens with the third container, want none (already sent)", len(res.NMTokens))
	}
	third := res.Allocated[0]
	a.allocate(amrm.AllocateRequest{Release: []*hadoopproto.ContainerIdProto{third.GetId()}})
	st := a.waitCompleted(third.GetId())
	if st.GetExitStatus() != nm.ExitAborted || st.GetDiagnostics() != "Container released by application" {
		t.Errorf("released container: %v", st)
	}
	failedWith(t, "starting a released container", start(t, nmc, third, sleepCmd()), "completed before it was started")
	if _, failed, _ := nmc.StopContainers(ctx, []*hadoopproto.ContainerIdProto{third.GetId()}); len(failed) != 1 {
		t.Errorf("stopping a container never started: %v, want a failure", failed)
	}

	// Everything was reported exactly once.
	for range 3 {
		a.allocate(amrm.AllocateRequest{})
	}
	for _, ct := range []*hadoopproto.ContainerProto{first, second, third} {
		a.reported(hadoopproto.ContainerIDString(ct.GetId()))
	}
	if len(a.completed) != 3 {
		t.Errorf("%d completions reported, want 3: %v", len(a.completed), a.completed)
	}
	var got []int32
	for _, w := range c.WorkerContainers(a.app) {
		if !w.Completed {
			t.Errorf("%s not completed", w.ID)
		}
		got = append(got, w.ExitStatus)
	}
	if fmt.Sprint(got) != "[137 -105 -100]" {
		t.Errorf("exit statuses %v, want [137 -105 -100]", got)
	}

	// An NM token the RM never issued is refused at connection setup.
	bad := token.Token{Identifier: []byte("not a token"), Password: []byte("pw"), Kind: token.KindNM}
	bc, err := nm.New(nm.Options{Addr: amrm.NodeAddr(first.GetNodeId()), Token: bad})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	_, _, err = bc.GetContainerStatuses(ctx, []*hadoopproto.ContainerIdProto{first.GetId()})
	var re *ipc.RemoteError
	if !errors.Is(err, ipc.ErrAuth) || !errors.As(err, &re) || re.Class != ipc.ClassInvalidToken {
		t.Errorf("unknown NM token: %v, want an InvalidToken authentication failure", err)
	}
}

// TestContainerLimitAndOwnership: no more than MaxContainers live worker
// containers per application, the outstanding ask served as slots free up;
// one application's NM token cannot start or stop another's containers, and
// a container that is not the attempt's cannot be released.
func TestContainerLimitAndOwnership(t *testing.T) {
	c := newCluster(t, Options{MaxContainers: 2})
	a, b := startAM(t, c, 1), startAM(t, c, 1)

	res := a.allocateN(ask(3), 2)
	if res.Limit.MemoryMB != 0 {
		t.Fatalf("headroom %v with the application's limit reached, want none", res.Limit)
	}
	if res := a.allocate(amrm.AllocateRequest{}); len(res.Allocated) != 0 {
		t.Fatalf("allocated %d beyond the limit", len(res.Allocated))
	}
	// The released container's slot goes to the outstanding ask.
	more := a.allocate(amrm.AllocateRequest{Release: []*hadoopproto.ContainerIdProto{res.Allocated[1].GetId()}}).Allocated
	more = append(more, a.allocate(amrm.AllocateRequest{}).Allocated...)
	if len(more) != 1 || hadoopproto.ContainerIDString(more[0].GetId()) <= hadoopproto.ContainerIDString(res.Allocated[1].GetId()) {
		t.Fatalf("after a release: allocated %v, want the outstanding one with a new id", more)
	}
	if res := a.allocate(amrm.AllocateRequest{}); len(res.Allocated) != 0 {
		t.Fatalf("allocated %d after the ask was met", len(res.Allocated))
	}

	bres := b.allocateN(ask(1), 1)
	bnm := b.nm(bres.Allocated[0].GetNodeId())
	failedWith(t, "starting another application's container", start(t, bnm, res.Allocated[0], sleepCmd()),
		"NMToken for application attempt : "+b.launch.AttemptID+" was used for starting container with container token issued for application attempt : "+a.launch.AttemptID)
	if sr := start(t, a.nm(res.Allocated[0].GetNodeId()), res.Allocated[0], sleepCmd()); len(sr.Succeeded) != 1 {
		t.Fatalf("a: start failed: %v", sr.Failed)
	}
	if _, failed, err := bnm.StopContainers(context.Background(), []*hadoopproto.ContainerIdProto{res.Allocated[0].GetId()}); err != nil || len(failed) != 1 || !strings.Contains(failed[0].Message, "Unauthorized request to stop") {
		t.Errorf("b stopping a's container: %v, %v", failed, err)
	}
	_, err := b.client.Allocate(context.Background(), amrm.AllocateRequest{Release: []*hadoopproto.ContainerIdProto{res.Allocated[0].GetId()}})
	var re *ipc.RemoteError
	if !errors.As(err, &re) || re.Class != classInvalidContainerRelease {
		t.Errorf("b releasing a's container: %v, want %s", err, classInvalidContainerRelease)
	}
}

// TestAttemptEndKillsWorkers: when the AM container dies, its attempt's
// running and unstarted worker containers complete with -100, and the next
// attempt's containers carry its attempt number and continue the sequence.
func TestAttemptEndKillsWorkers(t *testing.T) {
	c := newCluster(t, Options{})
	a := startAM(t, c, 2)
	res := a.allocateN(ask(2), 2)
	if sr := start(t, a.nm(res.Allocated[0].GetNodeId()), res.Allocated[0], sleepCmd()); len(sr.Succeeded) != 1 {
		t.Fatalf("start failed: %v", sr.Failed)
	}
	if err := c.killAM(a.app); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "worker containers completed", func() bool {
		for _, w := range c.WorkerContainers(a.app) {
			if !w.Completed {
				return false
			}
		}
		return true
	})
	for _, w := range c.WorkerContainers(a.app) {
		if w.ExitStatus != nm.ExitAborted {
			t.Errorf("%s of the failed attempt: exit %d (%s), want %d", w.ID, w.ExitStatus, w.Diagnostics, nm.ExitAborted)
		}
	}

	a2 := attachAM(t, c, a.app, 2)
	res = a2.allocateN(ask(1), 1)
	if len(res.NMTokens) != 1 {
		t.Fatalf("attempt 2: %d NM tokens, want 1", len(res.NMTokens))
	}
	appID, _ := rm.ParseApplicationID(a.app)
	want := fmt.Sprintf("container_%d_%04d_02_000004", appID.ClusterTimestamp, appID.Seq)
	if got := hadoopproto.ContainerIDString(res.Allocated[0].GetId()); got != want {
		t.Errorf("attempt 2's container is %s, want %s", got, want)
	}
	// Attempt 1's NM token no longer starts anything of attempt 2.
	failedWith(t, "attempt 1's token", start(t, a.nm(res.Allocated[0].GetNodeId()), res.Allocated[0], sleepCmd()), "was used for starting container")
}

// killAM SIGKILLs an application's AM container.
func (c *Cluster) killAM(app string) error {
	c.mu.Lock()
	ct := c.containers[app]
	c.mu.Unlock()
	if ct == nil {
		return fmt.Errorf("no AM container for %s", app)
	}
	ct.kill()
	return nil
}

// TestAMInContainer runs the test binary as the AM (fakeAM): from its
// container environment it reaches the scheduler and, with the NM token it
// got, the NodeManager; its worker's exit code comes back through allocate.
func TestAMInContainer(t *testing.T) {
	c := newCluster(t, Options{Env: []string{envFakeAM + "=1"}})
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	app := submit(t, c, 1, rm.ContainerLaunchContext{
		LocalResources: map[string]rm.LocalResource{"am": {URL: "file://" + bin, Type: "FILE", Visibility: "APPLICATION", Size: fi.Size(), Timestamp: fi.ModTime().UnixMilli()}},
		Commands:       []string{"./am 1><LOG_DIR>/am.log 2>&1"},
	})
	var s struct{ state, diag string }
	waitFor(t, "the application to end", func() bool {
		snap, _ := c.RM.App(app)
		s.state, s.diag = snap.State, snap.Diagnostics
		return snap.State == "FINISHED" || snap.State == "FAILED"
	})
	if s.state != "FINISHED" || !regexp.MustCompile(`^worker container_\d+_\d{4}_01_000002 exit 3$`).MatchString(s.diag) {
		var log []byte
		if ls := c.Launches(); len(ls) > 0 {
			log, _ = os.ReadFile(filepath.Join(ls[0].Dir, "logs", "am.log"))
		}
		t.Fatalf("application %s: %q\nAM log:\n%s", s.state, s.diag, log)
	}
}

// TestAllocationIsAsynchronous: as on a real RM, the containers for an ask
// arrive in a later allocate call than the ask, and an ask replaces the
// outstanding count (§6.4.3), so re-sending an ask before its containers
// have arrived gets surplus containers; changing the count before the
// scheduler acts does not.
func TestAllocationIsAsynchronous(t *testing.T) {
	c := newCluster(t, Options{})
	a := startAM(t, c, 1)
	if res := a.allocate(ask(2)); len(res.Allocated) != 0 {
		t.Fatalf("the ask's own call allocated %d containers, want none (later)", len(res.Allocated))
	}
	if res := a.allocate(amrm.AllocateRequest{}); len(res.Allocated) != 2 {
		t.Fatalf("the next call allocated %d, want 2", len(res.Allocated))
	}
	if res := a.allocate(amrm.AllocateRequest{}); len(res.Allocated) != 0 {
		t.Fatalf("allocated %d more without an ask", len(res.Allocated))
	}

	// The same ask re-sent before its container arrived: the RM had already
	// met it, so the re-sent count is a new request.
	a.allocate(ask(1))
	got := len(a.allocate(ask(1)).Allocated)
	got += len(a.allocate(amrm.AllocateRequest{}).Allocated)
	got += len(a.allocate(amrm.AllocateRequest{}).Allocated)
	if got != 2 {
		t.Fatalf("an ask for 1 sent twice gave %d containers, want 2 (one surplus)", got)
	}

	// Sending the decreased count once the containers are in (what the AM
	// does) changes nothing.
	a.allocate(ask(1))
	got = len(a.allocate(amrm.AllocateRequest{}).Allocated)
	got += len(a.allocate(ask(0)).Allocated)
	got += len(a.allocate(amrm.AllocateRequest{}).Allocated)
	if got != 1 {
		t.Fatalf("an ask for 1, then 0 after the container came, gave %d containers, want 1", got)
	}
	if n := len(c.WorkerContainers(a.app)); n != 5 {
		t.Errorf("%d containers allocated in all, want 5", n)
	}
}

// TestRMRestart: LoseRegistrations acts as an RM restart with
// work-preserving recovery (allocate and finish say
// ApplicationMasterNotRegistered until the AM registers again; the
// outstanding asks are gone; the containers live on), ForgetAttempt as one
// without recovery (ApplicationAttemptNotFound; the NM still serves the
// attempt's containers). Registering twice is an error, as on a real RM.
func TestRMRestart(t *testing.T) {
	c := newCluster(t, Options{})
	a := startAM(t, c, 1)
	ctx := context.Background()
	var re *ipc.RemoteError
	if _, err := a.client.Register(ctx, "127.0.0.1", -1, ""); !errors.As(err, &re) || re.Class != amrm.ClassInvalidAMRequest {
		t.Fatalf("registering twice: %v, want %s", err, amrm.ClassInvalidAMRequest)
	}
	running := a.allocateN(ask(1), 1).Allocated[0]
	nmc := a.nm(running.GetNodeId())
	if sr := start(t, nmc, running, sleepCmd()); len(sr.Succeeded) != 1 {
		t.Fatalf("start failed: %v", sr.Failed)
	}
	a.allocate(ask(3)) // allocated, not yet handed out at the restart: lost

	c.LoseRegistrations()
	if _, err := a.client.Allocate(ctx, amrm.AllocateRequest{}); !errors.Is(err, amrm.ErrResync) {
		t.Fatalf("allocate after the restart: %v, want ErrResync", err)
	}
	if err := a.client.Finish(ctx, amrm.Succeeded, "", ""); !errors.Is(err, amrm.ErrResync) {
		t.Fatalf("finish after the restart: %v, want ErrResync", err)
	}
	if _, err := a.client.Register(ctx, "127.0.0.1", 4000, "http://127.0.0.1:4000"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if res := a.allocate(amrm.AllocateRequest{}); len(res.Allocated) != 0 {
			t.Fatalf("handed out %d containers the restart lost", len(res.Allocated))
		}
	}
	regs := c.Registrations(a.app)
	if len(regs) != 2 || regs[1].TrackingURL != "http://127.0.0.1:4000" || regs[1].RPCPort != 4000 || regs[1].AttemptID != a.launch.AttemptID {
		t.Errorf("registrations %+v", regs)
	}
	if wc := c.WorkerContainers(a.app); len(wc) != 4 || wc[0].Completed {
		t.Errorf("worker containers after the restart: %+v, want the running one alive", wc)
	}

	if err := c.ForgetAttempt(a.app); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.Allocate(ctx, amrm.AllocateRequest{}); !errors.Is(err, amrm.ErrShutdown) {
		t.Fatalf("allocate of a forgotten attempt: %v, want ErrShutdown", err)
	}
	if stopped, failed, err := nmc.StopContainers(ctx, []*hadoopproto.ContainerIdProto{running.GetId()}); err != nil || len(stopped) != 1 || len(failed) != 0 {
		t.Errorf("stopping a forgotten attempt's container: %v %v %v", stopped, failed, err)
	}
}
