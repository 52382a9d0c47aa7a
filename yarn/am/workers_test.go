package am

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/amrm"
	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/nm"
	"github.com/tidewatch/tidewatch/yarn/rm"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// fakeNM records the containers started and stopped on it.
type fakeNM struct {
	mu      sync.Mutex
	started []string
	stopped []string
	fail    string // a container id to refuse
	closed  int
}

func (f *fakeNM) StartContainers(_ context.Context, reqs []nm.StartRequest) (*nm.StartResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := &nm.StartResult{}
	for _, r := range reqs {
		id := hadoopproto.ContainerIDString(r.Container.GetId())
		if id == f.fail {
			res.Failed = append(res.Failed, &nm.ContainerError{ContainerID: r.Container.GetId(), Class: "YarnException", Message: "refused"})
			continue
		}
		if len(r.Launch.Commands) != 1 || !strings.Contains(r.Launch.Commands[0], "worker") {
			return nil, errors.New("bad launch context")
		}
		f.started = append(f.started, id)
		res.Succeeded = append(res.Succeeded, r.Container.GetId())
	}
	return res, nil
}

func (f *fakeNM) StopContainers(_ context.Context, ids []*hadoopproto.ContainerIdProto) ([]*hadoopproto.ContainerIdProto, []*nm.ContainerError, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.stopped = append(f.stopped, hadoopproto.ContainerIDString(id))
	}
	return ids, nil, nil
}

func (f *fakeNM) Close() error {
	f.mu.Lock()
	f.closed++
	f.mu.Unlock()
	return nil
}

func testContainer(seq int64) *hadoopproto.ContainerProto {
	return &hadoopproto.ContainerProto{
		Id: &hadoopproto.ContainerIdProto{
			AppAttemptId: &hadoopproto.ApplicationAttemptIdProto{
				ApplicationId: &hadoopproto.ApplicationIdProto{Id: proto.Int32(7), ClusterTimestamp: proto.Int64(1700000000000)},
				AttemptId:     proto.Int32(1),
			},
			Id: proto.Int64(seq),
		},
		NodeId: &hadoopproto.NodeIdProto{Host: proto.String("node1"), Port: proto.Int32(45454)},
	}
}

func completedStatus(seq int64, exit int32) *hadoopproto.ContainerStatusProto {
	return &hadoopproto.ContainerStatusProto{ContainerId: testContainer(seq).GetId(), ExitStatus: proto.Int32(exit), Diagnostics: proto.String("test")}
}

func haveToken(node string) (token.Token, bool) {
	return token.Token{Kind: token.KindNM, Identifier: []byte(node), Password: []byte("pw"), Service: node}, node == "node1:45454"
}

// wanted is the number of containers the workers want.
func wanted(w *workers) int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wantedLocked()
}

func quietWorkers(opts WorkerOptions) *workers {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if opts.Launch == nil {
		opts.Launch = func(int) (nm.LaunchContext, error) { return nm.LaunchContext{Commands: []string{"worker"}}, nil }
	}
	return newWorkers(opts, logrus.NewEntry(l))
}

// askCount is the count asks would send, or -1 for no ask.
func askCount(w *workers) int32 {
	a := w.asks()
	if len(a) == 0 {
		return -1
	}
	return a[0].NumContainers
}

// TestWorkersAskOnlyWhenTheCountChanges: an ask replaces the RM's
// outstanding count and the RM allocates between heartbeats, so the ask is
// sent only when the count wanted changes, the decrease included, and
// again after an RM restart; an ask the RM did not take is sent again.
func TestWorkersAskOnlyWhenTheCountChanges(t *testing.T) {
	fake := &fakeNM{}
	w := quietWorkers(WorkerOptions{Count: 2, NodeManager: func(nm.Options) (NodeManager, error) { return fake, nil }})
	ctx := context.Background()
	step := func(what string, want int32) {
		t.Helper()
		if got := askCount(w); got != want {
			t.Fatalf("%s: ask %d, want %d (-1: none)", what, got, want)
		}
		w.sent(w.asks())
	}
	step("first heartbeat", 2)
	step("containers not in yet", -1)
	w.allocated(ctx, []*hadoopproto.ContainerProto{testContainer(2)}, haveToken)
	step("one container in", 1)
	step("still one wanted", -1)
	w.allocated(ctx, []*hadoopproto.ContainerProto{testContainer(3)}, haveToken)
	step("both in", 0)
	step("all running", -1)

	w.completed([]*hadoopproto.ContainerStatusProto{completedStatus(2, 137)})
	if got := askCount(w); got != 1 {
		t.Fatalf("after a loss: ask %d, want 1", got)
	}
	// That heartbeat failed: the ask goes out again.
	step("after a failed heartbeat", 1)
	step("replacement not in yet", -1)
	w.resync()
	step("after the RM restarted", 1)
	if err := w.stop(ctx, haveToken); err != nil {
		t.Fatal(err)
	}
	step("stopping", 0)
	step("stopped", -1)
}

// TestWorkersDoNotCountContainersLostThroughNoFault: containers released
// or lost with their node (ABORTED), lost to failed disks, preempted or
// killed by the RM are replaced without counting toward MaxFailures, as
// YARN does not count them against an application.
func TestWorkersDoNotCountContainersLostThroughNoFault(t *testing.T) {
	var calls []error
	w := quietWorkers(WorkerOptions{Count: 1, MaxFailures: 1,
		NodeManager: func(nm.Options) (NodeManager, error) { return &fakeNM{}, nil },
		Failed:      func(err error) { calls = append(calls, err) },
	})
	ctx := context.Background()
	seq := int64(2)
	lose := func(exit int32) {
		t.Helper()
		w.allocated(ctx, []*hadoopproto.ContainerProto{testContainer(seq)}, haveToken)
		w.completed([]*hadoopproto.ContainerStatusProto{completedStatus(seq, exit)})
		seq++
		if st := w.status()[0]; st.State != WorkerRequested || !strings.Contains(st.LastExit, nm.ExitStatusName(exit)) {
			t.Fatalf("after exit %d: worker %+v, want REQUESTED again", exit, st)
		}
	}
	for _, exit := range []int32{nm.ExitAborted, nm.ExitDisksFailed, nm.ExitPreempted, nm.ExitKilledByResourceManager} {
		lose(exit)
	}
	if len(calls) != 0 {
		t.Fatalf("gave up after containers lost through no fault of the job: %v", calls)
	}
	if n := wanted(w); n != 1 {
		t.Fatalf("wanted %d containers, want 1", n)
	}
	lose(137)
	lose(nm.ExitKilledExceededPMem)
	if len(calls) != 1 || !strings.Contains(calls[0].Error(), "failed 2 times") {
		t.Fatalf("Failed called with %v, want once after two failures", calls)
	}
}

// TestWorkersReconnectWithANewNMToken: when the RM sends a new NM token for
// a node (after rolling its NM keys), the node's client is replaced by one
// with the new token, and the old one closed.
func TestWorkersReconnectWithANewNMToken(t *testing.T) {
	var made []string
	var fakes []*fakeNM
	w := quietWorkers(WorkerOptions{Count: 2, NodeManager: func(o nm.Options) (NodeManager, error) {
		made = append(made, string(o.Token.Password))
		f := &fakeNM{}
		fakes = append(fakes, f)
		return f, nil
	}})
	password := "key-1"
	nmToken := func(node string) (token.Token, bool) {
		return token.Token{Kind: token.KindNM, Identifier: []byte(node), Password: []byte(password), Service: node}, true
	}
	ctx := context.Background()
	w.allocated(ctx, []*hadoopproto.ContainerProto{testContainer(2)}, nmToken)
	password = "key-2" // the RM rolled its NM master key
	w.allocated(ctx, []*hadoopproto.ContainerProto{testContainer(3)}, nmToken)
	if strings.Join(made, ",") != "key-1,key-2" {
		t.Fatalf("NM clients made with tokens %v, want key-1 then key-2", made)
	}
	if fakes[0].closed != 1 || len(fakes[1].started) != 1 {
		t.Fatalf("old client closed %d times, new one started %v", fakes[0].closed, fakes[1].started)
	}
	if err := w.stop(ctx, nmToken); err != nil {
		t.Fatal(err)
	}
	if len(fakes[1].stopped) != 2 || len(made) != 2 {
		t.Fatalf("stopped %v through %d clients", fakes[1].stopped, len(made))
	}
	w.close()
	if fakes[0].closed != 1 || fakes[1].closed != 1 {
		t.Errorf("closed %d and %d times, want once each", fakes[0].closed, fakes[1].closed)
	}
}

func TestWorkersAskLaunchReplaceAndFinish(t *testing.T) {
	fake := &fakeNM{fail: hadoopproto.ContainerIDString(testContainer(4).GetId())}
	var failedErr error
	l := logrus.New()
	l.SetOutput(io.Discard)
	w := newWorkers(WorkerOptions{
		Count:    2,
		Resource: amrm.Resource{MemoryMB: 1024, VCores: 2},
		Launch: func(k int) (nm.LaunchContext, error) {
			return nm.LaunchContext{Commands: []string{"./tidewatch worker --container " + string(rune('0'+k))}}, nil
		},
		MaxFailures: 2,
		Failed:      func(err error) { failedErr = err },
		NodeManager: func(o nm.Options) (NodeManager, error) { return fake, nil },
	}, logrus.NewEntry(l))
	ctx := context.Background()
	if a := w.asks()[0]; a.NumContainers != 2 || a.Capability.VCores != 2 || a.Priority != 1 {
		t.Fatalf("first ask %+v, want 2 containers of 2 vcores at priority 1", a)
	}

	// Three containers for two workers: the third is released.
	release := w.allocated(ctx, []*hadoopproto.ContainerProto{testContainer(2), testContainer(3), testContainer(5)}, haveToken)
	if len(release) != 1 || release[0].GetId() != 5 {
		t.Fatalf("released %v, want container 5", release)
	}
	if n := wanted(w); n != 0 {
		t.Fatalf("still asking for %d containers with both workers running", n)
	}
	st := w.status()
	if st[0].State != WorkerRunning || st[1].State != WorkerRunning || st[0].Launches != 1 {
		t.Fatalf("workers %+v, want both RUNNING", st)
	}

	// Worker 1's container dies: it is asked for again, and the NM that
	// refuses the next container makes it ask once more.
	w.completed([]*hadoopproto.ContainerStatusProto{completedStatus(2, 137)})
	if n := wanted(w); n != 1 {
		t.Fatalf("asking for %d containers after a loss, want 1", n)
	}
	if st := w.status(); st[0].State != WorkerRequested || !strings.Contains(st[0].LastExit, "137") {
		t.Fatalf("worker 1 after the loss: %+v", st[0])
	}
	if release := w.allocated(ctx, []*hadoopproto.ContainerProto{testContainer(4)}, haveToken); len(release) != 1 {
		t.Fatalf("a container that failed to start was not released: %v", release)
	}
	if failedErr != nil {
		t.Fatalf("gave up after 2 failures with MaxFailures 2: %v", failedErr)
	}
	w.allocated(ctx, []*hadoopproto.ContainerProto{testContainer(6)}, haveToken)
	if st := w.status(); st[0].State != WorkerRunning || st[0].Launches != 2 {
		t.Fatalf("worker 1 after its replacement: %+v", st[0])
	}

	// Worker 2 finishes its share: it is not replaced.
	w.completed([]*hadoopproto.ContainerStatusProto{completedStatus(3, 0)})
	if n := wanted(w); n != 0 {
		t.Fatalf("asking for %d containers after a worker finished", n)
	}
	if st := w.status(); st[1].State != WorkerFinished {
		t.Fatalf("worker 2: %+v", st[1])
	}

	// Stopping stops the running container and asks for nothing more.
	if err := w.stop(ctx, haveToken); err != nil {
		t.Fatal(err)
	}
	if len(fake.stopped) != 1 || fake.stopped[0] != hadoopproto.ContainerIDString(testContainer(6).GetId()) {
		t.Fatalf("stopped %v, want container 6", fake.stopped)
	}
	w.completed([]*hadoopproto.ContainerStatusProto{completedStatus(6, -105)})
	if n := wanted(w); n != 0 {
		t.Fatalf("asking for %d containers while stopping", n)
	}
	if st := w.status(); st[0].State != WorkerStopped {
		t.Fatalf("worker 1 after the stop: %+v", st[0])
	}
	if failedErr != nil {
		t.Fatalf("a worker stopped by the AM counted as a failure: %v", failedErr)
	}
}

func TestWorkersGiveUpAfterMaxFailures(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	var calls []error
	w := newWorkers(WorkerOptions{Count: 1, MaxFailures: 1,
		Launch:      func(int) (nm.LaunchContext, error) { return nm.LaunchContext{Commands: []string{"worker"}}, nil },
		NodeManager: func(nm.Options) (NodeManager, error) { return &fakeNM{}, nil },
		Failed:      func(err error) { calls = append(calls, err) },
	}, logrus.NewEntry(l))
	ctx := context.Background()
	for seq := int64(2); seq <= 4; seq++ {
		w.allocated(ctx, []*hadoopproto.ContainerProto{testContainer(seq)}, haveToken)
		w.completed([]*hadoopproto.ContainerStatusProto{completedStatus(seq, 1)})
	}
	if len(calls) != 1 || !strings.Contains(calls[0].Error(), "failed 2 times") {
		t.Fatalf("Failed called with %v, want once after the second failure", calls)
	}
	if n := wanted(w); n != 0 {
		t.Fatalf("still asking for %d containers after giving up", n)
	}
}

func TestWorkersNeedAnNMToken(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	w := newWorkers(WorkerOptions{Count: 1, Launch: func(int) (nm.LaunchContext, error) {
		return nm.LaunchContext{Commands: []string{"worker"}}, nil
	}, NodeManager: func(nm.Options) (NodeManager, error) { return &fakeNM{}, nil }}, logrus.NewEntry(l))
	c := testContainer(2)
	c.NodeId.Host = proto.String("node2")
	if release := w.allocated(context.Background(), []*hadoopproto.ContainerProto{c}, haveToken); len(release) != 1 {
		t.Fatal("a container on a node without an NM token was not released")
	}
	if st := w.status(); st[0].State != WorkerRequested || !strings.Contains(st[0].LastExit, "no NM token") {
		t.Fatalf("worker: %+v", st[0])
	}
}

func TestLocalResourcesRoundTrip(t *testing.T) {
	in := map[string]rm.LocalResource{
		"tidewatch": {URL: "hdfs://nn:8020/staging/app/tidewatch", Type: rm.TypeFile, Visibility: rm.VisibilityApplication, Size: 42, Timestamp: 1700000000123},
	}
	v, err := EncodeLocalResources(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(v, `"' $`) {
		t.Fatalf("%q is not safe in a shell script", v)
	}
	out, err := LocalResources(func(string) string { return v })
	if err != nil {
		t.Fatal(err)
	}
	r := out["tidewatch"]
	if r.URL != in["tidewatch"].URL || r.Size != 42 || r.Timestamp != 1700000000123 ||
		r.Type != hadoopproto.LocalResourceTypeProto_FILE || r.Visibility != hadoopproto.LocalResourceVisibilityProto_APPLICATION {
		t.Fatalf("decoded %+v", r)
	}
	for _, bad := range []string{"", "!!", "bm90IGpzb24="} {
		if _, err := LocalResources(func(string) string { return bad }); err == nil {
			t.Errorf("%q decoded without an error", bad)
		}
	}
}

func TestWorkerRegistration(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	w := newWorkers(WorkerOptions{Count: 1,
		Launch:      func(int) (nm.LaunchContext, error) { return nm.LaunchContext{Commands: []string{"worker"}}, nil },
		NodeManager: func(nm.Options) (NodeManager, error) { return &fakeNM{}, nil },
	}, logrus.NewEntry(l))
	id := hadoopproto.ContainerIDString(testContainer(2).GetId())
	if err := w.register(1, id, "http://node1:4000"); !errors.Is(err, ErrUnknownWorker) {
		t.Errorf("registering a worker not started yet: %v", err)
	}
	w.allocated(context.Background(), []*hadoopproto.ContainerProto{testContainer(2)}, haveToken)
	for _, bad := range []struct {
		k  int
		id string
	}{{0, id}, {2, id}, {1, "container_other"}} {
		if err := w.register(bad.k, bad.id, "http://node1:4000"); !errors.Is(err, ErrUnknownWorker) {
			t.Errorf("register(%d, %s): %v", bad.k, bad.id, err)
		}
	}
	if err := w.register(1, id, "http://node1:4000"); err != nil {
		t.Fatal(err)
	}
	if st := w.status(); st[0].URL != "http://node1:4000" {
		t.Fatalf("status %+v", st[0])
	}
	w.completed([]*hadoopproto.ContainerStatusProto{completedStatus(2, 137)})
	if st := w.status(); st[0].URL != "" {
		t.Errorf("a lost worker keeps its endpoint: %+v", st[0])
	}
}
