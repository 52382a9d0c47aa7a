// Package jobmaster is a client of the job master REST API in Flink's dialect
// (the shapes of Flink 1.17–2.0). It reads Tidewatch job masters and real Flink
// JobManagers alike: job state, checkpoints, and the control operations an ops
// tool needs (stop with savepoint, cancel, savepoint).
package jobmaster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner"
)

// ErrJobNotFound is returned when the job master does not know the job.
var ErrJobNotFound = errors.New("jobmaster: job not found")

// Error is a non-2xx answer of the job master, with Flink's error strings.
type Error struct {
	Op     string
	Status int
	Errors []string
}

func (e *Error) Error() string {
	msg := strings.Join(e.Errors, "; ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return fmt.Sprintf("jobmaster: %s: HTTP %d: %s", e.Op, e.Status, msg)
}

// Is makes a 404 match ErrJobNotFound.
func (e *Error) Is(target error) bool {
	return target == ErrJobNotFound && e.Status == http.StatusNotFound
}

// Client talks to job masters. The zero value is not usable; use New.
type Client struct {
	http *http.Client
}

// New returns a client whose every request times out after timeout.
func New(timeout time.Duration) *Client {
	return &Client{http: &http.Client{Timeout: timeout}}
}

// JobOverview is one entry of GET /jobs/overview.
type JobOverview struct {
	ID        string         `json:"jid"`
	Name      string         `json:"name"`
	State     string         `json:"state"`
	StartTime int64          `json:"start-time"`
	EndTime   int64          `json:"end-time"`
	Tasks     map[string]int `json:"tasks"`
}

// Job returns the overview of one job.
func (c *Client) Job(ctx context.Context, base, jobID string) (JobOverview, error) {
	var body struct {
		Jobs []JobOverview `json:"jobs"`
	}
	if err := c.do(ctx, "jobs overview", http.MethodGet, base, "/jobs/overview", nil, &body); err != nil {
		return JobOverview{}, err
	}
	for _, j := range body.Jobs {
		if j.ID == jobID {
			return j, nil
		}
	}
	return JobOverview{}, fmt.Errorf("%w: %s at %s", ErrJobNotFound, jobID, base)
}

// Worker is one worker container of a job spread over several, as
// GET /jobs/{id}/workers lists it.
type Worker struct {
	Index       int    `json:"index"`
	State       string `json:"state"`
	ContainerID string `json:"containerId"`
	URL         string `json:"url"`
}

// Workers lists the job's worker containers (none for a job in one).
func (c *Client) Workers(ctx context.Context, base, jobID string) ([]Worker, error) {
	var body struct {
		Workers []Worker `json:"workers"`
	}
	if err := c.do(ctx, "workers", http.MethodGet, base, "/jobs/"+jobID+"/workers", nil, &body); err != nil {
		return nil, err
	}
	return body.Workers, nil
}

// RegisterWorker tells the job master at base that worker k of the job,
// running in container containerID, serves its REST API at workerURL.
func (c *Client) RegisterWorker(ctx context.Context, base, jobID string, k int, containerID, workerURL string) error {
	req := map[string]string{"containerId": containerID, "url": workerURL}
	return c.do(ctx, "register worker", http.MethodPut, base, fmt.Sprintf("/jobs/%s/workers/%d", url.PathEscape(jobID), k), req, nil)
}

// CheckpointStats is the part of GET /jobs/{id}/checkpoints the daemon reads.
type CheckpointStats struct {
	Counts struct {
		Restored  int64 `json:"restored"`
		Total     int64 `json:"total"`
		Completed int64 `json:"completed"`
		Failed    int64 `json:"failed"`
	} `json:"counts"`
	Latest struct {
		Completed *Checkpoint `json:"completed"`
		Savepoint *Checkpoint `json:"savepoint"`
		Restored  *struct {
			ID           int64  `json:"id"`
			ExternalPath string `json:"external_path"`
			IsSavepoint  bool   `json:"is_savepoint"`
		} `json:"restored"`
	} `json:"latest"`
}

// Checkpoint is a completed checkpoint or savepoint.
type Checkpoint struct {
	ID           int64  `json:"id"`
	Status       string `json:"status"`
	ExternalPath string `json:"external_path"`
	StateSize    int64  `json:"state_size"`
	Trigger      int64  `json:"trigger_timestamp"`
}

// Checkpoints returns the job's checkpoint statistics.
func (c *Client) Checkpoints(ctx context.Context, base, jobID string) (CheckpointStats, error) {
	var st CheckpointStats
	err := c.do(ctx, "checkpoints", http.MethodGet, base, "/jobs/"+url.PathEscape(jobID)+"/checkpoints", nil, &st)
	return st, err
}

// Stop asks for stop-with-savepoint and returns the trigger id. An empty
// targetDir leaves the choice to the job master.
func (c *Client) Stop(ctx context.Context, base, jobID, targetDir string) (string, error) {
	req := map[string]any{"drain": false}
	if targetDir != "" {
		req["targetDirectory"] = targetDir
	}
	var resp struct {
		RequestID string `json:"request-id"`
	}
	err := c.do(ctx, "stop", http.MethodPost, base, "/jobs/"+url.PathEscape(jobID)+"/stop", req, &resp)
	return resp.RequestID, err
}

// Cancel cancels the job without a savepoint.
func (c *Client) Cancel(ctx context.Context, base, jobID string) error {
	// The GET alias works through the YARN web proxy, which does not forward PATCH.
	return c.do(ctx, "cancel", http.MethodGet, base, "/jobs/"+url.PathEscape(jobID)+"/yarn-cancel", nil, nil)
}

// TriggerSavepoint starts a savepoint and returns the trigger id.
func (c *Client) TriggerSavepoint(ctx context.Context, base, jobID, targetDir string) (string, error) {
	req := map[string]any{"cancel-job": false}
	if targetDir != "" {
		req["target-directory"] = targetDir
	}
	var resp struct {
		RequestID string `json:"request-id"`
	}
	err := c.do(ctx, "savepoint", http.MethodPost, base, "/jobs/"+url.PathEscape(jobID)+"/savepoints", req, &resp)
	return resp.RequestID, err
}

// SavepointResult is the outcome of an asynchronous savepoint or stop.
type SavepointResult struct {
	Done     bool
	Location string
	Failure  string
}

// SavepointStatus polls a savepoint (or stop-with-savepoint) trigger.
func (c *Client) SavepointStatus(ctx context.Context, base, jobID, triggerID string) (SavepointResult, error) {
	var body struct {
		Status struct {
			ID string `json:"id"`
		} `json:"status"`
		Operation *struct {
			Location     string `json:"location"`
			FailureCause *struct {
				Class      string `json:"class"`
				StackTrace string `json:"stack-trace"`
			} `json:"failure-cause"`
		} `json:"operation"`
	}
	path := "/jobs/" + url.PathEscape(jobID) + "/savepoints/" + url.PathEscape(triggerID)
	if err := c.do(ctx, "savepoint status", http.MethodGet, base, path, nil, &body); err != nil {
		return SavepointResult{}, err
	}
	res := SavepointResult{Done: body.Status.ID == "COMPLETED"}
	if op := body.Operation; op != nil {
		res.Location = op.Location
		if fc := op.FailureCause; fc != nil {
			res.Failure = firstLine(fc.StackTrace)
			if res.Failure == "" {
				res.Failure = fc.Class
			}
		}
	}
	return res, nil
}

// MigrationStatus is GET /jobs/:id/state-backend/migrations of a Tidewatch
// job master: the current or last move of keyed state between backends.
type MigrationStatus = jobrunner.MigrationStatus

// Migrate starts moving key groups (keyGroups "all" or ranges like
// "0-63,100") to target ("heap" or "pebble").
func (c *Client) Migrate(ctx context.Context, base, jobID, target, keyGroups string) (MigrationStatus, error) {
	var st MigrationStatus
	req := map[string]string{"target": target, "keyGroups": keyGroups}
	err := c.do(ctx, "migrate", http.MethodPost, base, "/jobs/"+url.PathEscape(jobID)+"/state-backend/migrations", req, &st)
	return st, err
}

// Migration reads the progress of the current or last migration.
func (c *Client) Migration(ctx context.Context, base, jobID string) (MigrationStatus, error) {
	var st MigrationStatus
	err := c.do(ctx, "migration status", http.MethodGet, base, "/jobs/"+url.PathEscape(jobID)+"/state-backend/migrations", nil, &st)
	return st, err
}

func (c *Client) do(ctx context.Context, op, method, base, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("jobmaster: %s: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, body)
	if err != nil {
		return fmt.Errorf("jobmaster: %s: %w", op, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("jobmaster: %s: %w", op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("jobmaster: %s: read body: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Op: op, Status: resp.StatusCode}
		var eb struct {
			Errors []string `json:"errors"`
		}
		if json.Unmarshal(raw, &eb) == nil && len(eb.Errors) > 0 {
			e.Errors = eb.Errors
		} else {
			e.Errors = []string{strings.TrimSpace(string(raw))}
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("jobmaster: %s: decode: %w", op, err)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
