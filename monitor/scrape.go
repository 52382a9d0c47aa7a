package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Target is a job to monitor: its job master's REST endpoint.
type Target struct {
	JobID   string
	JobName string
	// Endpoint is the job master's base URL (http://host:port).
	Endpoint string
	// WorkerID is the id of the worker the job master hosts; empty, it is
	// asked of the job master (GET /taskmanagers) once per endpoint.
	WorkerID string
	// Worker marks a worker container of a job spread over several (YARN):
	// Endpoint is the worker's REST endpoint, WorkerID its container, and
	// its metrics raise taskmanager events only (the job master's target
	// raises the job's).
	Worker bool
}

// TargetsFunc lists the jobs to monitor now: the running jobs the daemon
// wants running, with their job masters' endpoints. The monitor calls it at
// the start of every cycle.
type TargetsFunc func(ctx context.Context) ([]Target, error)

// Fact is one YARN-level fact about a job (application attempts, container
// exits, queue usage), made an event of scope jobmanager.
type Fact struct {
	JobID string
	// Name is the metric event name: yarn_am_attempts,
	// yarn_container_exits (Key: the exit status), yarn_queue_used_ratio
	// (Key: the queue), or any other.
	Name  string
	Key   string
	Value float64
}

// FactsFunc returns YARN's facts about targets, once per cycle.
type FactsFunc func(ctx context.Context, targets []Target) ([]Fact, error)

// ErrScrape is wrapped by every error of a scrape.
var ErrScrape = errors.New("monitor: scrape failed")

// maxMetricsBody bounds a job master's answer.
const maxMetricsBody = 16 << 20

// scraper reads job masters over HTTP.
type scraper struct {
	client *http.Client
}

// get reads path of endpoint into a limited buffer.
func (s *scraper) get(ctx context.Context, endpoint, path, accept string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(endpoint, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrScrape, path, err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrScrape, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrScrape, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: HTTP %d", ErrScrape, path, resp.StatusCode)
	}
	if len(body) > maxMetricsBody {
		return nil, fmt.Errorf("%w: GET %s: answer larger than %d bytes", ErrScrape, path, maxMetricsBody)
	}
	return body, nil
}

// scrape reads one job master: its Prometheus metrics (required), its
// JobManager metrics numRunningJobs and numRegisteredTaskManagers, and, if
// workerID is empty, the id of its worker.
func (s *scraper) scrape(ctx context.Context, t Target, workerID string, at time.Time, now func() time.Time) *Scrape {
	sc := &Scrape{Target: t, At: at, Fetched: now(), WorkerID: workerID}
	body, err := s.get(ctx, t.Endpoint, "/metrics", "text/plain;version=0.0.4")
	if err != nil {
		sc.Err = err
		return sc
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	if sc.Families, err = p.TextToMetricFamilies(bytes.NewReader(body)); err != nil {
		sc.Err = fmt.Errorf("%w: /metrics: %w", ErrScrape, err)
		return sc
	}
	if t.Worker {
		return sc
	}
	if b, err := s.get(ctx, t.Endpoint, "/jobmanager/metrics?get="+flinkRunningJobs+","+flinkTaskManagers, "application/json"); err == nil {
		var vals []struct{ ID, Value string }
		if json.Unmarshal(b, &vals) == nil {
			sc.Flink = map[string]float64{}
			for _, v := range vals {
				if f, ok := parseFlinkValue(v.Value); ok {
					sc.Flink[v.ID] = f
				}
			}
		}
	}
	if sc.WorkerID == "" {
		if b, err := s.get(ctx, t.Endpoint, "/taskmanagers", "application/json"); err == nil {
			var tms struct {
				TaskManagers []struct{ ID string } `json:"taskmanagers"`
			}
			if json.Unmarshal(b, &tms) == nil && len(tms.TaskManagers) > 0 {
				sc.WorkerID = tms.TaskManagers[0].ID
			}
		}
	}
	if sc.WorkerID == "" {
		sc.WorkerID = fallbackWorkerID(t)
	}
	return sc
}

// fallbackWorkerID names the worker of a job master that did not say.
func fallbackWorkerID(t Target) string {
	id := t.JobID
	if len(id) > 6 {
		id = id[:6]
	}
	return hostOf(t.Endpoint) + "-" + id
}
