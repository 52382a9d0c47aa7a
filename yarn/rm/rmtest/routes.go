package rmtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	reAppID     = regexp.MustCompile(`^application_(\d+)_(\d+)$`)
	reAttemptID = regexp.MustCompile(`^appattempt_(\d+)_(\d+)_(\d+)$`)
)

var publicStates = []string{"NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED"}

func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	p, ok := strings.CutPrefix(r.URL.Path, "/ws/v1/cluster")
	if !ok {
		htmlNotFound(w)
		return
	}
	p = strings.TrimSuffix(p, "/")
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	method := r.Method
	write := method == http.MethodPost || method == http.MethodPut
	user := r.URL.Query().Get("user.name")
	if write && user == "" {
		if s.opts.RequireUser {
			unauthorized(w)
			return
		}
		user = "dr.who"
	}
	switch {
	case (p == "" || p == "/info") && method == http.MethodGet:
		s.info(w)
	case p == "/metrics" && method == http.MethodGet:
		s.metrics(w)
	case p == "/nodes" && method == http.MethodGet:
		s.nodes(w, r)
	case p == "/scheduler" && method == http.MethodGet:
		s.scheduler(w)
	case p == "/apps" && method == http.MethodGet:
		s.list(w, r)
	case p == "/apps" && method == http.MethodPost:
		s.submit(w, r, user, body)
	case p == "/apps/new-application" && method == http.MethodPost:
		s.newApplication(w)
	case len(parts) >= 2 && parts[0] == "apps" && len(parts) <= 4:
		s.appRoutes(w, r, parts[1], parts[2:], user, body)
	default:
		htmlNotFound(w)
	}
}

func (s *Server) appRoutes(w http.ResponseWriter, r *http.Request, id string, rest []string, user string, body []byte) {
	if !reAppID.MatchString(id) {
		writeRemote(w, http.StatusBadRequest, "BadRequestException", "org.apache.hadoop.yarn.webapp.BadRequestException",
			"java.lang.IllegalArgumentException: Invalid ApplicationId: "+id)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[id]
	if a == nil {
		notFound(w, "app with id: "+id+" not found")
		return
	}
	base := "http://" + r.Host
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"app": s.appJSON(a, base)})
	case len(rest) == 1 && rest[0] == "state" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]string{"state": a.state})
	case len(rest) == 1 && rest[0] == "state" && r.Method == http.MethodPut:
		var req struct {
			State       string `json:"state"`
			Diagnostics string `json:"diagnostics"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			unmarshalError(w, "javax.xml.stream.XMLStreamException: "+jacksonMessage(err))
			return
		}
		if req.State != StateKilled {
			badRequest(w, "Only 'KILLED' is allowed as a target state.")
			return
		}
		status, state := s.kill(a, user, req.Diagnostics)
		if status == http.StatusAccepted {
			w.Header().Set("Location", base+"/ws/v1/cluster/apps/"+id+"/state")
		}
		writeJSON(w, status, map[string]string{"state": state})
	case len(rest) == 1 && rest[0] == "appattempts" && r.Method == http.MethodGet:
		items := []any{}
		for _, at := range a.attempts {
			items = append(items, attemptListJSON(a, at))
		}
		writeJSON(w, http.StatusOK, map[string]any{"appAttempts": map[string]any{"appAttempt": items}})
	case len(rest) == 2 && rest[0] == "appattempts" && r.Method == http.MethodGet:
		aid := rest[1]
		if !reAttemptID.MatchString(aid) {
			writeRemote(w, http.StatusBadRequest, "BadRequestException", "org.apache.hadoop.yarn.webapp.BadRequestException",
				"java.lang.IllegalArgumentException: Invalid AppAttemptId: "+aid)
			return
		}
		for _, at := range a.attempts {
			if a.attemptID(at.n) == aid {
				writeJSON(w, http.StatusOK, attemptReportJSON(a, at, base))
				return
			}
		}
		notFound(w, "appAttempt with id: "+aid+" not found")
	default:
		htmlNotFound(w)
	}
}

func (s *Server) newApplication(w http.ResponseWriter) {
	s.mu.Lock()
	seq := s.nextSeq
	s.nextSeq++
	s.mu.Unlock()
	memInfo := func(name, units string, v int64) map[string]any {
		return map[string]any{"attributes": map[string]any{}, "maximumAllocation": int64(9223372036854775807), "minimumAllocation": 0,
			"name": name, "resourceType": "COUNTABLE", "units": units, "value": v}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"application-id": fmt.Sprintf("application_%d_%04d", s.opts.ClusterTimestamp, seq),
		"maximum-resource-capability": map[string]any{
			"memory": s.opts.MaxMemoryMB, "vCores": s.opts.MaxVCores,
			"resourceInformations": map[string]any{"resourceInformation": []any{
				memInfo("memory-mb", "Mi", s.opts.MaxMemoryMB), memInfo("vcores", "", s.opts.MaxVCores)}},
		},
	})
}

// submitBody is the fake's own reading of ApplicationSubmissionContextInfo,
// independent of the client's types.
type submitBody struct {
	ApplicationID   string          `json:"application-id"`
	Name            string          `json:"application-name"`
	Queue           string          `json:"queue"`
	Priority        *int64          `json:"priority"`
	AMSpec          json.RawMessage `json:"am-container-spec"`
	MaxAppAttempts  int64           `json:"max-app-attempts"`
	Resource        *submitResource `json:"resource"`
	ApplicationType string          `json:"application-type"`
	KeepContainers  bool            `json:"keep-containers-across-application-attempts"`
	Tags            json.RawMessage `json:"application-tags"`
	Validity        *int64          `json:"attempt-failures-validity-interval"`
	UnmanagedAM     bool            `json:"unmanaged-AM"`
}

type submitResource struct {
	Memory int64 `json:"memory"`
	VCores int64 `json:"vCores"`
}

type amSpec struct {
	LocalResources json.RawMessage `json:"local-resources"`
	Environment    json.RawMessage `json:"environment"`
	Commands       json.RawMessage `json:"commands"`
	Credentials    json.RawMessage `json:"credentials"`
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, user string, body []byte) {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	switch {
	case strings.Contains(ct, "xml"):
		if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("<")) {
			unmarshalError(w, "org.xml.sax.SAXParseException; lineNumber: 1; columnNumber: 1; Content is not allowed in prolog.")
			return
		}
		http.Error(w, "rmtest: XML submissions are not supported", http.StatusUnsupportedMediaType)
		return
	case !strings.Contains(ct, "application/json"):
		http.Error(w, "Unsupported Media Type", http.StatusUnsupportedMediaType)
		return
	}
	var sb submitBody
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		// The unmarshaller takes an array as an empty context (R11).
		if !json.Valid(trimmed) {
			unmarshalError(w, "javax.xml.stream.XMLStreamException: "+jacksonMessage(errors.New("malformed array")))
			return
		}
	} else if err := json.Unmarshal(body, &sb); err != nil {
		unmarshalError(w, "javax.xml.stream.XMLStreamException: "+jacksonMessage(err))
		return
	}
	m := reAppID.FindStringSubmatch(sb.ApplicationID)
	if m == nil {
		badRequest(w, "Could not parse application id "+sb.ApplicationID)
		return
	}
	var spec amSpec
	if len(sb.AMSpec) > 0 {
		if err := json.Unmarshal(sb.AMSpec, &spec); err != nil {
			unmarshalError(w, "javax.xml.stream.XMLStreamException: "+jacksonMessage(err))
			return
		}
	}
	lrs, err1 := entries[LocalResource](spec.LocalResources)
	env, err2 := entries[string](spec.Environment)
	cmds, err3 := commandList(spec.Commands)
	tags, err4 := tagList(sb.Tags)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		unmarshalError(w, "javax.xml.stream.XMLStreamException: "+jacksonMessage(err))
		return
	}
	res := submitResource{}
	if sb.Resource != nil {
		res = *sb.Resource
	}
	if res.VCores > s.opts.MaxVCores {
		badRequest(w, "Requested more cores than configured max")
		return
	}
	if res.Memory > s.opts.MaxMemoryMB {
		badRequest(w, "Requested more memory than configured max")
		return
	}
	if len(tags) > 10 {
		badRequest(w, "Too many applicationTags, a maximum of only 10 are allowed!")
		return
	}
	for i, t := range tags {
		if len(t) > 100 {
			badRequest(w, fmt.Sprintf("Tag %s is too long, maximum allowed length of a tag is 100", t))
			return
		}
		tags[i] = strings.ToLower(t)
	}
	ts, _ := strconv.ParseInt(m[1], 10, 64)
	seq, _ := strconv.Atoi(m[2])
	a := &app{
		id: sb.ApplicationID, clusterTS: ts, seq: seq, user: user, name: sb.Name, queue: sb.Queue,
		appType: sb.ApplicationType, tags: tags, priority: -1, keepContainers: sb.KeepContainers,
		memoryMB: normalise(res.Memory, s.opts.MinMemoryMB), vcores: max(res.VCores, 1),
		started: s.nowMS(), state: StateNew, finalStatus: "UNDEFINED",
		localResources: lrs, environment: env, commands: cmds,
		hasCredentials: len(bytes.TrimSpace(spec.Credentials)) > 0 && !bytes.Equal(bytes.TrimSpace(spec.Credentials), []byte("null")),
		rawSubmission:  append(json.RawMessage(nil), body...),
	}
	if sb.Priority != nil {
		a.priority = *sb.Priority
	}
	if a.queue == "" {
		a.queue = "default"
	}
	a.unknownQueueErr = !slices.Contains(s.opts.Queues, a.queue)
	a.maxAttempts = int(sb.MaxAppAttempts)
	if a.maxAttempts <= 0 {
		a.maxAttempts = s.opts.MaxAttempts
	}
	a.maxAttempts = min(a.maxAttempts, s.opts.GlobalMaxAttempts)
	if sb.Validity != nil {
		a.validityMS = *sb.Validity
	}

	s.mu.Lock()
	if s.apps[a.id] != nil {
		s.mu.Unlock()
		badRequest(w, fmt.Sprintf("Application with id %s is already present! Cannot add a duplicate!", a.id))
		return
	}
	s.apps[a.id] = a
	s.order = append(s.order, a.id)
	// NEW → NEW_SAVING → SUBMITTED → ACCEPTED, unless the test holds it.
	for _, st := range []string{StateNew, StateNewSaving, StateSubmitted} {
		a.state = st
		if s.opts.HoldAt == st {
			break
		}
	}
	if s.opts.HoldAt == "" || (s.opts.HoldAt != StateNew && s.opts.HoldAt != StateNewSaving && s.opts.HoldAt != StateSubmitted) {
		s.accept(a)
	}
	s.mu.Unlock()

	w.Header().Set("Location", "http://"+r.Host+"/ws/v1/cluster/apps/"+a.id)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

func normalise(mb, unit int64) int64 {
	if mb <= unit {
		return unit
	}
	return (mb + unit - 1) / unit * unit
}

// jacksonMessage words a decoding error like the recorded Jackson ones.
func jacksonMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected end of JSON input") {
		return "com.fasterxml.jackson.core.io.JsonEOFException: Unexpected end-of-input within/between Object entries"
	}
	return "com.fasterxml.jackson.databind.JsonMappingException: " + err.Error()
}

// entries reads a Jersey map: {"entry":[...]}, {"entry":{...}}, or repeated
// "entry" members.
func entries[V any](raw json.RawMessage) (map[string]V, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("map is not an object")
	}
	out := map[string]V{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if k != "entry" {
			continue
		}
		type kv struct {
			Key   string `json:"key"`
			Value V      `json:"value"`
		}
		var list []kv
		if bytes.HasPrefix(bytes.TrimSpace(v), []byte("[")) {
			if err := json.Unmarshal(v, &list); err != nil {
				return nil, err
			}
		} else {
			var one kv
			if err := json.Unmarshal(v, &one); err != nil {
				return nil, err
			}
			list = []kv{one}
		}
		for _, e := range list {
			out[e.Key] = e.Value
		}
	}
	return out, nil
}

func commandList(raw json.RawMessage) ([]string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var c struct {
		Command json.RawMessage `json:"command"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	return stringOrList(c.Command)
}

func tagList(raw json.RawMessage) ([]string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var t struct {
		Tag json.RawMessage `json:"tag"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, err
	}
	return stringOrList(t.Tag)
}

func stringOrList(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return []string{s}, err
	}
	var l []string
	err := json.Unmarshal(raw, &l)
	return l, err
}

// --- listing -----------------------------------------------------------------

// multi collects a repeated or comma-separated parameter.
func multi(q url.Values, key string) []string {
	var out []string
	for _, v := range q[key] {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	states := multi(q, "states")
	if st := q.Get("state"); st != "" {
		states = append(states, st)
	}
	for i, st := range states {
		states[i] = strings.ToUpper(st)
		if !slices.Contains(publicStates, states[i]) {
			badRequest(w, fmt.Sprintf("Invalid application-state %s specified. It should be one of [%s]", st, strings.Join(publicStates, ", ")))
			return
		}
	}
	limit := int64(-1)
	if l := q.Get("limit"); l != "" {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			badRequest(w, "limit value must be a number!")
			return
		}
		if n <= 0 {
			badRequest(w, "limit value must be greater then 0")
			return
		}
		limit = n
	}
	bounds := map[string]int64{}
	for _, k := range []string{"startedTimeBegin", "startedTimeEnd", "finishedTimeBegin", "finishedTimeEnd"} {
		if v := q.Get(k); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				badRequest(w, k+" value must be a number!")
				return
			}
			if n < 0 {
				badRequest(w, k+" must be greater than 0")
				return
			}
			bounds[k] = n
		}
	}
	types := multi(q, "applicationTypes")
	tags := multi(q, "applicationTags")
	base := "http://" + r.Host

	s.mu.Lock()
	defer s.mu.Unlock()
	var out []any
	for _, id := range s.order {
		a := s.apps[id]
		if len(states) > 0 && !slices.Contains(states, a.publicState()) {
			continue
		}
		if len(types) > 0 && !slices.ContainsFunc(types, func(t string) bool { return strings.EqualFold(t, a.appType) }) {
			continue
		}
		if len(tags) > 0 && !slices.ContainsFunc(tags, func(t string) bool { return slices.Contains(a.tags, strings.ToLower(t)) }) {
			continue
		}
		if v := q.Get("queue"); v != "" && v != a.queue {
			continue
		}
		if v := q.Get("user"); v != "" && v != a.user {
			continue
		}
		if v := q.Get("name"); v != "" && v != a.name {
			continue
		}
		if v := q.Get("finalStatus"); v != "" && !strings.EqualFold(v, a.finalStatus) {
			continue
		}
		if b, ok := bounds["startedTimeBegin"]; ok && a.started < b {
			continue
		}
		if b, ok := bounds["startedTimeEnd"]; ok && a.started > b {
			continue
		}
		if b, ok := bounds["finishedTimeBegin"]; ok && a.finished < b {
			continue
		}
		if b, ok := bounds["finishedTimeEnd"]; ok && a.finished > b {
			continue
		}
		out = append(out, s.appJSON(a, base))
		if limit > 0 && int64(len(out)) >= limit {
			break
		}
	}
	if len(out) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"apps": map[string]any{}}) // {"apps":{}} as recorded (R1)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"apps": map[string]any{"app": out}})
}

// --- JSON of the read endpoints ----------------------------------------------

func (s *Server) appJSON(a *app, base string) map[string]any {
	now := s.nowMS()
	end := a.finished
	if end == 0 {
		end = now
	}
	at := a.current()
	launched := at != nil && at.containerID != ""
	m := map[string]any{
		"id": a.id, "user": a.user, "name": a.name, "queue": a.queue,
		"state": a.publicState(), "finalStatus": a.finalStatus, "progress": a.progress,
		"diagnostics": a.diagnostics, "clusterId": s.opts.ClusterTimestamp,
		"applicationType": a.appType, "applicationTags": strings.Join(a.tags, ","),
		"priority": a.priority, "startedTime": a.started, "launchTime": a.launched,
		"finishedTime": a.finished, "elapsedTime": end - a.started,
		"preemptedResourceMB": 0, "preemptedResourceVCores": 0, "numNonAMContainerPreempted": 0,
		"numAMContainerPreempted": 0, "preemptedMemorySeconds": 0, "preemptedVcoreSeconds": 0,
		"preemptedResourceSecondsMap": map[string]any{}, "logAggregationStatus": "DISABLED",
		"unmanagedApplication": false, "appNodeLabelExpression": "", "amNodeLabelExpression": "",
		"timeouts": map[string]any{"timeout": []any{map[string]any{"type": "LIFETIME", "expiryTime": "UNLIMITED", "remainingTimeInSeconds": -1}}},
	}
	switch {
	case a.final():
		m["trackingUI"] = "History"
		if a.state == StateFinished || a.state == StateFinishing {
			m["trackingUrl"] = base + "/proxy/" + a.id + "/"
		} else {
			m["trackingUrl"] = base + "/cluster/app/" + a.id
		}
	case a.publicState() == StateRunning:
		m["trackingUI"] = "ApplicationMaster"
		m["trackingUrl"] = base + "/proxy/" + a.id + "/"
	default:
		m["trackingUI"] = "UNASSIGNED"
	}
	if launched {
		m["amContainerLogs"] = "http://localhost:8042/node/containerlogs/" + at.containerID + "/" + a.user
		m["amHostHttpAddress"] = "localhost:8042"
		m["masterNodeId"] = "localhost:45454"
	}
	if at != nil && at.host != "N/A" && at.rpcPort != -1 {
		m["amRPCAddress"] = fmt.Sprintf("%s:%d", at.host, at.rpcPort)
	}
	var secs int64
	if a.launched > 0 {
		secs = (end - a.launched) / 1000
	}
	switch {
	case a.final() && a.state != StateFinishing:
		for _, k := range []string{"allocatedMB", "allocatedVCores", "reservedMB", "reservedVCores", "runningContainers"} {
			m[k] = -1
		}
	case launched && at.state != AttemptFailed:
		m["allocatedMB"], m["allocatedVCores"], m["runningContainers"] = a.memoryMB, a.vcores, 1
		m["reservedMB"], m["reservedVCores"] = 0, 0
	default:
		for _, k := range []string{"allocatedMB", "allocatedVCores", "reservedMB", "reservedVCores", "runningContainers"} {
			m[k] = 0
		}
	}
	m["memorySeconds"], m["vcoreSeconds"] = secs*a.memoryMB, secs*a.vcores
	m["queueUsagePercentage"], m["clusterUsagePercentage"] = 0.0, 0.0
	// Written as the real RM writes it: the member "entry" twice (§12.3).
	m["resourceSecondsMap"] = json.RawMessage(fmt.Sprintf(`{"entry":{"key":"memory-mb","value":"%d"},"entry":{"key":"vcores","value":"%d"}}`, secs*a.memoryMB, secs*a.vcores))
	return m
}

func attemptListJSON(a *app, at *attempt) map[string]any {
	m := map[string]any{
		"id": at.n, "startTime": at.started, "finishedTime": at.finished,
		"blacklistedNodes": "", "nodesBlacklistedBySystem": "", "appAttemptId": a.attemptID(at.n), "exportPorts": "null",
	}
	if at.containerID != "" {
		m["containerId"] = at.containerID
		m["nodeHttpAddress"] = "localhost:8042"
		m["nodeId"] = "localhost:45454"
		m["logsLink"] = "http://localhost:8042/node/containerlogs/" + at.containerID + "/" + a.user
	}
	return m
}

// attemptReportJSON is root-unwrapped with numbers as strings (R29, R41).
func attemptReportJSON(a *app, at *attempt, base string) map[string]any {
	tracking := base + "/proxy/" + a.id + "/"
	if at.state == AttemptFailed || at.state == AttemptKilled {
		tracking = base + "/cluster/app/" + a.id
	}
	m := map[string]any{
		"appAttemptId": a.attemptID(at.n), "host": at.host, "rpcPort": strconv.FormatInt(at.rpcPort, 10),
		"trackingUrl": tracking, "originalTrackingUrl": at.origTracking, "diagnosticsInfo": at.diagnostics,
		"appAttemptState": at.state, "startedTime": strconv.FormatInt(at.started, 10), "finishedTime": strconv.FormatInt(at.finished, 10),
	}
	if at.containerID != "" {
		m["amContainerId"] = at.containerID
	}
	return m
}

func (s *Server) info(w http.ResponseWriter) {
	s.mu.Lock()
	ha := "ACTIVE"
	if s.standby {
		ha = "STANDBY"
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"clusterInfo": map[string]any{
		"id": s.opts.ClusterTimestamp, "startedOn": s.opts.ClusterTimestamp, "state": "STARTED", "haState": ha,
		"rmStateStoreName":       "org.apache.hadoop.yarn.server.resourcemanager.recovery.NullRMStateStore",
		"resourceManagerVersion": "3.3.6", "resourceManagerBuildVersion": "3.3.6 from rmtest",
		"resourceManagerVersionBuiltOn": "2023-06-18T08:22Z", "hadoopVersion": "3.3.6",
		"hadoopBuildVersion": "3.3.6 from rmtest", "hadoopVersionBuiltOn": "2023-06-18T08:22Z",
		"haZooKeeperConnectionState": "ResourceManager HA is not enabled.",
	}})
}

func (s *Server) metrics(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]int64{}
	var allocMB, allocV int64
	for _, a := range s.apps {
		c["appsSubmitted"]++
		switch a.publicState() {
		case StateFinished:
			c["appsCompleted"]++
		case StateFailed:
			c["appsFailed"]++
		case StateKilled:
			c["appsKilled"]++
		case StateRunning:
			c["appsRunning"]++
		default:
			c["appsPending"]++
		}
		if at := a.current(); at != nil && at.containerID != "" && !a.final() && at.state != AttemptFailed {
			allocMB += a.memoryMB
			allocV += a.vcores
		}
	}
	m := map[string]any{}
	for _, k := range []string{"appsSubmitted", "appsCompleted", "appsPending", "appsRunning", "appsFailed", "appsKilled"} {
		m[k] = c[k]
	}
	m["totalMB"], m["allocatedMB"], m["availableMB"] = s.opts.MaxMemoryMB, allocMB, s.opts.MaxMemoryMB-allocMB
	m["totalVirtualCores"], m["allocatedVirtualCores"], m["availableVirtualCores"] = s.opts.MaxVCores, allocV, s.opts.MaxVCores-allocV
	m["totalNodes"], m["activeNodes"] = 1, 1
	for _, k := range []string{"reservedMB", "pendingMB", "reservedVirtualCores", "pendingVirtualCores", "containersReserved", "containersPending", "lostNodes", "unhealthyNodes", "decommissioningNodes", "decommissionedNodes", "rebootedNodes", "shutdownNodes"} {
		m[k] = 0
	}
	m["containersAllocated"] = 0
	writeJSON(w, http.StatusOK, map[string]any{"clusterMetrics": m})
}

func (s *Server) nodes(w http.ResponseWriter, r *http.Request) {
	states := multi(r.URL.Query(), "states")
	if len(states) > 0 && !slices.ContainsFunc(states, func(st string) bool { return strings.EqualFold(st, "RUNNING") }) {
		writeJSON(w, http.StatusOK, map[string]any{"nodes": map[string]any{}})
		return
	}
	node := map[string]any{
		"rack": "/default-rack", "state": "RUNNING", "id": "localhost:45454", "nodeHostName": "localhost",
		"nodeHTTPAddress": "localhost:8042", "lastHealthUpdate": s.opts.ClusterTimestamp, "version": "3.3.6",
		"healthReport": "", "numContainers": 0, "usedMemoryMB": 0, "availMemoryMB": s.opts.MaxMemoryMB,
		"usedVirtualCores": 0, "availableVirtualCores": s.opts.MaxVCores, "memUtilization": 0.0, "cpuUtilization": 0.0,
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": map[string]any{"node": []any{node}}})
}

func (s *Server) scheduler(w http.ResponseWriter) {
	s.mu.Lock()
	counts := map[string]int{}
	for _, a := range s.apps {
		if !a.final() {
			counts[a.queue]++
		}
	}
	s.mu.Unlock()
	share := 100.0 / float64(len(s.opts.Queues))
	var queues []any
	for _, q := range s.opts.Queues {
		queues = append(queues, map[string]any{
			"type": "capacitySchedulerLeafQueueInfo", "queueName": q, "queuePath": "root." + q, "state": "RUNNING",
			"capacity": share, "usedCapacity": 0.0, "maxCapacity": 100.0, "absoluteCapacity": share,
			"numApplications": counts[q],
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"scheduler": map[string]any{"schedulerInfo": map[string]any{
		"type": "capacityScheduler", "capacity": 100.0, "usedCapacity": 0.0, "maxCapacity": 100.0,
		"queueName": "root", "queues": map[string]any{"queue": queues},
	}}})
}
