// Package rmtest is a fake YARN ResourceManager REST server for tests,
// written from HADOOP_PROTOCOLS.md §1 and §12 and checked against the answers
// recorded from a real Hadoop 3.3.6 RM (samples/yarn/rest).
//
// It hands out application ids in the real format, validates submissions as
// the RM does (with the same status codes, exception classes and messages),
// keeps an application state machine that the test drives (LaunchAttempt,
// RegisterAttempt, FailAttempt, Finish, AMContainerExited), answers the
// status, attempt, kill and list endpoints with Jersey's JSON shapes
// (including {"apps":{}}, repeated "entry" members and the string-numbered
// attempt), and can act as an HA standby that redirects to the active RM.
// Faults (error statuses, dropped connections before or after the request
// was handled) can be injected.
package rmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a fake RM. Zero values select the defaults noted.
type Options struct {
	// ClusterTimestamp is the RM start time used in ids (default 1795472519589,
	// the recorded cluster's).
	ClusterTimestamp int64
	// MaxAttempts is yarn.resourcemanager.am.max-attempts (default 2);
	// GlobalMaxAttempts its global cap (default MaxAttempts).
	MaxAttempts       int
	GlobalMaxAttempts int
	// MaxMemoryMB and MaxVCores are yarn.scheduler.maximum-allocation-*
	// (default 8192 and 8).
	MaxMemoryMB int64
	MaxVCores   int64
	// MinMemoryMB: AM memory is normalised up to a multiple of it (default 1024).
	MinMemoryMB int64
	// Queues are the leaf queues (default ["default"]).
	Queues []string
	// RequireUser answers write requests without user.name with 401, as a
	// cluster without StaticUserWebFilter does. Otherwise they run as dr.who.
	RequireUser bool
	// KillImmediately answers the first kill with 200 KILLED. By default the
	// first PUT answers 202 with the current state and the next one 200, as
	// recorded.
	KillImmediately bool
	// HoldAt keeps new applications at NEW, NEW_SAVING or SUBMITTED until
	// Advance; "" sends them straight to ACCEPTED.
	HoldAt string
	// CheckResource, when set, is called by LaunchAttempt for every local
	// resource, as the NodeManager's localizer would check it.
	CheckResource func(link string, lr LocalResource) error
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.ClusterTimestamp == 0 {
		o.ClusterTimestamp = 1795472519589
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 2
	}
	if o.GlobalMaxAttempts == 0 {
		o.GlobalMaxAttempts = o.MaxAttempts
	}
	if o.MaxMemoryMB == 0 {
		o.MaxMemoryMB = 8192
	}
	if o.MaxVCores == 0 {
		o.MaxVCores = 8
	}
	if o.MinMemoryMB == 0 {
		o.MinMemoryMB = 1024
	}
	if len(o.Queues) == 0 {
		o.Queues = []string{"default"}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// FaultMode says what an injected fault does.
type FaultMode int

const (
	// FaultStatus answers with Status (a RemoteException body unless Body is set).
	FaultStatus FaultMode = iota
	// FaultDrop closes the connection before handling the request.
	FaultDrop
	// FaultDropAfterHandling handles the request (state changes happen) and
	// then closes the connection without an answer.
	FaultDropAfterHandling
)

// Fault is an injected failure for matching requests.
type Fault struct {
	Method string // "" matches any
	Path   string // prefix of the URL path; "" matches any
	Mode   FaultMode
	Status int    // for FaultStatus (default 500)
	Body   string // for FaultStatus: a plain-text body instead of a RemoteException
	Times  int    // how many requests it hits (default 1)
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
}

// Server is a fake ResourceManager.
type Server struct {
	srv  *httptest.Server
	opts Options

	mu        sync.Mutex
	apps      map[string]*app
	order     []string
	nextSeq   int
	standby   bool
	activeURL string
	faults    []*Fault
	requests  []Request
}

// New starts a fake RM.
func New(opts Options) *Server {
	opts.defaults()
	s := &Server{opts: opts, apps: map[string]*app{}, nextSeq: 1}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL is the base URL (http://127.0.0.1:port), as a client's BaseURLs entry.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server; afterwards connections to URL are refused.
func (s *Server) Close() { s.srv.Close() }

// SetStandby makes this RM a standby. It redirects /ws requests (except
// /ws/v1/cluster/info, which it answers with haState STANDBY) to activeURL
// with 307; with activeURL "" it answers 503 with a standby page.
func (s *Server) SetStandby(activeURL string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.standby, s.activeURL = true, strings.TrimRight(activeURL, "/")
}

// SetActive makes this RM active again.
func (s *Server) SetActive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.standby, s.activeURL = false, ""
}

// InjectFault adds a fault; faults are matched in the order added.
func (s *Server) InjectFault(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	if f.Status == 0 {
		f.Status = http.StatusInternalServerError
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// CountRequests counts received requests by method and exact path.
func (s *Server) CountRequests(method, path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// App returns a snapshot of an application.
func (s *Server) App(id string) (Snapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[id]
	if a == nil {
		return Snapshot{}, false
	}
	return a.snapshot(), true
}

// AppIDs lists the submitted applications in submission order.
func (s *Server) AppIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

func (s *Server) nowMS() int64 { return s.opts.Now().UnixMilli() }

func (s *Server) takeFault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.Path) {
			f.Times--
			if f.Times <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			c := *f
			return &c
		}
	}
	return nil
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/proxy/"); ok {
		s.proxy(w, r, rest)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body})
	standby, active := s.standby, s.activeURL
	s.mu.Unlock()

	if standby && strings.HasPrefix(r.URL.Path, "/ws/") && r.URL.Path != "/ws/v1/cluster/info" {
		if active == "" {
			w.Header().Set("Content-Type", "text/plain;charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "This is standby RM. No active RM is known.")
			return
		}
		loc := active + r.URL.RequestURI()
		w.Header().Set("Location", loc)
		w.Header().Set("Content-Type", "text/plain;charset=utf-8")
		w.WriteHeader(http.StatusTemporaryRedirect)
		fmt.Fprintf(w, "This is standby RM. The redirect url is: %s\n", loc)
		return
	}

	f := s.takeFault(r)
	if f != nil && f.Mode == FaultDrop {
		hijackClose(w)
		return
	}
	if f != nil && f.Mode == FaultStatus {
		if f.Body != "" {
			w.Header().Set("Content-Type", "text/plain;charset=utf-8")
			w.WriteHeader(f.Status)
			_, _ = io.WriteString(w, f.Body)
			return
		}
		writeRemote(w, f.Status, "YarnRuntimeException", "org.apache.hadoop.yarn.exceptions.YarnRuntimeException", "injected fault")
		return
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	s.route(rec, r, body)
	if f != nil && f.Mode == FaultDropAfterHandling {
		hijackClose(w)
		return
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

// recorder buffers an answer so that FaultDropAfterHandling can drop it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

func hijackClose(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("rmtest: connection cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// --- answers -----------------------------------------------------------------

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeRemote(w http.ResponseWriter, status int, exception, javaClass, message string) {
	writeJSON(w, status, map[string]any{"RemoteException": map[string]string{
		"exception": exception, "message": message, "javaClassName": javaClass,
	}})
}

// The YARN webapp exceptions carry a "java.lang.Exception: " prefix (§12.3).
func badRequest(w http.ResponseWriter, msg string) {
	writeRemote(w, http.StatusBadRequest, "BadRequestException", "org.apache.hadoop.yarn.webapp.BadRequestException", "java.lang.Exception: "+msg)
}

func notFound(w http.ResponseWriter, msg string) {
	writeRemote(w, http.StatusNotFound, "NotFoundException", "org.apache.hadoop.yarn.webapp.NotFoundException", "java.lang.Exception: "+msg)
}

func unmarshalError(w http.ResponseWriter, linked string) {
	writeRemote(w, http.StatusBadRequest, "WebApplicationException", "javax.ws.rs.WebApplicationException",
		"javax.xml.bind.UnmarshalException\n - with linked exception:\n["+linked+"]")
}

func unauthorized(w http.ResponseWriter) {
	writeRemote(w, http.StatusUnauthorized, "AuthorizationException", "org.apache.hadoop.security.authorize.AuthorizationException",
		"Unable to obtain user name, user not authenticated")
}

func htmlNotFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, "<!DOCTYPE html>\n<html>\n  <title>\n    Sorry, got error 404\n  </title>\n</html>\n")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// proxy is the RM's web proxy (WebAppProxyServlet): /proxy/<app-id>/<path>
// is forwarded to the current attempt's original tracking URL. As in Hadoop
// 3.3, only GET and PUT are forwarded; POST is answered 405 and other
// methods 501 (FLINK_REST.md §14.3). An application without a registered
// tracking URL gets 404, as an unknown one.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, rest string) {
	switch r.Method {
	case http.MethodGet, http.MethodPut:
	case http.MethodPost:
		http.Error(w, "HTTP method POST is not supported by this URL", http.StatusMethodNotAllowed)
		return
	default:
		http.Error(w, "Method "+r.Method+" is not implemented by this servlet", http.StatusNotImplemented)
		return
	}
	id, path, _ := strings.Cut(rest, "/")
	s.mu.Lock()
	var target string
	if a := s.apps[id]; a != nil {
		if at := a.current(); at != nil && at.origTracking != "" && at.origTracking != "N/A" {
			target = at.origTracking
		}
	}
	s.mu.Unlock()
	u, err := url.Parse(target)
	if target == "" || err != nil {
		http.Error(w, "Application "+id+" could not be found or has no tracking URL", http.StatusNotFound)
		return
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.URL.Path = strings.TrimSuffix(u.Path, "/") + "/" + path
		pr.Out.URL.RawPath = ""
	}}
	rp.ServeHTTP(w, r)
}
