// Package apiclient is the Go client of the daemon's REST API (/api/v1), used
// by the tidewatch CLI.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidewatch/tidewatch/notify"
	"github.com/tidewatch/tidewatch/supportlayer"
	"github.com/tidewatch/tidewatch/supportlayer/jobmaster"
)

// Error is an error answer of the daemon.
type Error struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
	Line    int    `json:"line"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code)
}

// Client calls one daemon.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client of the daemon at server (http://host:port); token, if
// not empty, is sent as a bearer token.
func New(server, token string, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server: %q is not an http(s)://host:port URL", server)
	}
	return &Client{base: strings.TrimSuffix(server, "/"), token: token, http: &http.Client{Timeout: timeout}}, nil
}

// Submit sends a job spec; file names it in error messages.
func (c *Client) Submit(ctx context.Context, spec []byte, file string) (supportlayer.JobView, error) {
	var j supportlayer.JobView
	err := c.do(ctx, http.MethodPost, "/api/v1/jobs?file="+url.QueryEscape(file), "application/yaml", spec, &j)
	return j, err
}

// Jobs lists jobs.
func (c *Client) Jobs(ctx context.Context) ([]supportlayer.JobView, error) {
	var body struct {
		Jobs []supportlayer.JobView `json:"jobs"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/jobs", "", nil, &body)
	return body.Jobs, err
}

// Job returns one job by id or unique id prefix.
func (c *Client) Job(ctx context.Context, id string) (supportlayer.JobView, error) {
	var j supportlayer.JobView
	err := c.do(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id), "", nil, &j)
	return j, err
}

// Action posts one of stop, cancel, restart.
func (c *Client) Action(ctx context.Context, id, action string) (supportlayer.JobView, error) {
	var j supportlayer.JobView
	err := c.do(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(id)+"/"+action, "", nil, &j)
	return j, err
}

// Savepoint triggers a savepoint and returns its location.
func (c *Client) Savepoint(ctx context.Context, id, targetDir string) (string, error) {
	body, _ := json.Marshal(map[string]string{"targetDirectory": targetDir})
	var res struct {
		Location string `json:"location"`
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(id)+"/savepoints", "application/json", body, &res)
	return res.Location, err
}

// Migrate starts moving a job's keyed state to target ("heap" or "pebble");
// keyGroups is "all" or ranges like "0-63,100".
func (c *Client) Migrate(ctx context.Context, id, target, keyGroups string) (jobmaster.MigrationStatus, error) {
	body, _ := json.Marshal(map[string]string{"target": target, "keyGroups": keyGroups})
	var st jobmaster.MigrationStatus
	err := c.do(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(id)+"/migrations", "application/json", body, &st)
	return st, err
}

// Migration reads the progress of a job's current or last migration.
func (c *Client) Migration(ctx context.Context, id string) (jobmaster.MigrationStatus, error) {
	var st jobmaster.MigrationStatus
	err := c.do(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id)+"/migrations", "", nil, &st)
	return st, err
}

// Deployments lists a job's deployments.
func (c *Client) Deployments(ctx context.Context, id string) ([]supportlayer.DeploymentView, error) {
	var body struct {
		Deployments []supportlayer.DeploymentView `json:"deployments"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id)+"/deployments", "", nil, &body)
	return body.Deployments, err
}

// Events lists events, of one job when id is not empty.
func (c *Client) Events(ctx context.Context, id string, limit int) ([]supportlayer.EventView, error) {
	path := "/api/v1/events"
	if id != "" {
		path = "/api/v1/jobs/" + url.PathEscape(id) + "/events"
	}
	var body struct {
		Events []supportlayer.EventView `json:"events"`
	}
	err := c.do(ctx, http.MethodGet, path+"?limit="+strconv.Itoa(limit), "", nil, &body)
	return body.Events, err
}

// Logs copies the tail of the job's current log to w.
func (c *Client) Logs(ctx context.Context, id string, tail int64, w io.Writer) error {
	req, err := c.request(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id)+"/logs?tail="+strconv.FormatInt(tail, 10), "", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

func (c *Client) request(ctx context.Context, method, path, ctype string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	req, err := c.request(ctx, method, path, ctype, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var body struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil {
		body.Error.Status = resp.StatusCode
		return body.Error
	}
	return &Error{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(raw))}
}

// Silences lists silences; state filters (pending, active, expired) when not empty.
func (c *Client) Silences(ctx context.Context, state string) ([]notify.Silence, error) {
	var body struct {
		Silences []notify.Silence `json:"silences"`
	}
	path := "/api/v1/silences"
	if state != "" {
		path += "?state=" + url.QueryEscape(state)
	}
	err := c.do(ctx, http.MethodGet, path, "", nil, &body)
	return body.Silences, err
}

// AddSilence creates a silence: matchers in the form `job="abc", alertname=~"HEAP.*"`,
// for a duration from now.
func (c *Client) AddSilence(ctx context.Context, matchers string, duration time.Duration, createdBy, comment string) (notify.Silence, error) {
	ms, err := notify.ParseMatchers(matchers)
	if err != nil {
		return notify.Silence{}, err
	}
	body, _ := json.Marshal(map[string]any{"matchers": ms, "duration": duration.String(), "createdBy": createdBy, "comment": comment})
	var s notify.Silence
	err = c.do(ctx, http.MethodPost, "/api/v1/silences", "application/json", body, &s)
	return s, err
}

// ExpireSilence ends a silence now.
func (c *Client) ExpireSilence(ctx context.Context, id string) (notify.Silence, error) {
	var s notify.Silence
	err := c.do(ctx, http.MethodDelete, "/api/v1/silences/"+url.PathEscape(id), "", nil, &s)
	return s, err
}
