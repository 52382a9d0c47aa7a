package rm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/yarn/rm/internal/recorded"
)

const samplesDir = "testdata/samples"

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The copies under testdata must stay identical to the shared recordings.
func TestSamplesMatchSharedRecordings(t *testing.T) {
	shared := filepath.Join("..", "..", "..", "shared", "samples", "yarn", "rest")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("shared samples not beside the repository (%v)", err)
	}
	entries, err := os.ReadDir(samplesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		want, err := os.ReadFile(filepath.Join(shared, e.Name()))
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
			continue
		}
		if got := readSample(t, e.Name()); !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s", e.Name(), shared)
		}
	}
	sharedEntries, _ := os.ReadDir(shared)
	for _, e := range sharedEntries {
		if strings.HasSuffix(e.Name(), ".json") || strings.HasSuffix(e.Name(), ".md") {
			if _, err := os.Stat(filepath.Join(samplesDir, e.Name())); err != nil {
				t.Errorf("recorded %s has no copy in %s", e.Name(), samplesDir)
			}
		}
	}
}

func TestDecodeRecordedApplications(t *testing.T) {
	tests := []struct {
		file                       string
		state, final, trackingURL  string
		running                    int64
		vcoreSeconds               int64
		priority                   int32
		diagnosticsPrefix          string
		hasResourceInfoButIgnoreIt bool
	}{
		{"app.during.json", StateAccepted, FinalUndefined, "", 1, 0, 0, "AM container is launched", true},
		{"app.after.json", StateFailed, FinalFailed, "http://localhost:8088/cluster/app/application_1795472519589_0002", -1, 20, 0, "Application application_1795472519589_0002 failed 1 times", false},
		{"app.liveness-expired-30s-test.json", StateFailed, FinalFailed, "http://localhost:8088/cluster/app/application_1795472146560_0001", -1, 32, -1, "Application application_1795472146560_0001 failed 1 times", false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var w struct {
				App *Application `json:"app"`
			}
			if err := json.Unmarshal(readSample(t, tt.file), &w); err != nil {
				t.Fatal(err)
			}
			a := w.App
			if a == nil {
				t.Fatal("no app")
			}
			if a.State != tt.state || a.FinalStatus != tt.final || a.TrackingURL != tt.trackingURL {
				t.Errorf("state/final/tracking = %s/%s/%q, want %s/%s/%q", a.State, a.FinalStatus, a.TrackingURL, tt.state, tt.final, tt.trackingURL)
			}
			if a.RunningContainers != tt.running || a.Priority != tt.priority {
				t.Errorf("runningContainers=%d priority=%d, want %d %d", a.RunningContainers, a.Priority, tt.running, tt.priority)
			}
			if !strings.HasPrefix(a.Diagnostics, tt.diagnosticsPrefix) {
				t.Errorf("diagnostics %q", a.Diagnostics)
			}
			if !strings.HasPrefix(a.AMContainerLogs, "http://localhost:8042/node/containerlogs/container_") || a.MasterNodeID != "localhost:45454" {
				t.Errorf("amContainerLogs=%q masterNodeId=%q", a.AMContainerLogs, a.MasterNodeID)
			}
			if got := a.ResourceSecondsMap["vcores"]; got != tt.vcoreSeconds {
				t.Errorf("resourceSecondsMap[vcores] = %d, want %d", got, tt.vcoreSeconds)
			}
			if to := a.TimeoutList(); len(to) != 1 || to[0].Type != "LIFETIME" || to[0].RemainingTimeInSeconds != -1 {
				t.Errorf("timeouts = %+v", to)
			}
			if a.ClusterID == 0 || a.StartedTime == 0 || a.LaunchTime == 0 {
				t.Errorf("times not decoded: %+v", a)
			}
			if a.TagList() != nil {
				t.Errorf("tags %v, want none", a.TagList())
			}
		})
	}
}

func TestDecodeRecordedAttempts(t *testing.T) {
	for _, f := range []string{"appattempts.during.json", "appattempts.after.json"} {
		var w struct {
			AppAttempts *struct {
				AppAttempt list[AppAttempt] `json:"appAttempt"`
			} `json:"appAttempts"`
		}
		if err := json.Unmarshal(readSample(t, f), &w); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		as := w.AppAttempts.AppAttempt
		if len(as) != 1 || as[0].ID != 1 || as[0].AppAttemptID != "appattempt_1795472519589_0002_000001" ||
			as[0].ContainerID != "container_1795472519589_0002_01_000001" || as[0].NodeID != "localhost:45454" || as[0].StartTime != 1795472553031 {
			t.Errorf("%s: %+v", f, as)
		}
	}
	tests := []struct {
		file, state, orig string
		finished          int64
	}{
		{"appattempt.during.json", "LAUNCHED", "N/A", 0},
		{"appattempt.after.json", "FAILED", "http://localhost:8088/cluster/app/application_1795472519589_0002", 1795472574102},
	}
	for _, tt := range tests {
		var r AttemptReport
		if err := json.Unmarshal(readSample(t, tt.file), &r); err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if r.State != tt.state || r.OriginalTrackingURL != tt.orig || r.RPCPort != -1 || r.StartedTime != 1795472553031 ||
			int64(r.FinishedTime) != tt.finished || r.AMContainerID != "container_1795472519589_0002_01_000001" || r.Host != "N/A" {
			t.Errorf("%s: %+v", tt.file, r)
		}
	}
}

func TestDecodeRecordedNewApplicationAndContainer(t *testing.T) {
	var na NewApplication
	if err := json.Unmarshal(readSample(t, "new-application.response.json"), &na); err != nil {
		t.Fatal(err)
	}
	if na.ApplicationID != "application_1795472519589_0002" || na.MaximumResourceCapability != (Resource{MemoryMB: 8192, VCores: 8}) {
		t.Errorf("new-application = %+v", na)
	}
	var w struct {
		Container *NodeContainer `json:"container"`
	}
	if err := json.Unmarshal(readSample(t, "nm-container.during.json"), &w); err != nil {
		t.Fatal(err)
	}
	c := w.Container
	if c.ID != "container_1795472519589_0002_01_000001" || c.State != "RUNNING" || c.ExitCode != -1000 ||
		c.TotalMemoryNeededMB != 1024 || len(c.ContainerLogFiles) != 6 || c.ContainerLogFiles[5] != "stdout" {
		t.Errorf("container = %+v", c)
	}
}

// semanticJSON decodes JSON into generic values so that key order and
// spacing do not matter.
func semanticJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return v
}

// The recorded REST-only submission, built with the client's types, must
// marshal to the same JSON as was sent to the real RM; and decoding the
// recording and encoding it again must give it back.
func TestSubmitRequestRoundTrip(t *testing.T) {
	want := readSample(t, "submit-app.request.json")
	prio := int32(0)
	built := ApplicationSubmission{
		ApplicationID:   "application_1795472519589_0002",
		Name:            "rest-shell-am",
		ApplicationType: "YARN",
		Queue:           "default",
		Priority:        &prio,
		AMContainerSpec: ContainerLaunchContext{
			Commands:    []string{"{ echo hello-from-rest-am; date; echo FOO=$FOO; echo CONTAINER_ID=$CONTAINER_ID; sleep 20; echo bye-from-rest-am; } 1><LOG_DIR>/stdout 2><LOG_DIR>/stderr"},
			Environment: map[string]string{"FOO": "bar"},
		},
		MaxAppAttempts: 1,
		Resource:       Resource{MemoryMB: 1024, VCores: 1},
	}
	got, err := json.Marshal(&built)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := semanticJSON(t, got), semanticJSON(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("built submission\n got %s\nwant %s", got, want)
	}
	if err := built.Validate(); err != nil {
		t.Errorf("recorded submission does not validate: %v", err)
	}

	var decoded ApplicationSubmission
	if err := json.Unmarshal(want, &decoded); err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(&decoded)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := semanticJSON(t, again), semanticJSON(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("decoded and re-encoded\n got %s\nwant %s", again, want)
	}
	if !reflect.DeepEqual(decoded, built) {
		t.Errorf("decoded %+v\nbuilt   %+v", decoded, built)
	}
}

// A full Tidewatch submission: every member the sheet lists for §1.3 and
// §1.3.1 in its wire shape.
func TestSubmitRequestFullShape(t *testing.T) {
	prio := int32(3)
	sub := ApplicationSubmission{
		ApplicationID:   "application_1700000000000_0001",
		Name:            "job-a",
		ApplicationType: ApplicationTypeTidewatch,
		Queue:           "streams",
		Priority:        &prio,
		AMContainerSpec: ContainerLaunchContext{
			LocalResources: map[string]LocalResource{
				"tidewatch": {URL: "hdfs://nn:8020/user/tw/.tidewatch/bin/ab/tidewatch", Type: TypeFile, Visibility: VisibilityApplication, Size: 5242880, Timestamp: 1700000001234},
				"job.yaml":  {URL: "hdfs://nn:8020/user/tw/.tidewatch/application_1700000000000_0001/job.yaml", Type: TypeFile, Visibility: VisibilityApplication, Size: 10, Timestamp: 1700000001235},
			},
			Environment: map[string]string{"RM_SCHEDULER": "rm1:8030", "TIDEWATCH_JOB": "job-a"},
			Commands:    []string{"./tidewatch", "am 1><LOG_DIR>/stdout 2><LOG_DIR>/stderr"},
			Credentials: &Credentials{Tokens: map[string][]byte{"hdfs": {0xfb, 0xff, 0x01}}, Secrets: map[string][]byte{"k": []byte("s3cr3t")}},
			ServiceData: map[string][]byte{"aux": {1, 2, 3}},
			ACLs:        map[string]string{"VIEW_APP": "tw ops"},
		},
		MaxAppAttempts:                    4,
		AttemptFailuresValidityIntervalMS: 600000,
		Resource:                          Resource{MemoryMB: 1024, VCores: 1},
		KeepContainers:                    true,
		Tags:                              Tags{"tidewatch", "job-a"},
	}
	if err := sub.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(&sub)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"application-id":"application_1700000000000_0001","application-name":"job-a","application-type":"TIDEWATCH",
	"queue":"streams","priority":3,"unmanaged-AM":false,"max-app-attempts":4,"resource":{"memory":1024,"vCores":1},
	"keep-containers-across-application-attempts":true,"application-tags":{"tag":["tidewatch","job-a"]},
	"attempt-failures-validity-interval":600000,
	"am-container-spec":{
	  "local-resources":{"entry":[
	    {"key":"job.yaml","value":{"resource":"hdfs://nn:8020/user/tw/.tidewatch/application_1700000000000_0001/job.yaml","type":"FILE","visibility":"APPLICATION","size":10,"timestamp":1700000001235}},
	    {"key":"tidewatch","value":{"resource":"hdfs://nn:8020/user/tw/.tidewatch/bin/ab/tidewatch","type":"FILE","visibility":"APPLICATION","size":5242880,"timestamp":1700000001234}}]},
	  "environment":{"entry":[{"key":"RM_SCHEDULER","value":"rm1:8030"},{"key":"TIDEWATCH_JOB","value":"job-a"}]},
	  "commands":{"command":["./tidewatch","am 1><LOG_DIR>/stdout 2><LOG_DIR>/stderr"]},
	  "service-data":{"entry":[{"key":"aux","value":"AQID"}]},
	  "credentials":{"tokens":{"entry":[{"key":"hdfs","value":"-_8B"}]},"secrets":{"entry":[{"key":"k","value":"czNjcjN0"}]}},
	  "application-acls":{"entry":[{"key":"VIEW_APP","value":"tw ops"}]}}}`
	if g, w := semanticJSON(t, got), semanticJSON(t, []byte(want)); !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var back ApplicationSubmission
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, sub) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, sub)
	}
	// Secrets never print.
	for _, s := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := sprintf(s, sub); strings.Contains(out, "s3cr3t") || strings.Contains(out, "czNjcjN0") {
			t.Errorf("format %s prints a secret: %s", s, out)
		}
	}
}

// Every record of confirmations.md, replayed by a server that answers
// exactly as the real RM did, through the client method that makes that
// request.
func TestReplayRecordedAnswers(t *testing.T) {
	records, err := recorded.Load(filepath.Join(samplesDir, "confirmations.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(records) < 40 {
		t.Fatalf("parsed %d records, want ≥ 40", len(records))
	}
	reAttempt := regexp.MustCompile(`^/ws/v1/cluster/apps/([^/]+)/appattempts/([^/]+)$`)
	reAttempts := regexp.MustCompile(`^/ws/v1/cluster/apps/([^/]+)/appattempts$`)
	reState := regexp.MustCompile(`^/ws/v1/cluster/apps/([^/]+)/state$`)
	reApp := regexp.MustCompile(`^/ws/v1/cluster/apps/([^/]+)$`)

	for _, rec := range records {
		t.Run(rec.Title, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if r.Method != rec.Method || r.URL.Path != rec.URL.Path {
					t.Errorf("request %s %s, recorded %s %s", r.Method, r.URL.Path, rec.Method, rec.URL.Path)
				}
				if r.URL.Query().Get("user.name") != "tester" {
					t.Errorf("user.name missing from %s", r.URL)
				}
				for k, v := range rec.ResponseHeaders {
					if k != "Content-Length" {
						w.Header().Set(k, v)
					}
				}
				w.WriteHeader(rec.Status)
				_, _ = w.Write([]byte(rec.Body))
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL)
			ctx := context.Background()
			path, q := rec.URL.Path, rec.URL.Query()
			var err error
			var result any
			switch {
			case rec.Method == "GET" && path == "/ws/v1/cluster/apps" && onlyKeys(q, "states", "applicationTags", "name"):
				var f ListFilter
				if s := q.Get("states"); s != "" {
					f.States = strings.Split(s, ",")
				}
				if s := q.Get("applicationTags"); s != "" {
					f.ApplicationTags = strings.Split(s, ",")
				}
				f.Name = q.Get("name")
				result, err = c.Applications(ctx, f)
			case rec.Method == "GET" && reAttempt.MatchString(path):
				m := reAttempt.FindStringSubmatch(path)
				result, err = c.Attempt(ctx, m[1], m[2])
			case rec.Method == "GET" && reAttempts.MatchString(path):
				result, err = c.Attempts(ctx, reAttempts.FindStringSubmatch(path)[1])
			case rec.Method == "GET" && reState.MatchString(path):
				result, err = c.AppState(ctx, reState.FindStringSubmatch(path)[1])
			case rec.Method == "PUT" && reState.MatchString(path) && strings.Contains(rec.RequestBody, `"KILLED"`):
				var body struct{ Diagnostics string }
				_ = json.Unmarshal([]byte(rec.RequestBody), &body)
				result, err = c.Kill(ctx, reState.FindStringSubmatch(path)[1], body.Diagnostics)
			case rec.Method == "GET" && reApp.MatchString(path) && path != "/ws/v1/cluster/apps/new-application":
				result, err = c.Application(ctx, reApp.FindStringSubmatch(path)[1])
			case rec.Method == "POST" && path == "/ws/v1/cluster/apps/new-application":
				result, err = c.NewApplication(ctx)
			case rec.Method == "POST" && path == "/ws/v1/cluster/apps" && submittable(rec.RequestBody):
				var sub ApplicationSubmission
				_ = json.Unmarshal([]byte(rec.RequestBody), &sub)
				err = c.Submit(ctx, &sub)
			default:
				// Requests the typed API refuses to make (bad bodies, bad
				// filters, unknown paths): send them raw.
				var rep *reply
				rep, err = c.do(ctx, &call{op: "raw", method: rec.Method, path: strings.TrimPrefix(path, apiPrefix), query: q, body: []byte(rec.RequestBody), idempotent: rec.Method != "POST"})
				if err == nil && rep.status >= 400 {
					err = newRemoteError("raw", rep.status, rep.url, rep.body)
				}
			}
			checkRecordOutcome(t, rec, hits.Load(), result, err)
		})
	}
}

func checkRecordOutcome(t *testing.T, rec recorded.Record, hits int32, result any, err error) {
	t.Helper()
	if rec.Status < 300 {
		if err != nil {
			t.Fatalf("recorded %d, client error: %v", rec.Status, err)
		}
	} else {
		if errors.Is(err, ErrInvalidID) && hits == 0 {
			return // refused locally (malformed id), as it should be
		}
		var re *RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("recorded %d, want *RemoteError, got %v", rec.Status, err)
		}
		if re.Status != rec.Status {
			t.Errorf("status %d, want %d", re.Status, rec.Status)
		}
		var body remoteExceptionBody
		if json.Unmarshal([]byte(rec.Body), &body) == nil && body.RemoteException != nil {
			if re.Exception != body.RemoteException.Exception || re.JavaClassName != body.RemoteException.JavaClassName || re.Message != body.RemoteException.Message {
				t.Errorf("remote error %+v does not carry %+v", re, *body.RemoteException)
			}
		} else if re.Message == "" {
			t.Errorf("non-JSON error body lost: %+v", re)
		}
		sentinels := map[int]error{400: ErrBadRequest, 404: ErrNotFound}
		if s := sentinels[rec.Status]; s != nil && !errors.Is(err, s) {
			t.Errorf("errors.Is(%v, %v) is false", err, s)
		}
		return
	}
	if hits != 1 {
		t.Errorf("%d requests, want 1", hits)
	}
	switch r := result.(type) {
	case []Application:
		if strings.HasPrefix(rec.Body, `{"apps":{}}`) && len(r) != 0 {
			t.Errorf("empty list decoded as %d apps", len(r))
		}
		if rec.N == 31 {
			if len(r) != 1 || r[0].Name != "DistributedShell" || r[0].ResourceSecondsMap["memory-mb"] != 18677 || r[0].ResourceSecondsMap["vcores"] != 16 {
				t.Errorf("R31 decoded as %+v", r)
			}
		}
	case *Application:
		if r.ID == "" || r.State == "" || len(r.ResourceSecondsMap) != 2 {
			t.Errorf("app decoded as %+v", r)
		}
	case string: // AppState
		if !strings.Contains(rec.Body, `"state":"`+r+`"`) {
			t.Errorf("state %q, body %s", r, rec.Body)
		}
	case KillResult:
		if !strings.Contains(rec.Body, `"state":"`+r.State+`"`) || r.Done != (rec.Status == 200) {
			t.Errorf("kill %+v, recorded %d %s", r, rec.Status, rec.Body)
		}
	case *NewApplication:
		if !strings.Contains(rec.Body, r.ApplicationID) || r.MaximumResourceCapability.MemoryMB != 8192 {
			t.Errorf("new app %+v", r)
		}
	case []AppAttempt:
		if len(r) != 1 || r[0].AppAttemptID == "" || r[0].ContainerID == "" {
			t.Errorf("attempts %+v", r)
		}
	case *AttemptReport:
		if r.State == "" || r.RPCPort != -1 || r.StartedTime == 0 || r.FinishedTime == 0 {
			t.Errorf("attempt %+v", r)
		}
	case nil: // submit
	default:
		t.Errorf("unchecked result %T", r)
	}
}

func onlyKeys(q map[string][]string, keys ...string) bool {
	for k := range q {
		ok := false
		for _, a := range keys {
			ok = ok || k == a
		}
		if !ok && k != "user.name" {
			return false
		}
	}
	return true
}

func submittable(body string) bool {
	var sub ApplicationSubmission
	return json.Unmarshal([]byte(body), &sub) == nil && sub.Validate() == nil
}

func newTestClient(t *testing.T, urls ...string) *Client {
	t.Helper()
	o := DefaultOptions()
	o.BaseURLs = urls
	o.User = "tester"
	o.RequestTimeout = 5 * time.Second
	o.Backoff = Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond, Multiplier: 2}
	o.MaxRetries = 3
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
