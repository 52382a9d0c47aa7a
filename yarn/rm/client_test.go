package rm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/yarn/rm"
	"github.com/tidewatch/tidewatch/yarn/rm/rmtest"
)

func client(t *testing.T, urls ...string) (*rm.Client, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	l.SetLevel(logrus.DebugLevel)
	o := rm.DefaultOptions()
	o.BaseURLs = urls
	o.User = "alice"
	o.RequestTimeout = 5 * time.Second
	o.MaxRetries = 3
	o.Backoff = rm.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}
	o.Log = logrus.NewEntry(l)
	c, err := rm.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, &logs
}

func submission(id string, tags ...string) *rm.ApplicationSubmission {
	return &rm.ApplicationSubmission{
		ApplicationID:   id,
		Name:            "job-a",
		ApplicationType: rm.ApplicationTypeTidewatch,
		Queue:           "default",
		AMContainerSpec: rm.ContainerLaunchContext{
			LocalResources: map[string]rm.LocalResource{
				"tidewatch": {URL: "hdfs://nn:8020/staging/bin/tidewatch", Type: rm.TypeFile, Visibility: rm.VisibilityApplication, Size: 10, Timestamp: 1700000000123},
			},
			Environment: map[string]string{"TIDEWATCH_JOB": "job-a"},
			Commands:    []string{"./tidewatch am 1><LOG_DIR>/stdout 2><LOG_DIR>/stderr"},
			Credentials: &rm.Credentials{Tokens: map[string][]byte{"hdfs-token": []byte("secret-token-bytes")}},
		},
		MaxAppAttempts:                    3,
		AttemptFailuresValidityIntervalMS: 60000,
		Resource:                          rm.Resource{MemoryMB: 1024, VCores: 1},
		Tags:                              tags,
	}
}

func newApp(t *testing.T, c *rm.Client) string {
	t.Helper()
	na, err := c.NewApplication(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return na.ApplicationID
}

func TestLifecycleAgainstFake(t *testing.T) {
	s := rmtest.New(rmtest.Options{RequireUser: true})
	defer s.Close()
	c, _ := client(t, s.URL())
	ctx := context.Background()

	na, err := c.NewApplication(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if na.ApplicationID != "application_1795472519589_0001" || na.MaximumResourceCapability.MemoryMB != 8192 {
		t.Fatalf("new application %+v", na)
	}
	sub := submission(na.ApplicationID, "Job-A", "tidewatch")
	if err := c.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.App(na.ApplicationID)
	if snap.User != "alice" || snap.ApplicationType != "TIDEWATCH" || snap.MaxAttempts != 2 || !snap.HasCredentials ||
		snap.LocalResources["tidewatch"].Timestamp != 1700000000123 || snap.Environment["TIDEWATCH_JOB"] != "job-a" ||
		strings.Join(snap.Tags, ",") != "job-a,tidewatch" || snap.Priority != -1 {
		t.Errorf("fake saw %+v", snap)
	}

	a, err := c.Application(ctx, na.ApplicationID)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != rm.StateAccepted || a.FinalStatus != rm.FinalUndefined || a.TrackingURL != "" || a.ApplicationType != "TIDEWATCH" {
		t.Errorf("after submit: %+v", a)
	}
	if err := s.LaunchAttempt(na.ApplicationID); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterAttempt(na.ApplicationID, "am-host", "http://am-host:4040/"); err != nil {
		t.Fatal(err)
	}
	a, err = c.Application(ctx, na.ApplicationID)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != rm.StateRunning || a.TrackingURL != s.URL()+"/proxy/"+na.ApplicationID+"/" || a.RunningContainers != 1 ||
		!strings.Contains(a.AMContainerLogs, "container_1795472519589_0001_01_000001") {
		t.Errorf("running: %+v", a)
	}
	atts, err := c.Attempts(ctx, na.ApplicationID)
	if err != nil || len(atts) != 1 || atts[0].ContainerID != "container_1795472519589_0001_01_000001" {
		t.Fatalf("attempts %+v %v", atts, err)
	}
	rep, err := c.Attempt(ctx, na.ApplicationID, atts[0].AppAttemptID)
	if err != nil || rep.State != "RUNNING" || rep.OriginalTrackingURL != "http://am-host:4040/" || rep.Host != "am-host" || rep.RPCPort != -1 {
		t.Fatalf("attempt %+v %v", rep, err)
	}

	if err := s.Finish(na.ApplicationID, "SUCCEEDED", "done"); err != nil {
		t.Fatal(err)
	}
	st, err := c.AppState(ctx, na.ApplicationID)
	if err != nil || st != "FINISHING" {
		t.Errorf("internal state %q %v, want FINISHING while the AM lingers", st, err)
	}
	a, _ = c.Application(ctx, na.ApplicationID)
	if a.State != rm.StateFinished || a.FinalStatus != rm.FinalSucceeded || a.Diagnostics != "done" {
		t.Errorf("finished: %+v", a)
	}
	if err := s.AMContainerExited(na.ApplicationID); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.AppState(ctx, na.ApplicationID); st != "FINISHED" {
		t.Errorf("internal state %q after exit", st)
	}
	// A kill of a finished application reports its final state.
	kr, err := c.Kill(ctx, na.ApplicationID, "")
	if err != nil || !kr.Done || kr.State != "FINISHED" {
		t.Errorf("kill finished app: %+v %v", kr, err)
	}
}

func TestAttemptsUpToMaxAttempts(t *testing.T) {
	s := rmtest.New(rmtest.Options{MaxAttempts: 3})
	defer s.Close()
	c, _ := client(t, s.URL())
	ctx := context.Background()
	id := newApp(t, c)
	sub := submission(id)
	sub.MaxAppAttempts = 2
	if err := c.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if err := s.LaunchAttempt(id); err != nil {
			t.Fatal(err)
		}
		if err := s.FailAttempt(id, fmt.Sprintf("exit %d", i)); err != nil {
			t.Fatal(err)
		}
		a, err := c.Application(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		atts, _ := c.Attempts(ctx, id)
		switch i {
		case 1:
			if a.State != rm.StateAccepted || len(atts) != 2 {
				t.Errorf("after 1st failure: state %s, %d attempts", a.State, len(atts))
			}
			r, err := c.Attempt(ctx, id, atts[0].AppAttemptID)
			if err != nil || r.State != "FAILED" || r.Diagnostics != "exit 1" {
				t.Errorf("failed attempt %+v %v", r, err)
			}
		case 2:
			if a.State != rm.StateFailed || a.FinalStatus != rm.FinalFailed || len(atts) != 2 || !strings.Contains(a.Diagnostics, "failed 2 times") {
				t.Errorf("after 2nd failure: %+v, %d attempts", a, len(atts))
			}
		}
	}
}

func TestKillSemantics(t *testing.T) {
	s := rmtest.New(rmtest.Options{})
	defer s.Close()
	c, _ := client(t, s.URL())
	ctx := context.Background()
	id := newApp(t, c)
	if err := c.Submit(ctx, submission(id)); err != nil {
		t.Fatal(err)
	}
	kr, err := c.Kill(ctx, id, "stopped by tidewatch")
	if err != nil || kr.Done || kr.State != "ACCEPTED" {
		t.Fatalf("first kill %+v %v, want 202 ACCEPTED", kr, err)
	}
	if st, _ := c.AppState(ctx, id); st != "KILLING" {
		t.Errorf("internal state %q, want KILLING", st)
	}
	if a, _ := c.Application(ctx, id); a.State != rm.StateAccepted {
		t.Errorf("public state while killing %q, want ACCEPTED", a.State)
	}
	final, err := c.KillAndWait(ctx, id, "", time.Millisecond)
	if err != nil || final != "KILLED" {
		t.Fatalf("KillAndWait %q %v", final, err)
	}
	a, _ := c.Application(ctx, id)
	if a.State != rm.StateKilled || a.FinalStatus != rm.FinalKilled ||
		a.Diagnostics != "Application "+id+" was killed by user alice with diagnostic message: stopped by tidewatch" {
		t.Errorf("killed app %+v", a)
	}
	if _, err := c.Kill(ctx, "application_1795472519589_9999", ""); !errors.Is(err, rm.ErrNotFound) {
		t.Errorf("kill unknown: %v", err)
	}
}

func TestListAndFindByTag(t *testing.T) {
	s := rmtest.New(rmtest.Options{})
	defer s.Close()
	c, _ := client(t, s.URL())
	ctx := context.Background()

	apps, err := c.Applications(ctx, rm.ListFilter{})
	if err != nil || len(apps) != 0 {
		t.Fatalf("empty cluster: %v %v", apps, err)
	}
	ids := make([]string, 3)
	for i := range ids {
		ids[i] = newApp(t, c)
		sub := submission(ids[i], fmt.Sprintf("job-%d", i), "tidewatch")
		if i == 2 {
			sub.ApplicationType = "OTHER"
		}
		if err := c.Submit(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.LaunchAttempt(ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterAttempt(ids[1], "h", ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		f    rm.ListFilter
		want []string
	}{
		{rm.ListFilter{States: []string{"RUNNING"}}, ids[1:2]},
		{rm.ListFilter{States: []string{"accepted", "RUNNING"}}, ids},
		{rm.ListFilter{ApplicationTypes: []string{"tidewatch"}}, ids[:2]},
		{rm.ListFilter{ApplicationTags: []string{"job-2", "job-0"}}, []string{ids[0], ids[2]}},
		{rm.ListFilter{States: []string{"KILLED"}}, nil},
		{rm.ListFilter{Limit: 1}, ids[:1]},
	}
	for _, tt := range tests {
		apps, err := c.Applications(ctx, tt.f)
		if err != nil {
			t.Fatalf("%+v: %v", tt.f, err)
		}
		var got []string
		for _, a := range apps {
			got = append(got, a.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%+v: got %v, want %v", tt.f, got, tt.want)
		}
	}
	found, err := c.FindByTag(ctx, "JOB-1")
	if err != nil || len(found) != 1 || found[0].ID != ids[1] {
		t.Errorf("FindByTag: %v %v", found, err)
	}
	found, err = c.FindByTag(ctx, "tidewatch", "TIDEWATCH")
	if err != nil || len(found) != 2 {
		t.Errorf("FindByTag with type: %v %v", found, err)
	}
	_, err = c.Applications(ctx, rm.ListFilter{States: []string{"BOGUS"}})
	var re *rm.RemoteError
	if !errors.As(err, &re) || re.Status != 400 || re.Exception != "BadRequestException" || !strings.Contains(re.Message, "Invalid application-state BOGUS") {
		t.Errorf("bad state filter: %v", err)
	}
}

func TestClusterEndpoints(t *testing.T) {
	s := rmtest.New(rmtest.Options{Queues: []string{"default", "streams"}})
	defer s.Close()
	c, _ := client(t, s.URL())
	ctx := context.Background()
	info, err := c.ClusterInfo(ctx)
	if err != nil || info.HAState != "ACTIVE" || info.HadoopVersion != "3.3.6" || info.ID != 1795472519589 {
		t.Errorf("info %+v %v", info, err)
	}
	m, err := c.ClusterMetrics(ctx)
	if err != nil || m.TotalMB != 8192 || m.ActiveNodes != 1 {
		t.Errorf("metrics %+v %v", m, err)
	}
	nodes, err := c.Nodes(ctx, "RUNNING")
	if err != nil || len(nodes) != 1 || nodes[0].ID != "localhost:45454" || nodes[0].State != "RUNNING" {
		t.Errorf("nodes %+v %v", nodes, err)
	}
	nodes, err = c.Nodes(ctx, "LOST")
	if err != nil || len(nodes) != 0 {
		t.Errorf("lost nodes %+v %v", nodes, err)
	}
	si, err := c.Scheduler(ctx)
	if err != nil || si.Type != "capacityScheduler" || fmt.Sprint(si.LeafQueues()) != "[default streams]" || si.Root.Name != "root" {
		t.Errorf("scheduler %+v %v", si, err)
	}
}

func TestErrorTranslation(t *testing.T) {
	s := rmtest.New(rmtest.Options{})
	defer s.Close()
	c, _ := client(t, s.URL())
	ctx := context.Background()

	_, err := c.Application(ctx, "application_1795472519589_9999")
	var re *rm.RemoteError
	if !errors.Is(err, rm.ErrNotFound) || !errors.As(err, &re) || re.JavaClassName != "org.apache.hadoop.yarn.webapp.NotFoundException" ||
		re.Message != "java.lang.Exception: app with id: application_1795472519589_9999 not found" || re.Op != "get application" {
		t.Errorf("unknown app: %#v", err)
	}
	if strings.Contains(err.Error(), "user.name") {
		t.Errorf("error exposes the query: %v", err)
	}
	if _, err := c.Application(ctx, "application_bogus"); !errors.Is(err, rm.ErrInvalidID) {
		t.Errorf("malformed id: %v", err)
	}

	id := newApp(t, c)
	if err := c.Submit(ctx, submission(id)); err != nil {
		t.Fatal(err)
	}
	err = c.Submit(ctx, submission(id))
	if !errors.Is(err, rm.ErrBadRequest) || !errors.As(err, &re) || !strings.Contains(re.Message, "already present") {
		t.Errorf("duplicate submit: %v", err)
	}
	big := submission(newApp(t, c))
	big.Resource.MemoryMB = 1 << 20
	err = c.Submit(ctx, big)
	if !errors.Is(err, rm.ErrBadRequest) || !errors.As(err, &re) || !strings.Contains(re.Message, "Requested more memory than configured max") {
		t.Errorf("too much memory: %v", err)
	}
	if strings.Contains(fmt.Sprint(err), "secret-token-bytes") {
		t.Errorf("error leaks a token: %v", err)
	}
	bad := submission(id)
	bad.Resource.VCores = 0
	if err := c.Submit(ctx, bad); !errors.Is(err, rm.ErrInvalidSubmission) || !strings.Contains(err.Error(), "Resource.VCores") {
		t.Errorf("local validation: %v", err)
	}

	// A plain-text 403 (kill without MODIFY_APP) keeps its text.
	s.InjectFault(rmtest.Fault{Method: "PUT", Status: 403, Body: "Unauthorized attempt to kill appid " + id + " by remote user bob"})
	_, err = c.Kill(ctx, id, "")
	if !errors.Is(err, rm.ErrForbidden) || !errors.As(err, &re) || !strings.Contains(re.Message, "Unauthorized attempt to kill") {
		t.Errorf("403: %v", err)
	}
}

func TestRequireUserIsSatisfied(t *testing.T) {
	s := rmtest.New(rmtest.Options{RequireUser: true})
	defer s.Close()
	c, _ := client(t, s.URL())
	if _, err := c.NewApplication(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Requests() {
		if r.Query.Get("user.name") != "alice" {
			t.Errorf("%s %s without user.name", r.Method, r.Path)
		}
	}
}

func TestRetriesServerErrorsWithBackoff(t *testing.T) {
	s := rmtest.New(rmtest.Options{})
	defer s.Close()
	c, logs := client(t, s.URL())
	ctx := context.Background()
	id := newApp(t, c)
	if err := c.Submit(ctx, submission(id)); err != nil {
		t.Fatal(err)
	}
	path := "/ws/v1/cluster/apps/" + id
	s.InjectFault(rmtest.Fault{Method: "GET", Path: path, Status: 500, Times: 2})
	if _, err := c.Application(ctx, id); err != nil {
		t.Fatalf("after two 500s: %v", err)
	}
	if n := s.CountRequests("GET", path); n != 3 {
		t.Errorf("%d GETs, want 3", n)
	}
	if !strings.Contains(logs.String(), "retrying resourcemanager request") {
		t.Errorf("no retry logged:\n%s", logs)
	}

	// MaxRetries=3: four tries, then the 500 comes back as a RemoteError.
	s.InjectFault(rmtest.Fault{Method: "GET", Path: path, Status: 500, Times: 100})
	_, err := c.Application(ctx, id)
	var re *rm.RemoteError
	if !errors.Is(err, rm.ErrServer) || !errors.As(err, &re) || re.Status != 500 || re.Exception != "YarnRuntimeException" {
		t.Errorf("persistent 500: %v", err)
	}
	if n := s.CountRequests("GET", path); n != 3+4 {
		t.Errorf("%d GETs, want 7", n)
	}

	// 4xx is not retried.
	before := s.CountRequests("GET", "/ws/v1/cluster/apps/application_1795472519589_9999")
	_, _ = c.Application(ctx, "application_1795472519589_9999")
	if n := s.CountRequests("GET", "/ws/v1/cluster/apps/application_1795472519589_9999") - before; n != 1 {
		t.Errorf("404 sent %d times", n)
	}
}

func TestBackoffDelays(t *testing.T) {
	b := rm.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
}

func TestHAFollowsStandbyRedirect(t *testing.T) {
	active := rmtest.New(rmtest.Options{})
	defer active.Close()
	standby := rmtest.New(rmtest.Options{})
	defer standby.Close()
	standby.SetStandby(active.URL())

	c, _ := client(t, standby.URL(), active.URL())
	ctx := context.Background()
	info, err := c.ClusterInfo(ctx)
	if err != nil || info.HAState != "STANDBY" {
		t.Fatalf("standby answers /info itself: %+v %v", info, err)
	}
	id := newApp(t, c)
	if n := standby.CountRequests("POST", "/ws/v1/cluster/apps/new-application"); n != 1 {
		t.Errorf("standby saw %d new-application requests", n)
	}
	// A fresh client starts at the standby again: the submit's body must be
	// re-sent through the 307.
	c2, _ := client(t, standby.URL(), active.URL())
	if err := c2.Submit(ctx, submission(id)); err != nil {
		t.Fatal(err)
	}
	if snap, ok := active.App(id); !ok || snap.Name != "job-a" {
		t.Fatal("submit did not reach the active RM with its body")
	}
	if n := standby.CountRequests("POST", "/ws/v1/cluster/apps"); n != 1 {
		t.Errorf("standby saw %d submits", n)
	}
	if c.ActiveURL() != active.URL() || c2.ActiveURL() != active.URL() {
		t.Errorf("active %s, want %s", c.ActiveURL(), active.URL())
	}
	// Later calls go straight to the active RM.
	before := len(standby.Requests())
	if _, err := c.Application(ctx, id); err != nil {
		t.Fatal(err)
	}
	if len(standby.Requests()) != before {
		t.Error("client still goes through the standby")
	}
}

func TestHAFailoverOnConnectionErrorAndStandbyPage(t *testing.T) {
	dead := rmtest.New(rmtest.Options{})
	deadURL := dead.URL()
	dead.Close() // connection refused from now on
	lost := rmtest.New(rmtest.Options{})
	defer lost.Close()
	lost.SetStandby("") // a standby that knows no active: 503 page
	active := rmtest.New(rmtest.Options{})
	defer active.Close()

	c, logs := client(t, deadURL, lost.URL(), active.URL())
	ctx := context.Background()
	id := newApp(t, c)
	if err := c.Submit(ctx, submission(id)); err != nil {
		t.Fatal(err)
	}
	if _, ok := active.App(id); !ok {
		t.Fatal("app not on the active RM")
	}
	if c.ActiveURL() != active.URL() {
		t.Errorf("active %s", c.ActiveURL())
	}
	if !strings.Contains(logs.String(), "using resourcemanager") {
		t.Errorf("failover not logged:\n%s", logs)
	}

	// After a failover back, the client moves again.
	active.SetStandby(lost.URL())
	lost.SetActive()
	if _, err := c.NewApplication(ctx); err != nil {
		t.Fatal(err)
	}
	if c.ActiveURL() != lost.URL() {
		t.Errorf("active %s after failover, want %s", c.ActiveURL(), lost.URL())
	}
}

func TestHANoActiveGivesUp(t *testing.T) {
	a := rmtest.New(rmtest.Options{})
	defer a.Close()
	b := rmtest.New(rmtest.Options{})
	defer b.Close()
	a.SetStandby("")
	b.SetStandby("")
	c, _ := client(t, a.URL(), b.URL())
	_, err := c.NewApplication(context.Background())
	if !errors.Is(err, rm.ErrStandby) || !errors.Is(err, rm.ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	// 4 rounds (MaxRetries 3) over 2 RMs.
	if na, nb := len(a.Requests()), len(b.Requests()); na != 4 || nb != 4 {
		t.Errorf("requests %d and %d, want 4 each", na, nb)
	}
}

func TestRedirectLoopIsStandby(t *testing.T) {
	a := rmtest.New(rmtest.Options{})
	defer a.Close()
	b := rmtest.New(rmtest.Options{})
	defer b.Close()
	a.SetStandby(b.URL())
	b.SetStandby(a.URL())
	c, _ := client(t, a.URL())
	if _, err := c.Applications(context.Background(), rm.ListFilter{}); !errors.Is(err, rm.ErrStandby) {
		t.Fatalf("err %v", err)
	}
}

func TestSubmitWhoseAnswerIsLostIsNotResent(t *testing.T) {
	for _, tags := range [][]string{{"job-x"}, nil} {
		t.Run(fmt.Sprintf("tags=%v", tags), func(t *testing.T) {
			s := rmtest.New(rmtest.Options{})
			defer s.Close()
			c, logs := client(t, s.URL())
			ctx := context.Background()
			id := newApp(t, c)
			s.InjectFault(rmtest.Fault{Method: "POST", Path: "/ws/v1/cluster/apps", Mode: rmtest.FaultDropAfterHandling})
			if err := c.Submit(ctx, submission(id, tags...)); err != nil {
				t.Fatalf("submit: %v", err)
			}
			if n := s.CountRequests("POST", "/ws/v1/cluster/apps"); n != 1 {
				t.Errorf("%d submits, want 1", n)
			}
			checked := false
			for _, r := range s.Requests() {
				if r.Method == "GET" && (r.Query.Get("applicationTags") == "job-x" || r.Path == "/ws/v1/cluster/apps/"+id) {
					checked = true
				}
			}
			if !checked {
				t.Errorf("no check before deciding: %+v", s.Requests())
			}
			if !strings.Contains(logs.String(), "answer was lost") {
				t.Errorf("not logged:\n%s", logs)
			}
		})
	}
}

func TestSubmitThatNeverArrivedIsResent(t *testing.T) {
	for _, f := range []rmtest.Fault{
		{Method: "POST", Path: "/ws/v1/cluster/apps", Mode: rmtest.FaultDrop},
		{Method: "POST", Path: "/ws/v1/cluster/apps", Status: 500},
	} {
		s := rmtest.New(rmtest.Options{})
		c, _ := client(t, s.URL())
		ctx := context.Background()
		id := newApp(t, c)
		s.InjectFault(f)
		if err := c.Submit(ctx, submission(id, "job-y")); err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if n := s.CountRequests("POST", "/ws/v1/cluster/apps"); n != 2 {
			t.Errorf("%+v: %d submits, want 2", f, n)
		}
		if ids := s.AppIDs(); len(ids) != 1 {
			t.Errorf("%+v: %d apps", f, len(ids))
		}
		s.Close()
	}
}

func TestSubmitUncertainWhenCheckFails(t *testing.T) {
	s := rmtest.New(rmtest.Options{})
	defer s.Close()
	c, _ := client(t, s.URL())
	id := newApp(t, c)
	s.InjectFault(rmtest.Fault{Method: "POST", Path: "/ws/v1/cluster/apps", Mode: rmtest.FaultDropAfterHandling})
	s.InjectFault(rmtest.Fault{Method: "GET", Path: "/ws/v1/cluster/apps", Status: 500, Times: 100})
	err := c.Submit(context.Background(), submission(id, "job-z"))
	if !errors.Is(err, rm.ErrSubmitUncertain) {
		t.Fatalf("err %v", err)
	}
	if n := s.CountRequests("POST", "/ws/v1/cluster/apps"); n != 1 {
		t.Errorf("%d submits, want 1", n)
	}
}

func TestContextCancelStopsRetrying(t *testing.T) {
	s := rmtest.New(rmtest.Options{})
	defer s.Close()
	o := rm.DefaultOptions()
	o.BaseURLs = []string{s.URL()}
	o.User = "alice"
	o.Backoff = rm.Backoff{Initial: time.Hour, Max: time.Hour, Multiplier: 1}
	c, err := rm.New(o)
	if err != nil {
		t.Fatal(err)
	}
	s.InjectFault(rmtest.Fault{Status: 500, Times: 100})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.ClusterInfo(ctx)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Requests()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no request seen")
		}
		time.Sleep(time.Millisecond) // polling for the first request, bounded by the deadline
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client kept waiting after cancel")
	}
}

func TestJerseyShapesFromServer(t *testing.T) {
	bodies := map[string]string{
		"/ws/v1/cluster/apps":  `{"apps":null}`,
		"/ws/v1/cluster/nodes": `{"nodes":{"node":{"id":"n1:45454","state":"RUNNING"}}}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, bodies[r.URL.Path])
	}))
	defer srv.Close()
	c, _ := client(t, srv.URL)
	apps, err := c.Applications(context.Background(), rm.ListFilter{})
	if err != nil || apps != nil {
		t.Errorf(`{"apps":null}: %v %v`, apps, err)
	}
	nodes, err := c.Nodes(context.Background())
	if err != nil || len(nodes) != 1 || nodes[0].ID != "n1:45454" {
		t.Errorf("single node object: %v %v", nodes, err)
	}
	bodies["/ws/v1/cluster/apps"] = `{"apps":{"app":{"id":"application_1_0001","applicationTags":"a,b"}}}`
	apps, err = c.Applications(context.Background(), rm.ListFilter{})
	if err != nil || len(apps) != 1 || fmt.Sprint(apps[0].TagList()) != "[a b]" {
		t.Errorf("single app object: %v %v", apps, err)
	}
	bodies["/ws/v1/cluster/apps"] = `<html>oops</html>`
	if _, err := c.Applications(context.Background(), rm.ListFilter{}); !errors.Is(err, rm.ErrUnexpectedResponse) {
		t.Errorf("html 200: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		mod   func(*rm.Options)
		field string
	}{
		{func(o *rm.Options) { o.BaseURLs = nil }, "BaseURLs"},
		{func(o *rm.Options) { o.BaseURLs = []string{"rm1:8088"} }, "BaseURLs[0]"},
		{func(o *rm.Options) { o.BaseURLs = []string{"http://u:p@rm1:8088"} }, "BaseURLs[0]"},
		{func(o *rm.Options) { o.User = "" }, "User"},
		{func(o *rm.Options) { o.RequestTimeout = -1 }, "RequestTimeout"},
		{func(o *rm.Options) { o.Backoff.Multiplier = 0.5 }, "Backoff.Multiplier"},
		{func(o *rm.Options) { o.Backoff.Max = time.Nanosecond }, "Backoff"},
	}
	for _, tt := range tests {
		o := rm.DefaultOptions()
		o.BaseURLs = []string{"http://rm1:8088"}
		o.User = "u"
		tt.mod(&o)
		err := o.Validate()
		if !errors.Is(err, rm.ErrInvalidOptions) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: %v", tt.field, err)
		}
	}
	o := rm.DefaultOptions()
	o.BaseURLs = []string{"http://rm1:8088", "https://rm2:8090/prefix"}
	o.User = "u"
	if err := o.Validate(); err != nil {
		t.Error(err)
	}
}

func TestNodeContainer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws/v1/node/containers/container_1_0001_01_000001" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"container":{"id":"container_1_0001_01_000001","state":"RUNNING","exitCode":-1000,"containerLogFiles":"stdout"}}`)
	}))
	defer srv.Close()
	c, _ := client(t, srv.URL)
	host := strings.TrimPrefix(srv.URL, "http://")
	nc, err := c.NodeContainer(context.Background(), host, "container_1_0001_01_000001")
	if err != nil || nc.State != "RUNNING" || len(nc.ContainerLogFiles) != 1 {
		t.Errorf("%+v %v", nc, err)
	}
	if _, err := c.NodeContainer(context.Background(), host, "container_1_0001_01_000002"); !errors.Is(err, rm.ErrNotFound) {
		t.Errorf("missing container: %v", err)
	}
	if _, err := c.NodeContainer(context.Background(), host, "../../x"); !errors.Is(err, rm.ErrInvalidID) {
		t.Errorf("bad id: %v", err)
	}
}

func TestConnectionRefusedSingleRM(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, _ := client(t, "http://"+addr)
	_, err = c.ClusterInfo(context.Background())
	if !errors.Is(err, rm.ErrUnavailable) || !strings.Contains(err.Error(), "giving up after 4") {
		t.Errorf("err %v", err)
	}
}
