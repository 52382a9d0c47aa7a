package rm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// get runs an idempotent GET and decodes a 200 answer into v.
func (c *Client) get(ctx context.Context, op, path string, query url.Values, v any) error {
	rep, err := c.do(ctx, &call{op: op, method: http.MethodGet, path: path, query: query, idempotent: true})
	if err != nil {
		return err
	}
	if rep.status != http.StatusOK {
		return newRemoteError(op, rep.status, rep.url, rep.body)
	}
	return decode(op, rep.body, v)
}

func decode(op string, body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("rm: %s: %w: %v", op, ErrUnexpectedResponse, err)
	}
	return nil
}

// ClusterInfo returns GET /info. A standby answers this itself, so HAState
// tells which RM answered.
func (c *Client) ClusterInfo(ctx context.Context) (*ClusterInfo, error) {
	var w struct {
		ClusterInfo *ClusterInfo `json:"clusterInfo"`
	}
	if err := c.get(ctx, "cluster info", "/info", nil, &w); err != nil {
		return nil, err
	}
	if w.ClusterInfo == nil {
		return nil, fmt.Errorf("rm: cluster info: %w: no clusterInfo member", ErrUnexpectedResponse)
	}
	return w.ClusterInfo, nil
}

// ClusterMetrics returns GET /metrics.
func (c *Client) ClusterMetrics(ctx context.Context) (*ClusterMetrics, error) {
	var w struct {
		ClusterMetrics *ClusterMetrics `json:"clusterMetrics"`
	}
	if err := c.get(ctx, "cluster metrics", "/metrics", nil, &w); err != nil {
		return nil, err
	}
	if w.ClusterMetrics == nil {
		return nil, fmt.Errorf("rm: cluster metrics: %w: no clusterMetrics member", ErrUnexpectedResponse)
	}
	return w.ClusterMetrics, nil
}

// Nodes returns GET /nodes, filtered by NodeState names when states are given.
func (c *Client) Nodes(ctx context.Context, states ...string) ([]Node, error) {
	q := url.Values{}
	if len(states) > 0 {
		q.Set("states", strings.Join(states, ","))
	}
	var w struct {
		Nodes *struct {
			Node list[Node] `json:"node"`
		} `json:"nodes"`
	}
	if err := c.get(ctx, "list nodes", "/nodes", q, &w); err != nil {
		return nil, err
	}
	if w.Nodes == nil {
		return nil, nil
	}
	return w.Nodes.Node, nil
}

// Scheduler returns GET /scheduler.
func (c *Client) Scheduler(ctx context.Context) (*SchedulerInfo, error) {
	var w struct {
		Scheduler *struct {
			SchedulerInfo json.RawMessage `json:"schedulerInfo"`
		} `json:"scheduler"`
	}
	if err := c.get(ctx, "scheduler", "/scheduler", nil, &w); err != nil {
		return nil, err
	}
	if w.Scheduler == nil || w.Scheduler.SchedulerInfo == nil {
		return nil, fmt.Errorf("rm: scheduler: %w: no scheduler.schedulerInfo member", ErrUnexpectedResponse)
	}
	si, err := parseSchedulerInfo(w.Scheduler.SchedulerInfo)
	if err != nil {
		return nil, fmt.Errorf("rm: scheduler: %w: %v", ErrUnexpectedResponse, err)
	}
	return si, nil
}

// NewApplication asks the RM for an application id. Retrying it is safe: an
// id that is never submitted is simply skipped.
func (c *Client) NewApplication(ctx context.Context) (*NewApplication, error) {
	const op = "new application"
	rep, err := c.do(ctx, &call{op: op, method: http.MethodPost, path: "/apps/new-application", idempotent: true})
	if err != nil {
		return nil, err
	}
	if rep.status != http.StatusOK {
		return nil, newRemoteError(op, rep.status, rep.url, rep.body)
	}
	var na NewApplication
	if err := decode(op, rep.body, &na); err != nil {
		return nil, err
	}
	if _, err := ParseApplicationID(na.ApplicationID); err != nil {
		return nil, fmt.Errorf("rm: %s: %w: %w", op, ErrUnexpectedResponse, err)
	}
	return &na, nil
}

// Submit submits an application (POST /apps, 202 on success).
//
// A submit is never re-sent blindly. When it may have reached an RM (a
// timeout, a reset connection, a 5xx answer) the client first checks whether
// the RM knows the application — by listing apps with the submission's first
// tag (FindByTag) or, without tags, by id — and only re-sends when it does
// not. If that check fails too the error wraps ErrSubmitUncertain.
func (c *Client) Submit(ctx context.Context, sub *ApplicationSubmission) error {
	const op = "submit application"
	if err := sub.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(sub)
	if err != nil {
		return fmt.Errorf("rm: %s: encode: %w", op, err)
	}
	log := c.log.WithFields(logrus.Fields{"app": sub.ApplicationID, "op": op})
	cl := &call{op: op, method: http.MethodPost, path: "/apps", body: body}
	for round := 0; ; round++ {
		rep, err := c.do(ctx, cl)
		if err == nil {
			if rep.status >= 200 && rep.status < 300 {
				return nil
			}
			rerr := newRemoteError(op, rep.status, rep.url, rep.body)
			if round > 0 && rep.status == http.StatusBadRequest {
				// An earlier uncertain try may have created it after all
				// (duplicate id). Look before reporting the 400.
				if found, cerr := c.submitted(ctx, sub); cerr == nil && found {
					log.Info("submit had reached the resourcemanager on an earlier try")
					return nil
				}
			}
			return rerr
		}
		var unc *uncertainError
		if !errors.As(err, &unc) {
			return err
		}
		found, cerr := c.submitted(ctx, sub)
		if cerr != nil {
			return fmt.Errorf("%w: %s: %w (checking for the application failed: %v)", ErrSubmitUncertain, sub.ApplicationID, unc.err, cerr)
		}
		if found {
			log.WithField("error", unc.err).Info("submit reached the resourcemanager although its answer was lost")
			return nil
		}
		if round >= c.opts.MaxRetries {
			return fmt.Errorf("rm: %s: giving up after %d tries: %w", op, round+1, unc.err)
		}
		d := c.opts.Backoff.Delay(round + 1)
		log.WithFields(logrus.Fields{"error": unc.err, "backoff": d}).Debug("submit did not reach the resourcemanager; re-sending")
		if err := c.wait(ctx, d); err != nil {
			return fmt.Errorf("rm: %s: %w (last failure: %v)", op, err, unc.err)
		}
	}
}

// submitted reports whether the RM knows sub's application.
func (c *Client) submitted(ctx context.Context, sub *ApplicationSubmission) (bool, error) {
	if len(sub.Tags) > 0 {
		apps, err := c.FindByTag(ctx, sub.Tags[0])
		if err != nil {
			return false, err
		}
		for _, a := range apps {
			if a.ID == sub.ApplicationID {
				return true, nil
			}
		}
		return false, nil
	}
	_, err := c.Application(ctx, sub.ApplicationID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func appPath(op, id string) (string, error) {
	if _, err := ParseApplicationID(id); err != nil {
		return "", fmt.Errorf("rm: %s: %w", op, err)
	}
	return "/apps/" + id, nil
}

// Application returns GET /apps/{id}; errors.Is(err, ErrNotFound) when the
// RM does not know the id.
func (c *Client) Application(ctx context.Context, id string) (*Application, error) {
	const op = "get application"
	p, err := appPath(op, id)
	if err != nil {
		return nil, err
	}
	var w struct {
		App *Application `json:"app"`
	}
	if err := c.get(ctx, op, p, nil, &w); err != nil {
		return nil, err
	}
	if w.App == nil {
		return nil, fmt.Errorf("rm: %s: %w: no app member", op, ErrUnexpectedResponse)
	}
	return w.App, nil
}

// ListFilter selects applications for Applications. Empty fields do not
// filter. A listed application matches if it has any of ApplicationTags.
type ListFilter struct {
	States           []string // YarnApplicationState names
	ApplicationTypes []string
	ApplicationTags  []string
	Queue            string
	User             string
	FinalStatus      string
	Name             string
	Limit            int
	// DeSelects drops heavy members, e.g. "resourceRequests".
	DeSelects []string
}

func (f ListFilter) query() url.Values {
	q := url.Values{}
	set := func(k string, v []string) {
		if len(v) > 0 {
			q.Set(k, strings.Join(v, ","))
		}
	}
	set("states", f.States)
	set("applicationTypes", f.ApplicationTypes)
	set("applicationTags", f.ApplicationTags)
	set("deSelects", f.DeSelects)
	for k, v := range map[string]string{"queue": f.Queue, "user": f.User, "finalStatus": f.FinalStatus, "name": f.Name} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// Applications lists applications (GET /apps). An empty result — written
// by the RM as {"apps":{}} or {"apps":null} — is an empty slice and no error.
func (c *Client) Applications(ctx context.Context, f ListFilter) ([]Application, error) {
	var w struct {
		Apps *struct {
			App list[Application] `json:"app"`
		} `json:"apps"`
	}
	if err := c.get(ctx, "list applications", "/apps", f.query(), &w); err != nil {
		return nil, err
	}
	if w.Apps == nil {
		return nil, nil
	}
	return w.Apps.App, nil
}

// FindByTag lists the applications carrying tag (compared lower-cased, as
// the RM stores tags), optionally restricted to application types.
func (c *Client) FindByTag(ctx context.Context, tag string, applicationTypes ...string) ([]Application, error) {
	tag = strings.ToLower(tag)
	if tag == "" || strings.Contains(tag, ",") {
		return nil, fmt.Errorf("rm: find by tag: %w: tag %q must be non-empty without commas", ErrBadRequest, tag)
	}
	apps, err := c.Applications(ctx, ListFilter{ApplicationTags: []string{tag}, ApplicationTypes: applicationTypes})
	if err != nil {
		return nil, err
	}
	out := apps[:0]
	for _, a := range apps {
		if slices.Contains(a.TagList(), tag) {
			out = append(out, a)
		}
	}
	return out, nil
}

// Attempts returns GET /apps/{id}/appattempts.
func (c *Client) Attempts(ctx context.Context, id string) ([]AppAttempt, error) {
	const op = "list attempts"
	p, err := appPath(op, id)
	if err != nil {
		return nil, err
	}
	var w struct {
		AppAttempts *struct {
			AppAttempt list[AppAttempt] `json:"appAttempt"`
		} `json:"appAttempts"`
	}
	if err := c.get(ctx, op, p+"/appattempts", nil, &w); err != nil {
		return nil, err
	}
	if w.AppAttempts == nil {
		return nil, nil
	}
	return w.AppAttempts.AppAttempt, nil
}

// Attempt returns GET /apps/{id}/appattempts/{attemptId}: the attempt's
// RMAppAttemptState, tracking URLs and diagnostics.
func (c *Client) Attempt(ctx context.Context, id, attemptID string) (*AttemptReport, error) {
	const op = "get attempt"
	p, err := appPath(op, id)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(attemptID, "appattempt_") || strings.Trim(attemptID[len("appattempt_"):], "0123456789_") != "" {
		return nil, fmt.Errorf("rm: %s: %w: attempt id %q", op, ErrInvalidID, attemptID)
	}
	var r AttemptReport
	if err := c.get(ctx, op, p+"/appattempts/"+attemptID, nil, &r); err != nil {
		return nil, err
	}
	if r.AppAttemptID == "" {
		return nil, fmt.Errorf("rm: %s: %w: no appAttemptId member", op, ErrUnexpectedResponse)
	}
	return &r, nil
}

// AppState returns GET /apps/{id}/state: the internal RMAppState (it may say
// FINISHING or KILLING where Application says FINISHED or the prior state).
func (c *Client) AppState(ctx context.Context, id string) (string, error) {
	const op = "get application state"
	p, err := appPath(op, id)
	if err != nil {
		return "", err
	}
	var s struct {
		State string `json:"state"`
	}
	if err := c.get(ctx, op, p+"/state", nil, &s); err != nil {
		return "", err
	}
	if s.State == "" {
		return "", fmt.Errorf("rm: %s: %w: no state member", op, ErrUnexpectedResponse)
	}
	return s.State, nil
}

// Kill asks the RM to kill an application (PUT /apps/{id}/state KILLED).
// A 202 answer (kill in progress) gives Done=false with the state the RM
// reported (ACCEPTED, KILLING, ...); repeat the call or poll. A 200 answer
// gives Done=true with the final state, which is FINISHED or FAILED when the
// application had already ended. Repeating a kill is safe, so it is retried.
func (c *Client) Kill(ctx context.Context, id, diagnostics string) (KillResult, error) {
	const op = "kill application"
	p, err := appPath(op, id)
	if err != nil {
		return KillResult{}, err
	}
	body, _ := json.Marshal(struct {
		State       string `json:"state"`
		Diagnostics string `json:"diagnostics,omitempty"`
	}{StateKilled, diagnostics})
	rep, err := c.do(ctx, &call{op: op, method: http.MethodPut, path: p + "/state", body: body, idempotent: true})
	if err != nil {
		return KillResult{}, err
	}
	switch rep.status {
	case http.StatusOK, http.StatusAccepted:
	default:
		return KillResult{}, newRemoteError(op, rep.status, rep.url, rep.body)
	}
	var s struct {
		State string `json:"state"`
	}
	if err := decode(op, rep.body, &s); err != nil {
		return KillResult{}, err
	}
	if s.State == "" {
		return KillResult{}, fmt.Errorf("rm: %s: %w: no state member", op, ErrUnexpectedResponse)
	}
	return KillResult{State: s.State, Done: rep.status == http.StatusOK}, nil
}

// KillAndWait repeats Kill every interval until the RM reports a final state
// and returns it (KILLED, or FINISHED/FAILED for an application that ended
// first). Only the first request carries the diagnostics.
func (c *Client) KillAndWait(ctx context.Context, id, diagnostics string, interval time.Duration) (string, error) {
	if interval <= 0 {
		return "", fmt.Errorf("rm: kill application: %w: interval must be > 0", ErrInvalidOptions)
	}
	res, err := c.Kill(ctx, id, diagnostics)
	if err != nil {
		return "", err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for !res.Done {
		select {
		case <-ctx.Done():
			return res.State, fmt.Errorf("rm: kill application %s: %w (last state %s)", id, ctx.Err(), res.State)
		case <-t.C:
		}
		if res, err = c.Kill(ctx, id, ""); err != nil {
			return "", err
		}
	}
	return res.State, nil
}

// NodeContainer asks a NodeManager's web service (nodeHTTPAddress is
// host:port, as in Application.AMHostHTTPAddress) for a container. NMs are
// not HA: one try, no failover.
func (c *Client) NodeContainer(ctx context.Context, nodeHTTPAddress, containerID string) (*NodeContainer, error) {
	const op = "get nodemanager container"
	if !strings.HasPrefix(containerID, "container_") || strings.Trim(containerID[len("container_"):], "0123456789_e") != "" {
		return nil, fmt.Errorf("rm: %s: %w: container id %q", op, ErrInvalidID, containerID)
	}
	scheme := c.bases[0].Scheme
	u := &url.URL{Scheme: scheme, Host: nodeHTTPAddress, Path: "/ws/v1/node/containers/" + containerID}
	if u.Host == "" || strings.ContainsAny(nodeHTTPAddress, "/?#@") {
		return nil, fmt.Errorf("rm: %s: %w: node address %q", op, ErrInvalidOptions, nodeHTTPAddress)
	}
	u.RawQuery = url.Values{"user.name": {c.opts.User}}.Encode()
	rctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	resp, err := c.http.R().SetContext(rctx).Get(u.String())
	if err != nil {
		return nil, fmt.Errorf("rm: %s %s: %w: %w", op, redact(u), ErrUnavailable, err)
	}
	if resp.StatusCode() != http.StatusOK {
		return nil, newRemoteError(op, resp.StatusCode(), redact(u), resp.Body())
	}
	var w struct {
		Container *NodeContainer `json:"container"`
	}
	if err := decode(op, resp.Body(), &w); err != nil {
		return nil, err
	}
	if w.Container == nil {
		return nil, fmt.Errorf("rm: %s: %w: no container member", op, ErrUnexpectedResponse)
	}
	return w.Container, nil
}
