package supportlayer

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner"
	"github.com/tidewatch/tidewatch/supportlayer/deploy"
	"github.com/tidewatch/tidewatch/supportlayer/jobmaster"
)

// maxSpecBytes bounds a submitted job spec.
const maxSpecBytes = 1 << 20

// apiError is the body of every error answer: {"error": {...}}.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field and Line locate a spec error.
	Field string `json:"field,omitempty"`
	Line  int    `json:"line,omitempty"`
}

// JobView is a job as the REST API shows it.
type JobView struct {
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	State         string          `json:"state"`
	DesiredState  string          `json:"desiredState"`
	Message       string          `json:"message,omitempty"`
	Restarts      int             `json:"restarts"`
	NextRestartAt *time.Time      `json:"nextRestartAt,omitempty"`
	CreatedAt     time.Time       `json:"createdAt"`
	UpdatedAt     time.Time       `json:"updatedAt"`
	Deployment    *DeploymentView `json:"deployment"`
	Spec          string          `json:"spec,omitempty"`
}

// DeploymentView is one deployment (attempt) of a job.
type DeploymentView struct {
	ID            uint       `json:"id"`
	Attempt       int        `json:"attempt"`
	Deployer      string     `json:"deployer"`
	Active        bool       `json:"active"`
	State         string     `json:"state"`
	PID           int        `json:"pid,omitempty"`
	ApplicationID string     `json:"applicationId,omitempty"`
	Endpoint      string     `json:"endpoint,omitempty"`
	WorkDir       string     `json:"workDir,omitempty"`
	LogPath       string     `json:"logPath,omitempty"`
	Reason        string     `json:"reason"`
	Restore       string     `json:"restore"`
	FinalState    string     `json:"finalState,omitempty"`
	Savepoint     string     `json:"savepoint,omitempty"`
	Diagnostics   string     `json:"diagnostics,omitempty"`
	StartedAt     time.Time  `json:"startedAt"`
	EndedAt       *time.Time `json:"endedAt,omitempty"`
}

// EventView is one event.
type EventView struct {
	ID           uint      `json:"id"`
	JobID        string    `json:"jobId"`
	Time         time.Time `json:"time"`
	Level        string    `json:"level"`
	Type         string    `json:"type"`
	Message      string    `json:"message"`
	DeploymentID uint      `json:"deploymentId,omitempty"`
}

func viewDeployment(d *Deployment) *DeploymentView {
	if d == nil {
		return nil
	}
	return &DeploymentView{ID: d.ID, Attempt: d.Attempt, Deployer: d.Deployer, Active: d.Active, State: d.State,
		PID: d.PID, ApplicationID: d.ApplicationID, Endpoint: d.Endpoint, WorkDir: d.WorkDir, LogPath: d.LogPath,
		Reason: d.Reason, Restore: d.Restore, FinalState: d.FinalState, Savepoint: d.Savepoint,
		Diagnostics: d.Diagnostics, StartedAt: d.StartedAt, EndedAt: d.EndedAt}
}

type api struct {
	d       *Daemon
	log     *logrus.Entry
	token   string
	reg     *prometheus.Registry
	metrics *metrics
}

func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))

	api := http.NewServeMux()
	api.HandleFunc("POST /api/v1/jobs", a.submit)
	api.HandleFunc("GET /api/v1/jobs", a.listJobs)
	api.HandleFunc("GET /api/v1/jobs/{id}", a.getJob)
	api.HandleFunc("POST /api/v1/jobs/{id}/stop", a.setDesired(DesiredStopped, "STOP_REQUESTED", "stop with savepoint requested"))
	api.HandleFunc("POST /api/v1/jobs/{id}/cancel", a.setDesired(DesiredCanceled, "CANCEL_REQUESTED", "cancel requested"))
	api.HandleFunc("POST /api/v1/jobs/{id}/restart", a.restart)
	api.HandleFunc("POST /api/v1/jobs/{id}/savepoints", a.savepoint)
	api.HandleFunc("POST /api/v1/jobs/{id}/migrations", a.migrate)
	api.HandleFunc("GET /api/v1/jobs/{id}/migrations", a.migration)
	api.HandleFunc("GET /api/v1/jobs/{id}/forecast", a.forecast)
	api.HandleFunc("GET /api/v1/jobs/{id}/deployments", a.deployments)
	api.HandleFunc("GET /api/v1/jobs/{id}/events", a.jobEvents)
	api.HandleFunc("GET /api/v1/jobs/{id}/logs", a.logs)
	api.HandleFunc("GET /api/v1/events", a.events)
	a.d.notifier.RegisterRoutes(api) // notify: GET /api/v1/alerts, GET/POST/DELETE /api/v1/silences
	if a.d.monitor != nil {
		monitorRoutes(api, a.d.monitor, a.d.now)
	}
	api.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	mux.Handle("/api/v1/", a.auth(api))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return a.count(mux)
}

func (a *api) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: 200}
		next.ServeHTTP(sw, r)
		a.metrics.httpRequests.WithLabelValues(r.Method, strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

func (a *api) auth(next http.Handler) http.Handler {
	if a.token == "" {
		return next
	}
	want := []byte("Bearer " + a.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tidewatch"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.d.store.Ping(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "database: "+err.Error())
		return
	}
	if !a.d.watcher.Ready() {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "the first watch cycle has not completed")
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}

func (a *api) submit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSpecBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "read body: "+err.Error())
		return
	}
	if len(body) > maxSpecBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the job spec is larger than %d bytes", maxSpecBytes))
		return
	}
	file := r.URL.Query().Get("file")
	if file == "" {
		file = "job spec"
	}
	spec, err := jobrunner.ParseSpec(body, file)
	if err != nil {
		e := apiError{Code: "invalid_spec", Message: err.Error()}
		var se *jobrunner.SpecError
		if errors.As(err, &se) {
			e.Field, e.Line = se.Path, se.Line
		}
		writeJSON(w, http.StatusBadRequest, map[string]apiError{"error": e})
		return
	}
	now := a.d.now()
	j := &Job{ID: newJobID(), Name: spec.Name, Spec: string(body), DesiredState: DesiredRunning, State: StateSubmitted, CreatedAt: now, UpdatedAt: now}
	ev := Event{Time: now, Level: "INFO", Type: "JOB_SUBMITTED", Message: "job " + spec.Name + " submitted"}
	if err := a.d.store.CreateJob(r.Context(), j, ev); err != nil {
		a.storeError(w, err)
		return
	}
	a.log.WithFields(logrus.Fields{"job": j.ID, "name": j.Name}).Info("job submitted")
	a.d.watcher.Kick(j.ID)
	writeJSON(w, http.StatusCreated, a.view(r.Context(), *j, false))
}

func (a *api) listJobs(w http.ResponseWriter, r *http.Request) {
	var states []string
	if s := r.URL.Query().Get("state"); s != "" {
		states = strings.Split(strings.ToUpper(s), ",")
	}
	jobs, err := a.d.store.Jobs(r.Context(), states)
	if err != nil {
		a.storeError(w, err)
		return
	}
	views := make([]JobView, 0, len(jobs))
	for _, j := range jobs {
		views = append(views, a.view(r.Context(), j, false))
	}
	writeJSON(w, 200, map[string]any{"jobs": views})
}

func (a *api) getJob(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if !ok {
		return
	}
	writeJSON(w, 200, a.view(r.Context(), j, true))
}

func (a *api) view(ctx context.Context, j Job, withSpec bool) JobView {
	v := JobView{ID: j.ID, Name: j.Name, State: j.State, DesiredState: j.DesiredState, Message: j.Message,
		Restarts: j.Restarts, NextRestartAt: j.NextRestartAt, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
	if withSpec {
		v.Spec = j.Spec
	}
	if d, err := a.d.store.LatestDeployment(ctx, j.ID); err == nil {
		v.Deployment = viewDeployment(d)
	}
	return v
}

func (a *api) setDesired(desired, evType, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		j, ok := a.job(w, r)
		if !ok {
			return
		}
		unlock := a.d.watcher.locks.lock(j.ID)
		j, err := a.d.store.UpdateDesired(r.Context(), j.ID, desired, Event{Time: a.d.now(), Level: "INFO", Type: evType, Message: msg})
		unlock()
		if err != nil {
			a.storeError(w, err)
			return
		}
		a.d.watcher.Kick(j.ID)
		writeJSON(w, http.StatusAccepted, a.view(r.Context(), j, false))
	}
}

func (a *api) restart(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if !ok {
		return
	}
	unlock := a.d.watcher.locks.lock(j.ID)
	j, err := a.d.store.Job(r.Context(), j.ID)
	if err == nil {
		now := a.d.now()
		ev := Event{Time: now, Level: "INFO", Type: "RESTART_REQUESTED", Message: "restart from the latest checkpoint requested"}
		switch {
		case isTerminal(j.State):
			j.DesiredState, j.State, j.NextRestartAt, j.RestartReason, j.Message = DesiredRunning, StateRestarting, &now, ReasonManual, ""
			err = a.d.store.SaveJob(r.Context(), &j, ev)
		case j.DesiredState != DesiredRunning:
			err = fmt.Errorf("%w: job %s is being %s", ErrConflict, j.ID, strings.ToLower(j.State))
		default:
			j.RestartRequested = true
			err = a.d.store.SaveJob(r.Context(), &j, ev)
		}
	}
	unlock()
	if err != nil {
		a.storeError(w, err)
		return
	}
	a.d.watcher.Kick(j.ID)
	writeJSON(w, http.StatusAccepted, a.view(r.Context(), j, false))
}

// savepoint triggers a savepoint on the job master and waits for its location.
func (a *api) savepoint(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if !ok {
		return
	}
	var req struct {
		TargetDirectory string `json:"targetDirectory"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, "bad_request", "body: "+err.Error())
			return
		}
	}
	d, err := a.d.store.ActiveDeployment(r.Context(), j.ID)
	if err != nil {
		a.storeError(w, err)
		return
	}
	if d == nil || d.Endpoint == "" || j.State != StateRunning {
		writeError(w, http.StatusConflict, "not_running", fmt.Sprintf("job %s is %s; a savepoint needs a running job", j.ID, j.State))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.d.opts.Watch.StopTimeout)
	defer cancel()
	trigger, err := a.d.master.TriggerSavepoint(ctx, d.Endpoint, j.ID, req.TargetDirectory)
	if err != nil {
		writeError(w, http.StatusBadGateway, "job_master", err.Error())
		return
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		res, err := a.d.master.SavepointStatus(ctx, d.Endpoint, j.ID, trigger)
		switch {
		case err != nil:
			writeError(w, http.StatusBadGateway, "job_master", err.Error())
			return
		case res.Done && res.Failure != "":
			writeError(w, http.StatusBadGateway, "savepoint_failed", res.Failure)
			return
		case res.Done:
			ev := Event{Time: a.d.now(), Level: "INFO", Type: "SAVEPOINT", Message: "savepoint written to " + res.Location, DeploymentID: d.ID}
			ev.JobID = j.ID
			if err := a.d.store.AddEvent(r.Context(), ev); err != nil {
				a.log.WithError(err).Warn("record savepoint event")
			}
			writeJSON(w, http.StatusOK, map[string]string{"location": res.Location})
			return
		}
		select {
		case <-ctx.Done():
			writeError(w, http.StatusGatewayTimeout, "timeout", "the savepoint did not complete in time")
			return
		case <-tick.C:
		}
	}
}

// runningEndpoint returns the job master endpoint of a running job, or
// answers 409.
func (a *api) runningEndpoint(w http.ResponseWriter, r *http.Request, j Job, what string) (*Deployment, bool) {
	d, err := a.d.store.ActiveDeployment(r.Context(), j.ID)
	if err != nil {
		a.storeError(w, err)
		return nil, false
	}
	if d == nil || d.Endpoint == "" || j.State != StateRunning {
		writeError(w, http.StatusConflict, "not_running", fmt.Sprintf("job %s is %s; %s needs a running job", j.ID, j.State, what))
		return nil, false
	}
	return d, true
}

// jobMasterError passes the job master's 4xx answers on (the request was
// wrong) and reports anything else as a bad gateway.
func jobMasterError(w http.ResponseWriter, err error) {
	var je *jobmaster.Error
	if errors.As(err, &je) && je.Status/100 == 4 {
		code := "bad_request"
		if je.Status == http.StatusConflict {
			code = "conflict"
		}
		writeError(w, je.Status, code, strings.Join(je.Errors, "; "))
		return
	}
	writeError(w, http.StatusBadGateway, "job_master", err.Error())
}

// migrate starts moving a running job's keyed state between the heap and
// Pebble backends.
func (a *api) migrate(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if !ok {
		return
	}
	var req struct {
		Target    string `json:"target"`
		KeyGroups string `json:"keyGroups"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "body: "+err.Error())
		return
	}
	if req.Target != "heap" && req.Target != "pebble" {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf(`target: must be "heap" or "pebble", got %q`, req.Target))
		return
	}
	if req.KeyGroups == "" {
		req.KeyGroups = "all"
	}
	d, ok := a.runningEndpoint(w, r, j, "a state migration")
	if !ok {
		return
	}
	st, err := a.d.master.Migrate(r.Context(), d.Endpoint, j.ID, req.Target, req.KeyGroups)
	if err != nil {
		jobMasterError(w, err)
		return
	}
	ev := Event{Time: a.d.now(), Level: "INFO", Type: "STATE_MIGRATION", DeploymentID: d.ID,
		Message: fmt.Sprintf("moving key groups %s to %s", req.KeyGroups, req.Target)}
	ev.JobID = j.ID
	if err := a.d.store.AddEvent(r.Context(), ev); err != nil {
		a.log.WithError(err).Warn("record migration event")
	}
	writeJSON(w, http.StatusAccepted, st)
}

// migration reports the progress of a running job's current or last
// migration.
func (a *api) migration(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if !ok {
		return
	}
	d, ok := a.runningEndpoint(w, r, j, "a state migration")
	if !ok {
		return
	}
	st, err := a.d.master.Migration(r.Context(), d.Endpoint, j.ID)
	if err != nil {
		jobMasterError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *api) deployments(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if !ok {
		return
	}
	ds, err := a.d.store.Deployments(r.Context(), j.ID)
	if err != nil {
		a.storeError(w, err)
		return
	}
	views := make([]*DeploymentView, 0, len(ds))
	for i := range ds {
		views = append(views, viewDeployment(&ds[i]))
	}
	writeJSON(w, 200, map[string]any{"deployments": views})
}

func (a *api) jobEvents(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if !ok {
		return
	}
	a.writeEvents(w, r, j.ID)
}

func (a *api) events(w http.ResponseWriter, r *http.Request) { a.writeEvents(w, r, "") }

func (a *api) writeEvents(w http.ResponseWriter, r *http.Request, jobID string) {
	limit, ok := intParam(w, r, "limit", 100, 1, 10000)
	if !ok {
		return
	}
	evs, err := a.d.store.Events(r.Context(), jobID, limit)
	if err != nil {
		a.storeError(w, err)
		return
	}
	views := make([]EventView, 0, len(evs))
	for _, e := range evs {
		views = append(views, EventView{ID: e.ID, JobID: e.JobID, Time: e.Time, Level: e.Level, Type: e.Type, Message: e.Message, DeploymentID: e.DeploymentID})
	}
	writeJSON(w, 200, map[string]any{"events": views})
}

func (a *api) logs(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if !ok {
		return
	}
	tail, ok := intParam(w, r, "tail", 64<<10, 0, 64<<20)
	if !ok {
		return
	}
	d, err := a.d.store.LatestDeployment(r.Context(), j.ID)
	if err != nil {
		a.storeError(w, err)
		return
	}
	if d == nil {
		writeError(w, http.StatusNotFound, "no_deployment", "job "+j.ID+" has not been deployed yet")
		return
	}
	rc, err := a.d.deployer.Logs(r.Context(), handleOf(d), int64(tail))
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, deploy.ErrUnknownHandle) {
			code = http.StatusNotFound
		}
		writeError(w, code, "logs", err.Error())
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.Copy(w, rc)
}

// job resolves the {id} path value (an id or a unique prefix of one).
func (a *api) job(w http.ResponseWriter, r *http.Request) (Job, bool) {
	j, err := a.d.store.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		a.storeError(w, err)
		return j, false
	}
	return j, true
}

func (a *api) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrAmbiguous):
		writeError(w, http.StatusBadRequest, "ambiguous_id", err.Error())
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	default:
		a.log.WithError(err).Error("store")
		writeError(w, http.StatusInternalServerError, "internal", "internal error: "+err.Error())
	}
}

func intParam(w http.ResponseWriter, r *http.Request, name string, def, lo, hi int) (int, bool) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		writeError(w, http.StatusBadRequest, "bad_parameter", fmt.Sprintf("%s: must be an integer from %d to %d, got %q", name, lo, hi, s))
		return 0, false
	}
	return n, true
}

func writeError(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, map[string]apiError{"error": {Code: errCode, Message: msg}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// newJobID returns 32 lower-case hex characters, the job id form of Flink's REST API.
func newJobID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}
